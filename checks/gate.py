"""The quality gate: verify a table's Soda contract on one snapshot (one batch) and return a typed result.

``audit`` reads the audited snapshot's Parquet files through a DuckDB view restricted to the batch, adds
views for the tables the contract refers to, verifies the contract with Soda (``checks.verification``)
and turns Soda's result into a ``GateResult``, with failed-row samples and, on request, reports.
``require_pass`` turns a result that did not pass into the right error.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

import duckdb
import yaml
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError

from checks.errors import CheckCouldNotRun, GateError, QualityGateFailed
from checks.report import write_report
from checks.result import CheckOutcome, GateResult, Outcome
from checks.samples import FailedRows, check_body, read_failed_rows, sample_sql
from checks.views import DATA_SOURCE, create_view, view_name
from lakehouse.errors import LakehouseError
from lakehouse.files import batch_partitioned
from lakehouse.tables import NAMESPACES

logger = logging.getLogger(__name__)

# Soda's CheckOutcome names -> ours.
_OUTCOMES: dict[str, Outcome] = {
    "PASSED": "passed",
    "FAILED": "failed",
    "WARN": "warned",
    "NOT_EVALUATED": "not_evaluated",
    "EXCLUDED": "not_evaluated",
}
_NOTHING: Mapping[str, Any] = MappingProxyType({})
# Deterministic failures to set the checks up: results of the gate, not crashes.
_COULD_NOT_RUN = (
    GateError,
    LakehouseError,
    NoSuchTableError,
    duckdb.Error,
    FileNotFoundError,
    yaml.YAMLError,
)


@dataclass(frozen=True)
class _Contract:
    """What the gate needs to know of a contract file, read once per file version."""

    dataset: str
    references: frozenset[str]
    key_columns: tuple[str, ...]


def _strings(node: object) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


_TABLE_REFERENCE = re.compile(rf"\b({'|'.join(NAMESPACES)})[./]([A-Za-z_][A-Za-z0-9_]*)\b")


def _key_columns(document: Mapping[str, Any]) -> tuple[str, ...]:
    """Columns the contract declares unique (duplicate checks): they identify a failing row."""
    keys: list[str] = []
    for check in document.get("checks") or []:
        if isinstance(check, dict) and isinstance(check.get("duplicate"), dict):
            keys += [str(c) for c in check["duplicate"].get("columns", [])]
    for column in document.get("columns") or []:
        if any(isinstance(c, dict) and "duplicate" in c for c in column.get("checks") or []):
            keys.append(str(column["name"]))
    return tuple(dict.fromkeys(keys))


@lru_cache(maxsize=128)
def _read_contract(path: Path, mtime_ns: int) -> _Contract:
    """Parse a contract file (cached per modification time): dataset, referenced tables, key columns."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise CheckCouldNotRun(f"{path} is not a YAML mapping")
    references = {
        f"{m.group(1)}.{m.group(2)}" for text in _strings(document) for m in _TABLE_REFERENCE.finditer(text)
    }
    return _Contract(
        dataset=str(document.get("dataset", "")),
        references=frozenset(references),
        key_columns=_key_columns(document),
    )


def _soda_variable(value: str) -> str | int | float:
    """A variable value as the stock CLI passes it (``--set``): numbers become numbers.

    Soda reads thresholds as YAML numbers, so ``${var.x}`` in a threshold needs a number, not text.
    """
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def _threshold_text(threshold: Any) -> str:
    if threshold is None:
        return ""
    parts = [
        (symbol, getattr(threshold, attribute, None))
        for symbol, attribute in (
            ("=", "must_be"),
            ("≠", "must_not_be"),
            (">", "must_be_greater_than"),
            ("≥", "must_be_greater_than_or_equal"),
            ("<", "must_be_less_than"),
            ("≤", "must_be_less_than_or_equal"),
        )
    ]
    return " and ".join(f"{symbol} {value}" for symbol, value in parts if value is not None)


def _scalar(value: Any) -> float | int | str:
    return value if isinstance(value, int | float | str) else str(value)


def _schema_problems(check_result: Any) -> FailedRows | None:
    """Missing, unexpected and mistyped columns of a failed schema check."""
    rows: list[tuple[str | None, ...]] = []
    rows += [
        ("missing", c, None, None) for c in getattr(check_result, "expected_column_names_not_actual", [])
    ]
    rows += [
        ("unexpected", c, None, None) for c in getattr(check_result, "actual_column_names_not_expected", [])
    ]
    rows += [
        ("data type", m.column, m.get_expected(), m.get_actual())
        for m in getattr(check_result, "column_data_type_mismatches", [])
    ]
    if getattr(check_result, "are_columns_out_of_order", False):
        rows.append(("column order", None, None, None))
    return FailedRows(("problem", "column", "expected", "actual"), tuple(rows)) if rows else None


def _outcome(
    check_result: Any,
    con: duckdb.DuckDBPyConnection,
    view: str,
    table_columns: Sequence[str],
    key_columns: Sequence[str],
) -> CheckOutcome:
    check = check_result.check
    outcome = _OUTCOMES.get(check_result.outcome.name, "not_evaluated")
    failed_rows: FailedRows | None = None
    if outcome == "failed":
        if check.type == "schema":
            failed_rows = _schema_problems(check_result)
        else:
            sql = sample_sql(
                view, check.type, check.column_name, check_body(check.definition), table_columns, key_columns
            )
            failed_rows = read_failed_rows(con, sql) if sql else None
    measured = check_result.threshold_value
    return CheckOutcome(
        name=check.name or check.type,
        type=check.type,
        column=check.column_name,
        outcome=outcome,
        threshold=_threshold_text(check.threshold),
        measured=measured if isinstance(measured, int | float) else None,
        diagnostics={k: _scalar(v) for k, v in (check_result.diagnostic_metric_values or {}).items()},
        failed_rows=failed_rows,
    )


def _verify(
    con: duckdb.DuckDBPyConnection,
    contract: Path,
    variables: Mapping[str, str],
    view: str,
    table_columns: Sequence[str],
    key_columns: Sequence[str],
) -> tuple[bool, list[CheckOutcome], list[str]]:
    """Run Soda on the views of ``con``: (Soda says OK, check outcomes, execution errors)."""
    # Imported on first use: importing Soda costs most of a second and decides its telemetry, so it
    # happens after the entry point has set SODA_CORE_TELEMETRY_ENABLED.
    with warnings.catch_warnings():
        # soda-core 4.28 deprecates its own UNION_ALL SQL class at import; the gate does not use it.
        warnings.filterwarnings(
            "ignore", message="Not fully supported for all datasources yet", category=DeprecationWarning
        )
        from checks.verification import verify

    try:
        session = verify(con, contract, {k: _soda_variable(v) for k, v in variables.items()})
    except Exception as exc:  # Soda's own failures are results of the gate (could not run), not crashes.
        logger.exception("verification of %s raised", contract)
        return False, [], [f"verification raised {type(exc).__name__}: {exc}"]
    errors = list(session.get_errors())
    outcomes: list[CheckOutcome] = []
    for contract_result in session.contract_verification_results:
        if contract_result.error is not None:
            errors.append(f"{type(contract_result.error).__name__}: {contract_result.error}")
        outcomes += [
            _outcome(r, con, view, table_columns, key_columns) for r in contract_result.check_results
        ]
    return bool(session.is_ok), outcomes, errors


def audit(
    catalog: Catalog,
    table_identifier: str,
    snapshot_id: int | None,
    batches: Sequence[date] | None,
    *,
    variables: Mapping[str, str] = _NOTHING,
    references: Mapping[str, int] = _NOTHING,
    contract: Path,
    reports_dir: Path | None = None,
    run_id: str = "",
) -> GateResult:
    """Verify the contract of ``table_identifier`` on snapshot ``snapshot_id``, restricted to ``batches``.

    The audited table is a DuckDB view over that snapshot's files, rows of ``batches`` only (all rows
    when ``batches`` is None). Every other table the contract names (``silver.orders`` in SQL,
    ``lakehouse/silver/orders`` as reference data) is a view over its ``main`` snapshot, or over the
    snapshot given in ``references``. A referenced table partitioned by batch (bronze, quarantine,
    silver facts, gold facts and marts) is restricted to ``batches`` too: facts land with their
    parents' batch (a line item with its order, as silver checks it), the quarantine share is the
    share of the audited batches, and the audit reads what the batches hold, not the whole history.
    Unpartitioned tables (reference data, gold dimensions) are read whole. ``variables`` are the
    contract's variables (numbers as text, as with ``soda ... --set``). ``contract`` is the contract file
    (see :func:`checks.contracts.write_contracts`). When ``reports_dir`` is given, the result is written
    there as JSON (``checks.report.write_report``) and the returned result names that file.

    Anything that keeps the checks from running (no contract, unreadable files, Soda errors) is
    reported in ``GateResult.errors``, never raised, so a report is written for it.

    Raises:
        NoSuchTableError: if the audited table does not exist in the catalog (a missing referenced
            table is an error of the result).
        OSError: if the reports cannot be written.
    """
    started = datetime.now(UTC)
    path = contract
    table = catalog.load_table(table_identifier)
    checks: list[CheckOutcome] = []
    errors: list[str] = []
    read_snapshots: dict[str, int | None] = {}
    soda_ok = False
    # Every check reads the views again: cache the (immutable) Parquet footers for this audit.
    con = duckdb.connect()
    con.execute("SET parquet_metadata_cache = true")
    try:
        spec = _read_contract(path, path.stat().st_mtime_ns)
        if spec.dataset != f"{DATA_SOURCE}/{table_identifier.replace('.', '/')}":
            raise CheckCouldNotRun(f"contract {path} is for dataset {spec.dataset!r}, not {table_identifier}")
        create_view(con, table, snapshot_id, batches)
        for identifier in sorted(spec.references - {table_identifier}):
            if not catalog.table_exists(identifier):  # text that reads like a table name, e.g. in a comment
                continue
            referenced = catalog.load_table(identifier)
            ref_snapshot = references.get(identifier, referenced.metadata.current_snapshot_id)
            create_view(con, referenced, ref_snapshot, batches if batch_partitioned(referenced) else None)
            read_snapshots[identifier] = ref_snapshot
        table_columns = [f.name for f in table.schema().fields]
        soda_ok, checks, errors = _verify(
            con, path, variables, view_name(table_identifier), table_columns, spec.key_columns
        )
    except _COULD_NOT_RUN as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        con.close()
    evaluated = bool(checks) and all(c.outcome in ("passed", "warned") for c in checks)
    result = GateResult(
        table=table_identifier,
        contract=path,
        snapshot_id=snapshot_id,
        batches=tuple(batches) if batches is not None else None,
        passed=soda_ok and not errors and evaluated,
        checks=tuple(checks),
        errors=tuple(errors),
        started=started,
        finished=datetime.now(UTC),
        run_id=run_id,
        references=read_snapshots,
        variables=dict(variables),
    )
    if reports_dir is not None:
        result = replace(result, report=write_report(result, reports_dir))
    logger.info(
        "gate %s snapshot %s: %s (%d checks, %d failed, %d errors, %.0f ms)",
        table_identifier,
        snapshot_id,
        "passed" if result.passed else "NOT passed",
        len(result.checks),
        len(result.failed_checks),
        len(result.errors),
        result.duration_ms,
    )
    return result


def describe(result: GateResult, limit: int = 10) -> str:
    """One paragraph naming the table, the failed checks with measured values, and the errors."""
    batches = "all batches" if result.batches is None else ", ".join(d.isoformat() for d in result.batches)
    batches = batches or "no batch"
    text = f"{result.table} snapshot {result.snapshot_id} ({batches})"
    failed = result.failed_checks
    if failed:
        shown = "; ".join(f"{c.label}: measured {c.measured}, expected {c.threshold}" for c in failed[:limit])
        more = f"; and {len(failed) - limit} more" if len(failed) > limit else ""
        text += f": {len(failed)} of {len(result.checks)} checks failed: {shown}{more}"
    not_evaluated = [c.label for c in result.checks if c.outcome == "not_evaluated"]
    if not_evaluated:
        text += f"; not evaluated: {', '.join(not_evaluated[:limit])}"
    if not result.checks:
        text += "; no check ran"
    if result.errors:
        text += f"; errors: {' | '.join(e.splitlines()[0] for e in result.errors[:limit])}"
    return text


def require_pass(result: GateResult) -> None:
    """Return if the gate passed, else raise the error that says why.

    Raises:
        CheckCouldNotRun: if an execution error was logged, no check ran or a check was not evaluated.
        QualityGateFailed: if every check ran and some failed (the data is bad: never retry).
    """
    if result.passed:
        return
    could_not_run = (
        result.errors or not result.checks or any(c.outcome == "not_evaluated" for c in result.checks)
    )
    if could_not_run:
        raise CheckCouldNotRun(f"checks could not run on {describe(result)}")
    raise QualityGateFailed(f"quality gate failed on {describe(result)}")
