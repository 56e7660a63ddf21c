"""MERGE by key (upsert) that touches only the data files that can hold the merged keys.

Copy-on-write at file granularity, a few files in memory at a time (``REWRITE_THREADS``), committed
as one snapshot through write-audit-publish:

1. **Plan** (metadata only): ``plan_files`` of ``main`` with a key-range filter (``min ≤ key ≤ max``
   per key column) prunes partitions and files by their statistics; each remaining file is then
   checked against the sorted incoming key values with its lower/upper bounds (a binary search per
   key column), which is what an ``In`` filter would do without pyiceberg's 200-value limit.
2. **Rewrite**: each candidate file is read (several in parallel threads); if none of its rows has
   an incoming key it is left alone, otherwise it is deleted and its other rows are written to a
   new file.
3. **Insert**: the incoming rows, sorted by key (tight statistics for later merges), are written
   as new files.
4. **Commit**: deletes and adds in one overwrite snapshot on the audit branch, audited, then
   published (``main`` fast-forwarded) — or discarded.

A key's incoming rows replace *all* of its rows in the table (one row for a unique key; a whole
SCD2 version chain when the key is the business key). Rows whose key is not among the incoming
ones are kept: deletes by absence are not applied. A key may move between partitions. Unlike
pyiceberg's ``Table.upsert`` nothing is compared column by column and no row filter with one
term per key is built (iceberg-python #3129: 1,066 s for 1M rows).
"""

from __future__ import annotations

import bisect
import itertools
import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.conversions import from_bytes
from pyiceberg.expressions import AlwaysTrue, And, BooleanExpression, GreaterThanOrEqual, LessThanOrEqual
from pyiceberg.io.pyarrow import ArrowScan, _dataframe_to_data_files, schema_to_pyarrow
from pyiceberg.manifest import DataFile
from pyiceberg.table import FileScanTask, Table
from pyiceberg.types import DateType, PrimitiveType

from lakehouse.errors import LakehouseError
from lakehouse.publish import Audit, FileChanges, Staged, publish_audited, stage_files
from lakehouse.threads import ContextThreadPool

log = logging.getLogger(__name__)

_HIT = "__hit"
REWRITE_THREADS = min(os.cpu_count() or 1, 8)
"""Candidate files read, filtered and rewritten at once: one per core (each is CPU-bound; more only
contend: 4 threads on 2 cores took 1.9 s where 2 took 1.6 s for the 6M-row benchmark), at most 8
files in memory."""


@dataclass(frozen=True)
class MergeStats:
    """What a merge did: rows and data files."""

    rows_in: int  # incoming rows
    keys_updated: int  # incoming keys that were in the table
    keys_inserted: int  # incoming keys that were not
    rows_replaced: int  # table rows removed because their key came in
    files_pruned: int  # live files skipped from metadata alone
    files_read: int  # candidate files read
    files_rewritten: int  # files removed because they held incoming keys
    files_added: int  # files written (rewritten rows and incoming rows)
    seconds: float


@dataclass(frozen=True)
class MergeResult:
    """A published merge: its snapshot and what it did."""

    staged: Staged
    stats: MergeStats


@dataclass(frozen=True)
class _KeyColumn:
    """One key column: its Iceberg field and the sorted distinct incoming values, in bound form."""

    name: str
    field_id: int
    kind: PrimitiveType
    values: list[Any]

    def may_hold(self, file: DataFile) -> bool:
        """Whether an incoming value lies within the file's bounds of this column (True if unknown)."""
        lower, upper = file.lower_bounds or {}, file.upper_bounds or {}
        low = from_bytes(self.kind, lower[self.field_id]) if self.field_id in lower else None
        high = from_bytes(self.kind, upper[self.field_id]) if self.field_id in upper else None
        at = 0 if low is None else bisect.bisect_left(self.values, low)
        return at < len(self.values) and (high is None or self.values[at] <= high)

    def range_filter(self) -> BooleanExpression:
        """``min ≤ column ≤ max`` of the incoming values, as a pyiceberg row filter."""
        low, high = (_literal(self.kind, v) for v in (self.values[0], self.values[-1]))
        return And(GreaterThanOrEqual(term=self.name, value=low), LessThanOrEqual(term=self.name, value=high))


def _literal(kind: PrimitiveType, value: Any) -> Any:
    """A bound-form value as a literal pyiceberg binds to ``kind``: a date as ISO text, else as is."""
    if isinstance(kind, DateType):
        return pa.scalar(value, pa.int32()).cast(pa.date32()).as_py().isoformat()
    return value  # timestamps bind from microseconds since the epoch


def _bound_form(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Values as pyiceberg decodes file bounds: dates as days, timestamps as microseconds."""
    if pa.types.is_date32(column.type):
        return column.cast(pa.int32())
    if pa.types.is_timestamp(column.type):
        return column.cast(pa.timestamp("us", column.type.tz)).cast(pa.int64())
    return column


def _key_columns(table: Table, keys: pa.Table) -> list[_KeyColumn]:
    """Each key column of the table with the sorted distinct values of ``keys``'s column of that name.

    Raises:
        ValueError: if a key column is not of a primitive type.

    """
    schema = table.schema()
    out = []
    for name in keys.column_names:
        field = schema.find_field(name)
        if not isinstance(field.field_type, PrimitiveType):
            raise ValueError(f"key column {name} is not of a primitive type")
        values = pc.unique(_bound_form(keys.column(name))).to_pylist()
        out.append(_KeyColumn(name, field.field_id, field.field_type, sorted(values)))
    return out


def _matched(rows: pa.Table, keys: pl.DataFrame) -> pa.Array:
    """Boolean mask of ``rows`` whose key (the columns of ``keys``) is among ``keys``."""
    frame = pl.from_arrow(rows.select(keys.columns))
    assert isinstance(frame, pl.DataFrame)
    flagged = keys.with_columns(pl.lit(True).alias(_HIT))  # keys are unique: the join keeps every row once
    hits = frame.join(flagged, on=keys.columns, how="left", maintain_order="left").get_column(_HIT)
    return hits.fill_null(False).to_arrow()


MergeData: TypeAlias = pa.Table | Callable[[int], pa.Table]
"""Rows to merge, or a function computing them from the ``main`` snapshot id the merge is planned
against (for rows derived from the table itself, such as SCD2 chains: a retry recomputes them)."""


def _check_key(table: Table, key: Sequence[str]) -> None:
    """Raises ValueError if ``key`` is empty or names a column that is not in the table."""
    if not key:
        raise ValueError("a merge needs at least one key column")
    missing = [k for k in key if k not in table.schema().column_names]
    if missing:
        raise ValueError(f"key columns {missing} are not columns of {'.'.join(table.name())}")


def _aligned(table: Table, data: pa.Table, key: Sequence[str]) -> pa.Table:
    """``data`` cast to the table's Arrow schema.

    Raises:
        ValueError: if a key column has null values.

    """
    target = schema_to_pyarrow(table.schema(), include_field_ids=False)
    aligned = data.select(target.names).cast(target)
    nulls = [k for k in key if aligned.column(k).null_count]
    if nulls:
        raise ValueError(f"key columns {nulls} have null values")
    return aligned


def _live_files(table: Table, snapshot_id: int) -> int:
    """Number of data files of a snapshot, from its summary (0 if unknown)."""
    snapshot = table.snapshot_by_id(snapshot_id)
    summary = snapshot.summary if snapshot is not None else None
    return int(summary.additional_properties.get("total-data-files", 0)) if summary is not None else 0


@dataclass(frozen=True)
class _Rewrite:
    """What rewriting one candidate file did: nothing if no row of it had an incoming key."""

    removed: DataFile | None = None
    added: tuple[DataFile, ...] = ()
    keys: pa.Table | None = None  # the incoming keys found in the file
    rows_replaced: int = 0


@dataclass
class _Writer:
    """Writes data files of one table for one commit (file names from one uuid and counter)."""

    table: Table
    write_uuid: uuid.UUID = field(default_factory=uuid.uuid4)
    counter: itertools.count[int] = field(default_factory=itertools.count)

    def write(self, rows: pa.Table) -> tuple[DataFile, ...]:
        """Write ``rows`` as data files of the table (partitioned and sized as its properties say)."""
        metadata, io = self.table.metadata, self.table.io
        return tuple(_dataframe_to_data_files(metadata, rows, io, self.write_uuid, self.counter))


def _rewrite(table: Table, task: FileScanTask, keys: pl.DataFrame, writer: _Writer) -> _Rewrite:
    """Read one candidate file; if rows of it have incoming keys, write its other rows to new files.

    Raises:
        LakehouseError: if the file has delete files.

    """
    if task.delete_files:
        raise LakehouseError(
            f"{table.name()}: {task.file.file_path} has delete files; merge cannot rewrite it"
        )
    rows = ArrowScan(table.metadata, table.io, table.schema(), AlwaysTrue()).to_table([task])
    mask = _matched(rows, keys)
    hits = pc.sum(mask).as_py() or 0
    if hits == 0:
        return _Rewrite()
    kept = rows.filter(pc.invert(mask))
    added = writer.write(kept) if kept.num_rows else ()
    return _Rewrite(task.file, added, rows.select(keys.columns).filter(mask), hits)


@dataclass
class _Plan:
    """A merge as a :data:`~lakehouse.publish.FilePlan`; keeps the statistics of its last run."""

    source: MergeData
    key: tuple[str, ...]
    stats: MergeStats | None = None

    def __call__(self, table: Table, base: int) -> FileChanges:
        started = time.perf_counter()
        data = _aligned(table, self.source(base) if callable(self.source) else self.source, self.key)
        live = _live_files(table, base)
        if data.num_rows == 0:
            self.stats = MergeStats(0, 0, 0, 0, live, 0, 0, 0, time.perf_counter() - started)
            return FileChanges()
        keys = data.select(list(self.key))
        columns = _key_columns(table, keys)
        key_frame = pl.from_arrow(keys)
        assert isinstance(key_frame, pl.DataFrame)
        key_frame = key_frame.unique()
        row_filter: BooleanExpression = AlwaysTrue()
        for column in columns:
            row_filter = And(row_filter, column.range_filter())
        tasks = table.scan(row_filter=row_filter, snapshot_id=base).plan_files()
        candidates = [t for t in tasks if all(c.may_hold(t.file) for c in columns)]
        writer = _Writer(table)
        # A few files at a time (Arrow reads and Parquet writes release the GIL); memory holds as
        # many files as there are threads.
        with ContextThreadPool(max_workers=REWRITE_THREADS) as pool:
            incoming = pool.submit(writer.write, data.sort_by([(k, "ascending") for k in self.key]))
            rewrites = list(pool.map(lambda task: _rewrite(table, task, key_frame, writer), candidates))
            written = incoming.result()
        changed = [r for r in rewrites if r.removed is not None]
        found = [r.keys for r in changed if r.keys is not None]
        updated = pa.concat_tables(found).group_by(list(self.key)).aggregate([]).num_rows if found else 0
        deleted = tuple(r.removed for r in changed if r.removed is not None)
        added = tuple(f for r in changed for f in r.added) + written
        self.stats = MergeStats(
            rows_in=data.num_rows,
            keys_updated=updated,
            keys_inserted=key_frame.height - updated,
            rows_replaced=sum(r.rows_replaced for r in changed),
            files_pruned=live - len(candidates),
            files_read=len(candidates),
            files_rewritten=len(deleted),
            files_added=len(added),
            seconds=time.perf_counter() - started,
        )
        return FileChanges(deleted=deleted, added=added)


def merge(
    table: Table,
    data: MergeData,
    key: Sequence[str],
    *,
    branch: str,
    properties: dict[str, str],
    audit: Audit | None,
    before_publish: Callable[[], None] | None = None,
) -> MergeResult:
    """Upsert ``data`` into ``table`` by ``key`` through write-audit-publish, as one snapshot.

    Every table row whose key is among ``data``'s keys is replaced by ``data``'s rows of that key;
    other rows are kept; new keys are inserted. The change is staged on ``branch`` (cut from
    ``main``), audited, then published; a concurrent commit replans it on the new ``main``.

    Args:
        table: the target table.
        data: the incoming rows, with (at least) the table's columns, cast to its schema; or a
            function computing them from the ``main`` snapshot id the merge is planned against.
        key: the columns identifying a row (or a group of rows, e.g. an SCD2 chain).
        branch: the audit branch.
        properties: snapshot summary properties (run id, batches, ...).
        audit: verifies the staged snapshot; raises to reject it.
        before_publish: runs after a passing audit, just before ``main`` moves.

    Raises:
        ValueError: if ``key`` is empty or unknown, or has null values in the rows.
        LakehouseError: if a file holding an incoming key has delete files.
        CommitConflictError: if every attempt met a concurrent commit.
        Exception: whatever ``audit`` raises; ``main`` is then untouched.

    """
    _check_key(table, key)
    plan = _Plan(data, tuple(key))
    staged = publish_audited(
        table,
        lambda: stage_files(table, plan, branch=branch, properties=properties),
        audit=audit,
        before_publish=before_publish,
    )
    assert plan.stats is not None  # set by the plan that staged the published snapshot
    log.info(
        "merge into %s: %d rows in (%d keys updated, %d inserted); %d files read of %d, %d rewritten, "
        "%d added, %.2f s",
        staged.table,
        plan.stats.rows_in,
        plan.stats.keys_updated,
        plan.stats.keys_inserted,
        plan.stats.files_read,
        plan.stats.files_read + plan.stats.files_pruned,
        plan.stats.files_rewritten,
        plan.stats.files_added,
        plan.stats.seconds,
    )
    return MergeResult(staged, plan.stats)
