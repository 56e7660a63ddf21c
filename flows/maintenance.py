"""The maintenance flow: compaction, snapshot expiry and orphan-file removal across the lakehouse tables.

``python -m flows.maintenance [--dry-run] [--tables TABLE ...] [--target-file-mb N]
[--expire-older-than D] [--retain-last N] [--orphan-older-than D]``
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from pyiceberg.catalog import Catalog

from flows.runner import RunFailed, code_version
from lakehouse.catalog import open_catalog
from lakehouse.errors import MaintenanceError
from lakehouse.maintenance import parse_duration
from lakehouse.settings import Settings
from lakehouse.tables import NAMESPACES, PROP_CODE_VERSION, PROP_ENGINE, PROP_FLOW, PROP_RUN_ID
from tasks.maintenance import (
    OperationReport,
    TableState,
    compact_table,
    expire_table,
    format_bytes,
    inspect_table,
    publish_report,
    reclaimed_bytes,
    remove_table_orphans,
    totals,
)

FLOW = "maintenance"
ENGINE = "pyiceberg"  # compaction rewrites files through pyiceberg/pyarrow
SAFE_ORPHAN_AGE = timedelta(hours=1)
"""Below this orphan threshold, files of a write still in flight may be taken for orphans."""
LISTED_ORPHANS = 20  # most orphan paths logged one by one on a dry run


@dataclass(frozen=True)
class Policy:
    """What maintenance does to each table: the settings, overridden by the run's parameters."""

    target_file_mb: int
    expire_older_than: str
    retain_last: int
    orphan_older_than: str

    @property
    def target_file_bytes(self) -> int:
        """Size of the data files compaction writes, in bytes."""
        return self.target_file_mb * 1024 * 1024

    @property
    def expire_age(self) -> timedelta:
        """Snapshots older than this are expired."""
        return parse_duration(self.expire_older_than)

    @property
    def orphan_age(self) -> timedelta:
        """Unreferenced files older than this are deleted."""
        return parse_duration(self.orphan_older_than)

    def describe(self) -> str:
        """One line for logs and the report."""
        return (
            f"compact to {self.target_file_mb} MiB files; expire snapshots older than "
            f"{self.expire_older_than} keeping the last {self.retain_last} of main; remove orphan "
            f"files older than {self.orphan_older_than}"
        )


def resolve_policy(
    settings: Settings,
    *,
    target_file_mb: int | None = None,
    expire_older_than: str | None = None,
    retain_last: int | None = None,
    orphan_older_than: str | None = None,
) -> Policy:
    """The settings' maintenance policy with the given values overriding it.

    Raises:
        MaintenanceError: if a duration is malformed or a number is below 1.
    """
    policy = Policy(
        target_file_mb=target_file_mb if target_file_mb is not None else settings.maintenance_target_file_mb,
        expire_older_than=expire_older_than or settings.maintenance_expire_older_than,
        retain_last=retain_last if retain_last is not None else settings.maintenance_retain_last,
        orphan_older_than=orphan_older_than or settings.maintenance_orphan_older_than,
    )
    if policy.target_file_mb < 1 or policy.retain_last < 1:
        raise MaintenanceError(
            f"target file size and retain-last must be at least 1, got {policy.target_file_mb} MiB "
            f"and {policy.retain_last}"
        )
    for duration in (policy.expire_older_than, policy.orphan_older_than):
        parse_duration(duration)  # fail now, before any table is touched
    return policy


@dataclass
class MaintenanceSummary:
    """What a maintenance run did: one report per table and operation, and the tables that failed."""

    policy: Policy
    dry_run: bool
    operations: list[OperationReport] = field(default_factory=list)

    @property
    def failed_tables(self) -> list[str]:
        """Tables on which an operation failed, sorted."""
        return sorted({r.table for r in self.operations if r.failed})


def writes_in_flight(state: TableState, younger_than: timedelta, now: datetime) -> list[str]:
    """Audit branches of ``state`` whose head was committed less than ``younger_than`` before ``now``.

    Such a branch belongs to a write-audit-publish still running (the orphan threshold is how long
    a write may take): compacting ``main`` under it would make its publish conflict and redo the
    write. Older audit branches are leftovers of interrupted runs.
    """
    cutoff_ms = (now - younger_than).timestamp() * 1000
    return sorted(name for name, ms in state.audit_branches.items() if ms >= cutoff_ms)


def _select(catalog: Catalog, tables: list[str] | None) -> list[str]:
    """The tables to maintain: the given ones (which must exist) or every lakehouse table created so far.

    Raises:
        MaintenanceError: if a given table does not exist.
    """
    if tables is not None:
        unknown = [t for t in tables if t.count(".") != 1 or not catalog.table_exists(t)]
        if unknown:
            raise MaintenanceError(
                f"unknown table(s) {', '.join(map(repr, unknown))}: give namespace.table "
                "(`lakehouse tables` lists them)"
            )
        return list(dict.fromkeys(tables))
    namespaces = {ns[0] for ns in catalog.list_namespaces()}
    existing = [".".join(t) for ns in NAMESPACES if ns in namespaces for t in sorted(catalog.list_tables(ns))]
    if not existing:
        get_run_logger().info("no lakehouse table created yet, nothing to maintain")
    return existing


def _failed(table_id: str, operation: str, exc: Exception) -> OperationReport:
    get_run_logger().error("%s: %s failed: %s: %s", table_id, operation, type(exc).__name__, exc)
    return OperationReport(table_id, operation, f"failed: {type(exc).__name__}: {exc}", 0.0, failed=True)


def _timed(table_id: str, operation: str, run: Callable[[], OperationReport]) -> OperationReport:
    """Run one operation; a failure becomes a failed report (logged) so the other operations go on."""
    started = time.monotonic()
    try:
        report = run()
    except Exception as exc:
        report = _failed(table_id, operation, exc)
    return replace(report, seconds=time.monotonic() - started)


def _compact(
    catalog: Catalog,
    state: TableState,
    policy: Policy,
    properties: dict[str, str],
    dry_run: bool,
    in_flight: list[str],
) -> OperationReport:
    table_id, before = state.table, state.data_files
    if dry_run:
        return OperationReport(table_id, "compact", "not run (dry run)", 0.0, data_files_before=before)
    if in_flight:
        get_run_logger().info("%s: compaction skipped, a write is in flight on %s", table_id, in_flight)
        return OperationReport(
            table_id,
            "compact",
            f"skipped: write in flight on {', '.join(in_flight)}",
            0.0,
            data_files_before=before,
            data_files_after=before,
        )
    result = compact_table(catalog, table_id, policy.target_file_bytes, properties)
    if result.snapshot_id is None:
        outcome, after = "nothing to compact", before
    else:
        outcome = (
            f"rewrote {result.files_removed} files into {result.files_added} in "
            f"{len(result.partitions)} partition(s), snapshot {result.snapshot_id}"
        )
        after = before - result.files_removed + result.files_added
    return OperationReport(
        table_id, "compact", outcome, 0.0, data_files_before=before, data_files_after=after
    )


def _undeleted(failed: tuple[str, ...]) -> str:
    return f"{len(failed)} file(s) could not be deleted (see the log), e.g. {failed[0]}"


def _expire(catalog: Catalog, state: TableState, policy: Policy, dry_run: bool) -> OperationReport:
    table_id = state.table
    if dry_run:
        return OperationReport(
            table_id, "expire", f"not run (dry run); {state.snapshots} snapshot(s) now", 0.0
        )
    result = expire_table(catalog, table_id, policy.expire_age, policy.retain_last)
    if result.failed:
        outcome = _undeleted(result.failed)
    elif result.expired_snapshot_ids:
        outcome = "ok"
    else:
        outcome = "nothing to expire"
    return OperationReport(
        table_id,
        "expire",
        outcome,
        0.0,
        failed=bool(result.failed),
        snapshots_expired=len(result.expired_snapshot_ids),
        files_deleted=len(result.deleted_files),
        bytes_reclaimed=reclaimed_bytes(state, result.deleted_files),
    )


def _remove_orphans(catalog: Catalog, state: TableState, policy: Policy, dry_run: bool) -> OperationReport:
    table_id = state.table
    result = remove_table_orphans(catalog, table_id, policy.orphan_age, dry_run)
    size = reclaimed_bytes(state, result.orphan_files)
    kept = f"; {result.recent_skipped} recent unreferenced file(s) kept" if result.recent_skipped else ""
    if dry_run:
        logger = get_run_logger()
        for path in result.orphan_files[:LISTED_ORPHANS]:
            logger.info("%s: orphan (dry run): %s", table_id, path)
        if len(result.orphan_files) > LISTED_ORPHANS:
            logger.info("%s: ... and %d more", table_id, len(result.orphan_files) - LISTED_ORPHANS)
        return OperationReport(
            table_id,
            "remove-orphans",
            f"dry run: would delete {len(result.orphan_files)} file(s) ({format_bytes(size)}){kept}",
            0.0,
        )
    return OperationReport(
        table_id,
        "remove-orphans",
        _undeleted(result.failed)
        if result.failed
        else ("ok" if result.orphan_files else "no orphan file") + kept,
        0.0,
        failed=bool(result.failed),
        files_deleted=len(result.orphan_files),
        bytes_reclaimed=size,
    )


def _maintain(
    catalog: Catalog, table_id: str, policy: Policy, properties: dict[str, str], dry_run: bool
) -> list[OperationReport]:
    """Compact, expire and remove orphans on one table; each operation runs even if another failed."""
    logger = get_run_logger()
    started = time.monotonic()
    try:
        state = inspect_table(catalog, table_id)
    except Exception as exc:
        return [replace(_failed(table_id, "inspect", exc), seconds=time.monotonic() - started)]
    now = datetime.now(UTC)
    in_flight = writes_in_flight(state, policy.orphan_age, now)
    stale = sorted(set(state.audit_branches) - set(in_flight))
    if stale:
        logger.warning(
            "%s: audit branch(es) %s are older than %s (interrupted runs?): left in place with their "
            "snapshots and files",
            table_id,
            ", ".join(stale),
            policy.orphan_older_than,
        )
    return [
        _timed(table_id, "compact", lambda: _compact(catalog, state, policy, properties, dry_run, in_flight)),
        _timed(table_id, "expire", lambda: _expire(catalog, state, policy, dry_run)),
        _timed(table_id, "remove-orphans", lambda: _remove_orphans(catalog, state, policy, dry_run)),
    ]


def _run_name() -> str:
    day = datetime.now(UTC).date().isoformat()
    return f"{FLOW}-{day}-dry-run" if flow_run.parameters.get("dry_run") else f"{FLOW}-{day}"


@flow(name=FLOW, flow_run_name=_run_name)
def maintenance(
    tables: list[str] | None = None,
    dry_run: bool = False,
    target_file_mb: int | None = None,
    expire_older_than: str | None = None,
    retain_last: int | None = None,
    orphan_older_than: str | None = None,
) -> MaintenanceSummary:
    """Compact small files, expire old snapshots and remove orphan files, table by table.

    Runs on ``tables`` (default: every lakehouse table created so far) by the ``LAKEHOUSE_MAINTENANCE_*``
    policy, which the other parameters override (durations such as ``7d``, ``12h``, ``0s``). Only
    ``main`` is compacted; branch and tag heads, open ``audit-*`` branches of running writes
    included, keep their snapshots and files; compaction of a table is skipped while a write is in
    flight on it. With ``dry_run`` nothing is committed or deleted: orphan files are only listed.
    What was done is published as the markdown artifact ``maintenance``.

    Raises:
        MaintenanceError: if a parameter is malformed or a given table does not exist (nothing ran).
        RunFailed: if an operation failed on some table (the other tables were still maintained).
    """
    logger = get_run_logger()
    settings = Settings()
    policy = resolve_policy(
        settings,
        target_file_mb=target_file_mb,
        expire_older_than=expire_older_than,
        retain_last=retain_last,
        orphan_older_than=orphan_older_than,
    )
    catalog = open_catalog(settings)
    selected = _select(catalog, tables)
    if policy.orphan_age < SAFE_ORPHAN_AGE and not dry_run:
        logger.warning(
            "orphan threshold %s is below %s: files of writes in flight may be deleted",
            policy.orphan_older_than,
            SAFE_ORPHAN_AGE,
        )
    logger.info(
        "maintaining %d table(s)%s: %s", len(selected), " (dry run)" if dry_run else "", policy.describe()
    )
    properties = {
        PROP_RUN_ID: str(flow_run.get_id() or "local"),
        PROP_FLOW: FLOW,
        PROP_ENGINE: ENGINE,
        PROP_CODE_VERSION: code_version(),
    }
    summary = MaintenanceSummary(policy, dry_run)
    for table_id in selected:
        summary.operations += _maintain(catalog, table_id, policy, properties, dry_run)
    title = f"Maintenance {datetime.now(UTC).date().isoformat()}" + (" (dry run)" if dry_run else "")
    publish_report(summary.operations, title=title, policy=policy.describe())
    logger.info("%s", totals(summary.operations))
    failed = [r for r in summary.operations if r.failed]
    if failed:
        raise RunFailed(
            f"maintenance failed on {len(summary.failed_tables)} table(s): "
            + "; ".join(f"{r.table} {r.operation}: {r.outcome}" for r in failed)
        )
    return summary


def _duration(text: str) -> str:
    try:
        parse_duration(text)
    except MaintenanceError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return text


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; exits non-zero if the run failed."""
    parser = argparse.ArgumentParser(prog="python -m flows.maintenance", description=maintenance.description)
    parser.add_argument("--dry-run", action="store_true", help="commit and delete nothing; list orphans")
    parser.add_argument("--tables", nargs="+", metavar="TABLE", help="namespace.table (default: all)")
    parser.add_argument(
        "--target-file-mb", type=int, help="compaction target (LAKEHOUSE_MAINTENANCE_TARGET_FILE_MB)"
    )
    parser.add_argument(
        "--expire-older-than", type=_duration, help="e.g. 7d (LAKEHOUSE_MAINTENANCE_EXPIRE_OLDER_THAN)"
    )
    parser.add_argument(
        "--retain-last", type=int, help="snapshots of main kept (LAKEHOUSE_MAINTENANCE_RETAIN_LAST)"
    )
    parser.add_argument(
        "--orphan-older-than", type=_duration, help="e.g. 3d (LAKEHOUSE_MAINTENANCE_ORPHAN_OLDER_THAN)"
    )
    args = parser.parse_args(argv)
    try:
        maintenance(
            tables=args.tables,
            dry_run=args.dry_run,
            target_file_mb=args.target_file_mb,
            expire_older_than=args.expire_older_than,
            retain_last=args.retain_last,
            orphan_older_than=args.orphan_older_than,
        )
    except (RunFailed, MaintenanceError) as exc:
        logging.getLogger(__name__).error("maintenance failed: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
