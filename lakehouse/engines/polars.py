"""The Polars engine: in-process lazy frames, read through ``pl.scan_iceberg``, written as Arrow."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import polars as pl
import pyarrow as pa
from pyiceberg.table import Table

from lakehouse.engines import shape
from lakehouse.tables import BATCH_DATE
from lakehouse.transforms.frames import EngineName


class PolarsEngine:
    """Runs transforms on Polars ``LazyFrame``s in this process."""

    @property
    def name(self) -> EngineName:
        """``polars``."""
        return "polars"

    def read_table(
        self, table: Table, *, snapshot_id: int | None = None, batches: list[date] | None = None
    ) -> pl.LazyFrame:
        """Rows of ``table`` at ``snapshot_id`` (default: current), only of ``batches`` if given."""
        frame = pl.scan_iceberg(table, snapshot_id=snapshot_id)
        return frame if batches is None else frame.filter(pl.col(BATCH_DATE).is_in(batches))

    def materialize(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        """``frame`` collected in memory, as a lazy frame."""
        return frame.collect().lazy()

    def count(self, frame: pl.LazyFrame) -> int:
        """Number of rows of ``frame``."""
        rows: int = frame.select(pl.len()).collect().item()
        return rows

    def batches(self, frame: pl.LazyFrame) -> list[date]:
        """Distinct ``_batch_date`` values of ``frame``, oldest first."""
        return sorted(frame.select(pl.col(BATCH_DATE).unique()).collect().get_column(BATCH_DATE).to_list())

    def write(self, table: Table, frame: pl.LazyFrame, *, constants: Mapping[str, object]) -> pa.Table:
        """``frame`` collected as an Arrow table of ``table``'s schema (order and types), with ``constants``.

        Raises:
            SchemaMismatchError: if a column of the table is neither in ``frame`` nor in ``constants``.

        """
        return shape(table, self.to_arrow(frame), constants)

    def to_arrow(self, frame: pl.LazyFrame) -> pa.Table:
        """``frame`` collected as Arrow."""
        return frame.collect().to_arrow()
