"""Table maintenance: compaction, snapshot expiry with file deletion, orphan-file removal, rollback.

pyiceberg 0.12 expires snapshots without deleting their files and has no compaction nor orphan
removal; they are built here on its snapshot-producer API. Each operation is one commit (one
``replace`` snapshot for compaction, one metadata change otherwise), and compaction is retried by
pyiceberg on a concurrent commit.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pyarrow.fs import FileSelector, FileType
from pyiceberg.exceptions import CommitFailedException, ValidationException
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import ArrowScan, PyArrowFileIO, _dataframe_to_data_files
from pyiceberg.manifest import DataFile, ManifestEntry, ManifestEntryStatus, ManifestFile
from pyiceberg.table import FileScanTask, Table, TableProperties
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.snapshots import Operation, Snapshot, Summary, ancestors_of
from pyiceberg.table.update.snapshot import _OverwriteFiles
from pyiceberg.table.update.validate import (
    _validate_data_files_exist,
    _validate_no_new_deletes_for_data_files,
)
from pyiceberg.typedef import EMPTY_DICT

from lakehouse.errors import CommitConflictError, MaintenanceError
from lakehouse.settings import DURATION_PATTERN
from lakehouse.tables import PROP_PROMOTED
from lakehouse.threads import ContextThreadPool

log = logging.getLogger(__name__)

ProgressCallback = Callable[[str, int, int], None]
"""Told ``(what, done, total)`` as a long operation advances."""

CARRIED_PROPERTIES = (PROP_PROMOTED,)
"""Snapshot properties that describe the table state, not a commit: a replace snapshot keeps its parent's."""

DELETE_WORKERS = 8  # deletes are I/O-bound (one request each on object stores)

_DURATION_UNITS = {
    "w": timedelta(weeks=1),
    "d": timedelta(days=1),
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
    "s": timedelta(seconds=1),
}
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_duration(text: str) -> timedelta:
    """Parse a duration such as ``7d``, ``12h``, ``30m``, ``45s``, ``2w`` or ``1d12h``.

    Raises:
        MaintenanceError: if ``text`` is not such a duration.
    """
    compact = text.strip().lower()
    if not re.fullmatch(DURATION_PATTERN, compact):
        raise MaintenanceError(
            f"bad duration {text!r}: use a number and a unit (w, d, h, m, s), e.g. 7d or 12h"
        )
    return sum(
        (int(n) * _DURATION_UNITS[unit] for n, unit in re.findall(r"(\d+)([wdhms])", compact)), timedelta()
    )


def parse_size(text: str) -> int:
    """Parse a size in bytes such as ``128MB``, ``64M``, ``1.5GiB``, ``512k`` or ``1000``.

    Units are binary (``MB`` = 1024² bytes).

    Raises:
        MaintenanceError: if ``text`` is not a positive size.
    """
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", text.strip().lower())
    size = int(float(match.group(1)) * _SIZE_UNITS[match.group(2)]) if match else 0
    if size <= 0:
        raise MaintenanceError(f"bad size {text!r}: use a positive number of bytes or e.g. 64MB, 1GB")
    return size


def table_name(table: Table) -> str:
    """``namespace.table`` of a loaded table."""
    return ".".join(table.name())


def carried_properties(snapshot: Snapshot | None) -> dict[str, str]:
    """The table-state properties of ``snapshot`` that a commit changing no rows must keep."""
    inherited = snapshot.summary.additional_properties if snapshot and snapshot.summary else {}
    return {k: inherited[k] for k in CARRIED_PROPERTIES if k in inherited}


def _report(progress: ProgressCallback | None, what: str, done: int, total: int) -> None:
    if progress is not None:
        progress(what, done, total)


# ---------------------------------------------------------------------------------------------------
# Partitions and compaction


@dataclass(frozen=True)
class PartitionInfo:
    """Live data files of one partition of the current snapshot."""

    partition: str  # as in file paths, e.g. ``batch_month=2024-01``; "" when unpartitioned
    files: int
    records: int
    size_bytes: int


def _live_tasks(table: Table) -> list[FileScanTask]:
    snapshot = table.current_snapshot()
    if snapshot is None:
        return []
    return list(table.scan(snapshot_id=snapshot.snapshot_id).plan_files())


def _by_partition(table: Table, tasks: Iterable[FileScanTask]) -> dict[str, list[FileScanTask]]:
    specs, schema = table.specs(), table.schema()
    groups: dict[str, list[FileScanTask]] = {}
    for task in tasks:
        name = specs[task.file.spec_id].partition_to_path(task.file.partition, schema)
        groups.setdefault(name, []).append(task)
    return dict(sorted(groups.items()))


def partitions(table: Table) -> list[PartitionInfo]:
    """Files, rows and bytes of each partition of the current snapshot, sorted by partition."""
    return [
        PartitionInfo(
            partition=name,
            files=len(tasks),
            records=sum(t.file.record_count for t in tasks),
            size_bytes=sum(t.file.file_size_in_bytes for t in tasks),
        )
        for name, tasks in _by_partition(table, _live_tasks(table)).items()
    ]


@dataclass(frozen=True)
class CompactionResult:
    """What a compaction did; ``snapshot_id`` is ``None`` when no partition needed it."""

    table: str
    snapshot_id: int | None
    partitions: tuple[str, ...]
    files_removed: int = 0
    files_added: int = 0
    records: int = 0
    bytes_removed: int = 0
    bytes_added: int = 0


class _RewriteFiles(_OverwriteFiles):
    """A snapshot that replaces data files by files holding the same rows (operation ``replace``).

    pyiceberg 0.12 has no rewrite operation. Its overwrite, under the default serializable
    isolation, fails on any concurrent append; a rewrite changes no rows, so, as Iceberg's
    ``RewriteFiles``, it only requires that the replaced files are still live and have gained no
    delete files. On a retry the snapshot is rebuilt on the new head, keeping concurrent appends,
    and the table-state properties are re-read from that head.
    """

    def _validate_concurrency(self) -> None:
        window = self._commit_window
        if window is None or window.is_empty() or window.head is None:
            return
        table = self._transaction._table
        _validate_data_files_exist(table, window.head, self._deleted_data_files, window.base)
        _validate_no_new_deletes_for_data_files(
            table, window.head, None, self._deleted_data_files, window.base
        )

    def _summary(self, snapshot_properties: dict[str, str] = EMPTY_DICT) -> Summary:
        metadata = self._transaction.table_metadata
        parent = (
            metadata.snapshot_by_id(self._parent_snapshot_id)
            if self._parent_snapshot_id is not None
            else None
        )
        # pyiceberg computes the totals of overwrite summaries only; the operation is set afterwards
        summary = super()._summary({**carried_properties(parent), **snapshot_properties})
        return Summary(operation=Operation.REPLACE, **summary.additional_properties)


def _small_files(tasks: list[FileScanTask], target_file_bytes: int) -> list[FileScanTask]:
    """The files of a partition worth rewriting: at least two below target, packing into fewer files."""
    small = [t for t in tasks if t.file.file_size_in_bytes < target_file_bytes]
    total = sum(t.file.file_size_in_bytes for t in small)
    if len(small) < 2 or math.ceil(total / target_file_bytes) >= len(small):
        return []
    return small


def _rewrite(table: Table, tasks: list[FileScanTask], target_file_bytes: int) -> list[DataFile]:
    """Write the rows of ``tasks`` into new data files of about ``target_file_bytes`` on disk."""
    data = ArrowScan(table.metadata, table.io, table.schema(), AlwaysTrue()).to_table(tasks)
    on_disk = sum(t.file.file_size_in_bytes for t in tasks)
    # pyiceberg bin-packs by in-memory Arrow bytes: scale the target by this data's compression ratio
    in_memory_target = max(1, int(target_file_bytes * data.nbytes / max(on_disk, 1)))
    properties = {
        **table.metadata.properties,
        TableProperties.WRITE_TARGET_FILE_SIZE_BYTES: str(in_memory_target),
    }
    metadata: TableMetadata = table.metadata.model_copy(update={"properties": properties})
    return list(_dataframe_to_data_files(metadata, data, table.io, write_uuid=uuid.uuid4()))


def compact(
    table: Table,
    *,
    target_file_bytes: int,
    partitions: Sequence[str] | None = None,
    properties: Mapping[str, str] = EMPTY_DICT,
    progress: ProgressCallback | None = None,
) -> CompactionResult:
    """Rewrite small data files into files of about ``target_file_bytes``, in one ``replace`` snapshot.

    Plans on ``table``'s current metadata (pass a freshly loaded table). In each selected partition
    (all when ``partitions`` is ``None``; names as listed by :func:`partitions`), the files below
    target are rewritten when there are at least two and they pack into fewer files. Rows are read
    through the table schema (so files registered with ``add_files`` and older schemas are read
    right) and written with the current partition spec. The snapshot is stamped with
    ``properties`` and keeps the parent's table-state properties. A concurrent append is kept: the
    catalog rejects the first commit, pyiceberg rebuilds the snapshot on the new head and retries.

    Raises:
        MaintenanceError: if the target is not positive, a partition is unknown, the table has
            delete files, or the rewritten row count differs (nothing is committed).
        CommitConflictError: if a concurrent commit removed or rewrote an input file, or every
            retry met a concurrent commit (nothing is committed; run again).
    """
    name = table_name(table)
    if target_file_bytes <= 0:
        raise MaintenanceError(f"target file size must be positive, got {target_file_bytes}")
    tasks = _live_tasks(table)
    if any(t.delete_files for t in tasks):
        raise MaintenanceError(f"{name} has delete files: compaction only rewrites copy-on-write tables")
    groups = _by_partition(table, tasks)
    if partitions is not None:
        unknown = sorted(set(partitions) - set(groups))
        if unknown:
            raise MaintenanceError(
                f"{name} has no partition {', '.join(map(repr, unknown))} (see `lakehouse partitions {name}`)"
            )
        groups = {p: groups[p] for p in partitions}
    plan = {p: small for p, group in groups.items() if (small := _small_files(group, target_file_bytes))}
    if not plan:
        log.info("%s: no partition has small files to compact", name)
        return CompactionResult(name, None, ())

    removed = [t.file for small in plan.values() for t in small]
    written: list[DataFile] = []
    what = f"compacting {name}"
    try:
        for done, small in enumerate(plan.values()):
            _report(progress, what, done, len(plan))
            written += _rewrite(table, small, target_file_bytes)
        _report(progress, what, len(plan), len(plan))
        rows_in, rows_out = sum(f.record_count for f in removed), sum(f.record_count for f in written)
        if rows_in != rows_out:
            raise MaintenanceError(
                f"{name}: compaction read {rows_in} rows but wrote {rows_out}; nothing committed"
            )
        with table.transaction() as tx:
            rewrite = _RewriteFiles(
                operation=Operation.OVERWRITE,
                transaction=tx,
                io=table.io,
                snapshot_properties=dict(properties),
            )
            for data_file in removed:
                rewrite.delete_data_file(data_file)
            for data_file in written:
                rewrite.append_data_file(data_file)
            rewrite.commit()
    except (MaintenanceError, CommitFailedException, ValidationException) as exc:
        # the commit surely did not land: the new files are garbage
        _delete_files(table.io, [f.file_path for f in written])
        if isinstance(exc, MaintenanceError):
            raise
        raise CommitConflictError(f"{name}: compaction met a conflicting concurrent commit: {exc}") from exc
    result = CompactionResult(
        table=name,
        snapshot_id=rewrite.snapshot_id,
        partitions=tuple(plan),
        files_removed=len(removed),
        files_added=len(written),
        records=sum(f.record_count for f in written),
        bytes_removed=sum(f.file_size_in_bytes for f in removed),
        bytes_added=sum(f.file_size_in_bytes for f in written),
    )
    log.info(
        "%s: compacted %d files into %d in %d partition(s), snapshot %s",
        name,
        result.files_removed,
        result.files_added,
        len(plan),
        result.snapshot_id,
    )
    return result


# ---------------------------------------------------------------------------------------------------
# Files referenced by metadata, expiry and orphan removal


def _key(location: str) -> str:
    """A location without its scheme, as the file system lists it (``/abs/path`` or ``bucket/key``)."""
    return PyArrowFileIO.parse_location(location)[2]


class _Manifests:
    """Reads manifests once per operation: snapshots share most of theirs."""

    def __init__(self, io: FileIO) -> None:
        self._io = io
        self._entries: dict[str, list[ManifestEntry]] = {}

    def manifests(self, snapshot: Snapshot) -> list[ManifestFile]:
        return snapshot.manifests(self._io)

    def files(self, manifest: ManifestFile, *, live_only: bool) -> Iterable[str]:
        entries = self._entries.get(manifest.manifest_path)
        if entries is None:
            entries = manifest.fetch_manifest_entry(self._io, discard_deleted=False)
            self._entries[manifest.manifest_path] = entries
        return (
            e.data_file.file_path for e in entries if not live_only or e.status != ManifestEntryStatus.DELETED
        )


def _snapshot_files(snapshot: Snapshot, manifests: _Manifests, *, live_only: bool) -> set[str]:
    """The manifest list, manifests and data/delete files of a snapshot."""
    files = {snapshot.manifest_list}
    for manifest in manifests.manifests(snapshot):
        files.add(manifest.manifest_path)
        files.update(manifests.files(manifest, live_only=live_only))
    return files


def _statistics_files(metadata: TableMetadata, snapshot_ids: set[int] | None = None) -> set[str]:
    stats = [*metadata.statistics, *metadata.partition_statistics]
    return {s.statistics_path for s in stats if snapshot_ids is None or s.snapshot_id in snapshot_ids}


def referenced_files(table: Table) -> set[str]:
    """Every file the table metadata references, as scheme-less keys (see orphan removal).

    Metadata files (current and logged), statistics files, and for every snapshot its manifest
    list, manifests and every file they list (deleted entries included).
    """
    manifests = _Manifests(table.io)
    metadata = table.metadata
    files = {table.metadata_location, *(e.metadata_file for e in metadata.metadata_log)}
    files |= _statistics_files(metadata)
    for snapshot in metadata.snapshots:
        files |= _snapshot_files(snapshot, manifests, live_only=False)
    return {_key(f) for f in files}


@dataclass(frozen=True)
class ExpiryResult:
    """Snapshots expired and files deleted; ``failed`` lists files that could not be deleted."""

    table: str
    expired_snapshot_ids: tuple[int, ...]
    deleted_files: tuple[str, ...]
    failed: tuple[str, ...] = ()


def expire_snapshots(
    table: Table,
    *,
    older_than: timedelta,
    retain_last: int = 1,
    progress: ProgressCallback | None = None,
) -> ExpiryResult:
    """Expire snapshots older than ``older_than`` and delete the files only they referenced.

    Kept whatever their age: the heads of branches (``main`` included) and tags, and the last
    ``retain_last`` snapshots of ``main``'s history. After the metadata commit, the manifest lists,
    manifests, data files and statistics files of the expired snapshots that no remaining snapshot
    uses are deleted.

    Raises:
        MaintenanceError: if ``retain_last`` is below 1.
        CommitConflictError: if the table changed during the commit (nothing expired; run again).
    """
    name = table_name(table)
    if retain_last < 1:
        raise MaintenanceError(f"retain-last must be at least 1, got {retain_last}")
    metadata = table.metadata
    cutoff_ms = int((datetime.now(UTC) - older_than).timestamp() * 1000)
    kept = {ref.snapshot_id for ref in metadata.refs.values()}
    kept |= {
        s.snapshot_id for s in itertools.islice(ancestors_of(table.current_snapshot(), metadata), retain_last)
    }
    expired = [s for s in metadata.snapshots if s.timestamp_ms < cutoff_ms and s.snapshot_id not in kept]
    if not expired:
        log.info("%s: no snapshot to expire", name)
        return ExpiryResult(name, (), ())

    manifests = _Manifests(table.io)
    expired_ids = {s.snapshot_id for s in expired}
    candidates = _statistics_files(metadata, expired_ids)
    for snapshot in expired:
        candidates |= _snapshot_files(snapshot, manifests, live_only=True)
    try:
        table.maintenance.expire_snapshots().by_ids(sorted(expired_ids)).commit()
    except CommitFailedException as exc:
        raise CommitConflictError(f"{name}: the table changed while expiring snapshots: {exc}") from exc
    # what the remaining snapshots use, read from the metadata just committed
    remaining = _statistics_files(table.metadata)
    for snapshot in table.metadata.snapshots:
        remaining |= _snapshot_files(snapshot, manifests, live_only=True)
    remaining_keys = {_key(f) for f in remaining}
    doomed = sorted(f for f in candidates if _key(f) not in remaining_keys)
    deleted, failed = _delete_files(
        table.io, doomed, progress=progress, what=f"deleting expired files of {name}"
    )
    log.info("%s: expired %d snapshot(s), deleted %d file(s)", name, len(expired_ids), len(deleted))
    return ExpiryResult(name, tuple(sorted(expired_ids)), tuple(deleted), tuple(failed))


@dataclass(frozen=True)
class OrphanResult:
    """Unreferenced files old enough to go: deleted, or only listed on a dry run."""

    table: str
    orphan_files: tuple[str, ...]
    dry_run: bool
    recent_skipped: int  # unreferenced files younger than the threshold, kept
    failed: tuple[str, ...] = ()


def _roots(table: Table) -> list[str]:
    """The table location and any data or metadata path set outside it."""
    props = table.metadata.properties
    extra = [
        props[k] for k in (TableProperties.WRITE_DATA_PATH, TableProperties.WRITE_METADATA_PATH) if k in props
    ]
    roots: list[str] = []
    for root in sorted({table.location().rstrip("/"), *(p.rstrip("/") for p in extra)}):
        if not any(_key(root).startswith(_key(r) + "/") for r in roots):
            roots.append(root)
    return roots


def remove_orphan_files(
    table: Table,
    *,
    older_than: timedelta,
    dry_run: bool = False,
    progress: ProgressCallback | None = None,
) -> OrphanResult:
    """Delete files under the table's location that no metadata references and older than ``older_than``.

    The metadata is read before listing, so files of commits landing meanwhile are young and kept;
    the threshold also protects the files of in-flight commits. Listing goes through the pyarrow
    file system of the table's FileIO (local and object stores alike). With ``dry_run`` nothing is
    deleted and the files that would be are returned.
    """
    name = table_name(table)
    referenced = referenced_files(table)
    cutoff = datetime.now(UTC) - older_than
    io = PyArrowFileIO(table.io.properties)
    orphans: list[str] = []
    recent = 0
    for root in _roots(table):
        scheme, netloc, path = PyArrowFileIO.parse_location(root)
        fs = io.fs_by_scheme(scheme, netloc)
        for info in fs.get_file_info(FileSelector(path, recursive=True, allow_not_found=True)):
            if info.type != FileType.File or info.path in referenced:
                continue
            if info.mtime is not None and info.mtime >= cutoff:
                recent += 1
            else:
                orphans.append(f"{scheme}://{info.path}")
    orphans.sort()
    if dry_run:
        log.info("%s: %d orphan file(s) would be deleted (dry run)", name, len(orphans))
        return OrphanResult(name, tuple(orphans), True, recent)
    deleted, failed = _delete_files(
        table.io, orphans, progress=progress, what=f"deleting orphan files of {name}"
    )
    log.info("%s: deleted %d orphan file(s), kept %d recent", name, len(deleted), recent)
    return OrphanResult(name, tuple(deleted), False, recent, tuple(failed))


def _delete_files(
    io: FileIO,
    paths: Sequence[str],
    *,
    progress: ProgressCallback | None = None,
    what: str = "deleting files",
) -> tuple[list[str], list[str]]:
    """Delete ``paths``; returns (deleted, failed). A failure is logged, the others still go."""

    def delete(path: str) -> bool:
        try:
            io.delete(path)
        except Exception:
            log.warning("could not delete %s", path, exc_info=True)
            return False
        return True

    deleted: list[str] = []
    failed: list[str] = []
    _report(progress, what, 0, len(paths))
    with ContextThreadPool(max_workers=DELETE_WORKERS) as pool:
        for done, (path, ok) in enumerate(zip(paths, pool.map(delete, paths), strict=True), 1):
            (deleted if ok else failed).append(path)
            _report(progress, what, done, len(paths))
    return deleted, failed


# ---------------------------------------------------------------------------------------------------
# Time travel


@dataclass(frozen=True)
class RollbackResult:
    """``main`` moved from one snapshot back to an earlier one of its history."""

    table: str
    from_snapshot_id: int | None
    to_snapshot_id: int
    to_timestamp: datetime


def rollback_to_snapshot(table: Table, snapshot_id: int) -> RollbackResult:
    """Move ``main`` back to ``snapshot_id``, which must be in its history (no new snapshot).

    Raises:
        MaintenanceError: if the snapshot is unknown or not an ancestor of the current snapshot.
        CommitConflictError: if ``main`` moved meanwhile (nothing changed; run again).
    """
    name = table_name(table)
    current = table.current_snapshot()
    target = table.metadata.snapshot_by_id(snapshot_id)
    if target is None:
        raise MaintenanceError(f"{name} has no snapshot {snapshot_id} (see `lakehouse snapshots {name}`)")
    if snapshot_id not in {s.snapshot_id for s in ancestors_of(current, table.metadata)}:
        raise MaintenanceError(
            f"{name}: snapshot {snapshot_id} is not in the history of main; rollback only goes back in it"
        )
    result = RollbackResult(
        name,
        current.snapshot_id if current else None,
        snapshot_id,
        datetime.fromtimestamp(target.timestamp_ms / 1000, UTC),
    )
    if result.from_snapshot_id == snapshot_id:
        log.info("%s: main is already at snapshot %s", name, snapshot_id)
        return result
    try:
        table.manage_snapshots().rollback_to_snapshot(snapshot_id).commit()
    except CommitFailedException as exc:
        raise CommitConflictError(f"{name}: main moved during the rollback: {exc}") from exc
    log.info("%s: rolled main back from %s to %s", name, result.from_snapshot_id, snapshot_id)
    return result


def rollback_to_time(table: Table, at: datetime) -> RollbackResult:
    """Move ``main`` back to the snapshot that was current at ``at`` (naive times are UTC).

    Raises:
        MaintenanceError: if ``main`` has no snapshot at or before ``at``.
        CommitConflictError: if ``main`` moved meanwhile.
    """
    at_ms = int((at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp() * 1000)
    history = [s for s in ancestors_of(table.current_snapshot(), table.metadata) if s.timestamp_ms <= at_ms]
    if not history:
        raise MaintenanceError(
            f"{table_name(table)} has no snapshot in main's history at or before {at.isoformat()}"
        )
    return rollback_to_snapshot(table, max(history, key=lambda s: s.timestamp_ms).snapshot_id)
