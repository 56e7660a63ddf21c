"""Errors of the quality gate: bad data, checks that could not run, tables the gate cannot read."""


class GateError(Exception):
    """Base class of every error the checks package raises on purpose; it always blocks the promotion."""


class QualityGateFailed(GateError):
    """The data broke its contract: the promotion is refused, and retrying the same data cannot help."""


class CheckCouldNotRun(GateError):
    """The contract could not be fully evaluated (execution error, unknown column, no check ran)."""


class UnsupportedLocation(CheckCouldNotRun):
    """A data file lives where the gate cannot read it (a URI scheme other than a local path or file://)."""


class ContractError(GateError):
    """A contract cannot be built from the declarations and a source's extra checks (names the file)."""
