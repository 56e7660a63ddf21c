"""Which data files hold a table's rows at a snapshot (metadata only, no data read)."""

from __future__ import annotations

from datetime import date
from functools import reduce

from pyiceberg.expressions import (
    AlwaysTrue,
    And,
    BooleanExpression,
    EqualTo,
    GreaterThanOrEqual,
    In,
    LessThanOrEqual,
    Or,
)
from pyiceberg.table import Table

from lakehouse.batches import runs
from lakehouse.errors import LakehouseError
from lakehouse.tables import BATCH_DATE

# Above this many runs of consecutive days, one set predicate is cheaper than a disjunction of ranges.
MAX_RANGES = 16


def batch_filter(batches: list[date] | None) -> BooleanExpression:
    """Row filter selecting the given batch dates (all rows when ``None``).

    Consecutive days become one range: pyiceberg evaluates a set predicate literal by literal
    against every file's statistics, which for a year of dates costs seconds per scan.
    """
    if batches is None:
        return AlwaysTrue()
    spans = runs(batches)
    if not spans or len(spans) > MAX_RANGES:
        return In(BATCH_DATE, {d.isoformat() for d in batches})  # type: ignore[call-arg,misc]
    ranges: list[BooleanExpression] = [
        EqualTo(BATCH_DATE, first.isoformat())  # type: ignore[call-arg,misc]
        if first == last
        else And(
            GreaterThanOrEqual(BATCH_DATE, first.isoformat()),  # type: ignore[call-arg,misc]
            LessThanOrEqual(BATCH_DATE, last.isoformat()),  # type: ignore[call-arg,misc]
        )
        for first, last in spans
    ]
    return reduce(Or, ranges)


def snapshot_files(table: Table, snapshot_id: int | None, batches: list[date] | None = None) -> list[str]:
    """Data file paths of ``table`` at ``snapshot_id`` that may hold rows of ``batches``.

    Files are pruned by partition and column statistics only, so rows of other batches can be in
    them: filter on ``_batch_date`` when reading.

    Raises:
        LakehouseError: if the snapshot has delete files (reading by file list would be wrong).

    """
    if snapshot_id is None:
        return []
    tasks = table.scan(row_filter=batch_filter(batches), snapshot_id=snapshot_id).plan_files()
    paths = []
    for task in tasks:
        if task.delete_files:
            raise LakehouseError(f"{table.name()} snapshot {snapshot_id} has delete files: read it by scan")
        paths.append(task.file.file_path)
    return paths


def batch_partitioned(table: Table) -> bool:
    """True if ``table`` is partitioned by a transform of ``_batch_date`` (its rows belong to batches)."""
    schema = table.schema()
    return any(schema.find_column_name(f.source_id) == BATCH_DATE for f in table.spec().fields)
