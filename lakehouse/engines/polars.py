"""The Polars engine: in-process lazy frames, read through ``pl.scan_iceberg``, written as Arrow."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

import polars as pl
import pyarrow as pa
from pyiceberg.table import Table

from lakehouse.engines import shape
from lakehouse.landing import LandedFile, LandingZone
from lakehouse.readers import read_landed_files
from lakehouse.tables import BATCH_DATE, ROW_NUMBER, SOURCE_FILE, TPCH
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

    def read_landed(self, zone: LandingZone, files: Sequence[LandedFile]) -> pl.LazyFrame:
        """Rows of landed files of one table, all strings, with ``_source_file`` and ``_row_number``.

        Raises:
            LandingError: naming the file, if one cannot be parsed or lacks columns of its table.
            ValueError: if ``files`` is empty or mixes tables.

        """
        frame = read_landed_files(zone, files)
        return frame.lazy().select(*TPCH[files[0].table].column_names, SOURCE_FILE, ROW_NUMBER)

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
