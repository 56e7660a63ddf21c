"""Which data files hold a table's rows at a snapshot (metadata only, no data read)."""

from __future__ import annotations

from datetime import date

from pyiceberg.expressions import AlwaysTrue, BooleanExpression, In
from pyiceberg.table import Table

from lakehouse.errors import LakehouseError
from lakehouse.tables import BATCH_DATE


def batch_filter(batches: list[date] | None) -> BooleanExpression:
    """Row filter selecting the given batch dates (all rows when ``None``)."""
    if batches is None:
        return AlwaysTrue()
    return In(BATCH_DATE, {d.isoformat() for d in batches})  # type: ignore[call-arg,misc]


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
