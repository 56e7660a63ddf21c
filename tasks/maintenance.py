"""Prefect tasks wrapping table maintenance (compaction, expiry, orphan removal), and its report."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from pyarrow.fs import FileSelector, FileType
from pyiceberg.catalog import Catalog
from pyiceberg.io.pyarrow import PyArrowFileIO
from pyiceberg.table import TableProperties

from lakehouse import maintenance
from lakehouse.maintenance import CompactionResult, ExpiryResult, OrphanResult
from lakehouse.publish import AUDIT_BRANCH_PREFIX
from tasks.retry import transient_only

RETRIES = 3
RETRY_DELAYS: list[float] = [1, 5, 15]
REPORT_KEY = "maintenance"


@dataclass(frozen=True)
class TableState:
    """What maintenance needs to know of a table before it starts.

    ``file_sizes`` maps every file stored under the table's location (scheme-less key, as
    :func:`storage_key` gives) to its size, so the bytes a deletion reclaims can be told afterwards.
    """

    table: str
    data_files: int  # live data files of main
    snapshots: int
    audit_branches: Mapping[str, int]  # open write-audit-publish branch -> head commit time (ms)
    file_sizes: Mapping[str, int]


def storage_key(location: str) -> str:
    """A file location without its scheme, as the file system lists it (``/abs/path``, ``bucket/key``)."""
    return PyArrowFileIO.parse_location(location)[2]


def reclaimed_bytes(state: TableState, paths: Iterable[str]) -> int:
    """Bytes of ``paths`` as they were stored when ``state`` was taken (unknown files count 0)."""
    return sum(state.file_sizes.get(storage_key(p), 0) for p in paths)


@task(
    name="inspect",
    task_run_name="inspect.{table_id}",
    cache_policy=NO_CACHE,
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=transient_only,
)
def inspect_table(catalog: Catalog, table_id: str) -> TableState:
    """Read a table's live data files, snapshots and open audit branches, and list its stored files."""
    table = catalog.load_table(table_id)
    current = table.current_snapshot()
    totals = current.summary.additional_properties if current and current.summary else {}
    audits = {
        name: snapshot.timestamp_ms
        for name, ref in table.metadata.refs.items()
        if name.startswith(AUDIT_BRANCH_PREFIX)
        and (snapshot := table.metadata.snapshot_by_id(ref.snapshot_id)) is not None
    }
    props = table.metadata.properties
    extra = (TableProperties.WRITE_DATA_PATH, TableProperties.WRITE_METADATA_PATH)
    roots = {table.location(), *(props[k] for k in extra if k in props)}
    io = PyArrowFileIO(table.io.properties)
    sizes: dict[str, int] = {}
    for root in sorted(roots):
        scheme, netloc, path = PyArrowFileIO.parse_location(root)
        fs = io.fs_by_scheme(scheme, netloc)
        for info in fs.get_file_info(FileSelector(path, recursive=True, allow_not_found=True)):
            if info.type == FileType.File:
                sizes[info.path] = info.size or 0
    return TableState(
        table=table_id,
        data_files=int(totals.get("total-data-files", 0)),
        snapshots=len(table.metadata.snapshots),
        audit_branches=audits,
        file_sizes=sizes,
    )


@task(
    name="compact",
    task_run_name="compact.{table_id}",
    cache_policy=NO_CACHE,
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=transient_only,
)
def compact_table(
    catalog: Catalog, table_id: str, target_file_bytes: int, properties: Mapping[str, str]
) -> CompactionResult:
    """Rewrite the small data files of ``main`` into target-sized ones, in one replace snapshot.

    The table is loaded afresh on every attempt, so a retry after a concurrent commit plans on
    the new state.

    Raises:
        MaintenanceError: if the table cannot be compacted (never retried).
        CommitConflictError: if a concurrent commit got in the way (retried).
    """
    return maintenance.compact(
        catalog.load_table(table_id), target_file_bytes=target_file_bytes, properties=properties
    )


@task(
    name="expire",
    task_run_name="expire.{table_id}",
    cache_policy=NO_CACHE,
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=transient_only,
)
def expire_table(catalog: Catalog, table_id: str, older_than: timedelta, retain_last: int) -> ExpiryResult:
    """Expire old snapshots (branch and tag heads and the last ``retain_last`` of main are kept).

    Also deletes the files only the expired snapshots referenced.

    Raises:
        MaintenanceError: if ``retain_last`` is below 1 (never retried).
        CommitConflictError: if the table changed during the commit (retried).
    """
    return maintenance.expire_snapshots(
        catalog.load_table(table_id), older_than=older_than, retain_last=retain_last
    )


@task(
    name="remove-orphans",
    task_run_name="remove-orphans.{table_id}",
    cache_policy=NO_CACHE,
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=transient_only,
)
def remove_table_orphans(
    catalog: Catalog, table_id: str, older_than: timedelta, dry_run: bool
) -> OrphanResult:
    """Delete (or with ``dry_run`` only list) unreferenced files under the table older than ``older_than``."""
    return maintenance.remove_orphan_files(
        catalog.load_table(table_id), older_than=older_than, dry_run=dry_run
    )


# ---------------------------------------------------------------------------------------------------
# Report


@dataclass(frozen=True)
class OperationReport:
    """What one maintenance operation did to one table: a row of the run's report.

    Counts are ``None`` where they do not apply to the operation (or it did not run).
    """

    table: str
    operation: str
    outcome: str
    seconds: float
    failed: bool = False
    data_files_before: int | None = None
    data_files_after: int | None = None
    snapshots_expired: int | None = None
    files_deleted: int | None = None
    bytes_reclaimed: int | None = None


def format_bytes(n: int) -> str:
    """``n`` bytes in binary units, e.g. ``12.3 KiB``."""
    if n < 1024:
        return f"{n} B"
    size = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        size /= 1024
        if size < 1024 or unit == "TiB":
            break
    return f"{size:.1f} {unit}"


def _cell(value: int | None, bytes_: bool = False) -> str:
    if value is None:
        return "—"
    return format_bytes(value) if bytes_ else str(value)


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_report(rows: Sequence[OperationReport], *, title: str, policy: str) -> str:
    """The markdown report of a maintenance run: one row per table and operation, then totals."""
    lines = [
        f"# {title}",
        "",
        f"Policy: {policy}",
        "",
        "| table | operation | outcome | data files before | data files after | snapshots expired "
        "| files deleted | bytes reclaimed | duration |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        outcome = f"**{_escape(r.outcome)}**" if r.failed else _escape(r.outcome)
        lines.append(
            f"| {r.table} | {r.operation} | {outcome} | {_cell(r.data_files_before)} "
            f"| {_cell(r.data_files_after)} | {_cell(r.snapshots_expired)} | {_cell(r.files_deleted)} "
            f"| {_cell(r.bytes_reclaimed, bytes_=True)} | {r.seconds:.2f} s |"
        )
    failed = sorted({r.table for r in rows if r.failed})
    lines += ["", totals(rows)]
    if failed:
        lines += ["", f"**Failed tables:** {', '.join(failed)}"]
    return "\n".join(lines) + "\n"


def totals(rows: Sequence[OperationReport]) -> str:
    """One sentence summing up ``rows``: files compacted, snapshots expired, files deleted, bytes."""
    compacted = [r for r in rows if r.operation == "compact" and r.data_files_before != r.data_files_after]
    before = sum(r.data_files_before or 0 for r in compacted)
    after = sum(r.data_files_after or 0 for r in compacted)
    expired = sum(r.snapshots_expired or 0 for r in rows)
    deleted = sum(r.files_deleted or 0 for r in rows)
    reclaimed = sum(r.bytes_reclaimed or 0 for r in rows)
    failed = sum(r.failed for r in rows)
    return (
        f"{len({r.table for r in rows})} table(s): {len(compacted)} compacted ({before} data files into "
        f"{after}), {expired} snapshot(s) expired, {deleted} file(s) deleted, {format_bytes(reclaimed)} "
        f"reclaimed, {failed} operation(s) failed."
    )


def publish_report(rows: Sequence[OperationReport], *, title: str, policy: str) -> None:
    """Publish the run's report as a markdown artifact (key ``maintenance``) of the running flow."""
    create_markdown_artifact(
        render_report(rows, title=title, policy=policy),
        key=REPORT_KEY,
        description=title,
    )
