"""The typed outcome of a quality gate: one result per verification, one outcome per check."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Literal

from checks.samples import FailedRows

Outcome = Literal["passed", "failed", "warned", "not_evaluated"]


@dataclass(frozen=True)
class CheckOutcome:
    """One check of a verification: what it measured against which threshold, and some failing rows."""

    name: str
    type: str
    column: str | None
    outcome: Outcome
    threshold: str
    measured: float | int | None
    diagnostics: Mapping[str, float | int | str] = field(default_factory=dict)
    failed_rows: FailedRows | None = None

    @property
    def label(self) -> str:
        """The check name, prefixed by its column for column checks."""
        return f"{self.column}: {self.name}" if self.column else self.name


@dataclass(frozen=True)
class GateResult:
    """The verification of one table's contract on one snapshot, restricted to some batches.

    ``passed`` is True only if Soda's verification is OK, no execution error was logged, at least one
    check ran and every check was evaluated.
    """

    table: str
    contract: Path
    snapshot_id: int | None
    batches: tuple[date, ...] | None
    passed: bool
    checks: tuple[CheckOutcome, ...]
    errors: tuple[str, ...]
    started: datetime
    finished: datetime
    run_id: str = ""
    references: Mapping[str, int | None] = field(default_factory=dict)
    variables: Mapping[str, str] = field(default_factory=dict)
    report: Path | None = None

    @property
    def failed_checks(self) -> tuple[CheckOutcome, ...]:
        """The checks whose outcome is ``failed``."""
        return tuple(c for c in self.checks if c.outcome == "failed")

    @property
    def duration_ms(self) -> float:
        """Wall time of the verification in milliseconds."""
        return (self.finished - self.started).total_seconds() * 1000
