"""Engines: where a step's frames are computed, Polars in process or Spark, behind one interface.

An engine reads a table at a snapshot or landed files as a native lazy frame, the transforms of
:mod:`lakehouse.transforms` run on it unchanged, and the engine writes the result *for* a commit:
Polars hands back an Arrow table (written by :func:`write_rows`, one file per partition value),
Spark writes Parquet data files into the table's location and hands back their paths. Either way
the commit is lakehouse's (pyiceberg), through :func:`register_files`. Nothing heavy happens at
import: pyspark is imported only inside the functions of :mod:`lakehouse.engines.spark`.
"""

from __future__ import annotations

import itertools
import os
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Protocol, TypeAlias, TypeVar

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from narwhals.typing import IntoLazyFrame
from pyarrow.fs import FileSystem
from pyiceberg.expressions import BooleanExpression
from pyiceberg.io.pyarrow import PyArrowFileIO, _get_parquet_writer_kwargs, schema_to_pyarrow
from pyiceberg.table import Table, TableProperties, Transaction

from lakehouse.errors import ConfigurationError, LakehouseError
from lakehouse.threads import ContextThreadPool
from lakehouse.transforms.frames import EngineName

FrameT = TypeVar("FrameT", bound=IntoLazyFrame)


class EngineUnavailableError(ConfigurationError):
    """The chosen engine cannot run here (Spark without pyspark installed or without Java)."""


class SchemaMismatchError(LakehouseError):
    """What an engine would commit does not match the table's schema; nothing was committed."""


@dataclass(frozen=True)
class DataFiles:
    """Parquet data files written into a table's location, to be registered in one commit."""

    paths: tuple[str, ...]


Written: TypeAlias = pa.Table | DataFiles
"""What an engine's write hands to the commit: rows (Polars) or data files (Spark)."""


class Engine(Protocol[FrameT]):
    """Reads, materializes and writes the native lazy frames (``FrameT``) of one engine."""

    @property
    def name(self) -> EngineName:
        """``polars`` or ``spark``: stamped in snapshot properties."""
        ...

    def read_table(
        self, table: Table, *, snapshot_id: int | None = None, batches: list[date] | None = None
    ) -> FrameT:
        """Rows of ``table`` at ``snapshot_id`` (default: current), only of ``batches`` if given."""
        ...

    def materialize(self, frame: FrameT) -> FrameT:
        """``frame`` computed once, so counting and writing it do not compute it again."""
        ...

    def count(self, frame: FrameT) -> int:
        """Number of rows of ``frame``."""
        ...

    def batches(self, frame: FrameT) -> list[date]:
        """Distinct ``_batch_date`` values of ``frame``, oldest first."""
        ...

    def write(self, table: Table, frame: FrameT, *, constants: Mapping[str, object]) -> Written:
        """``frame`` shaped as ``table``'s schema, with ``constants`` as literal columns, ready to commit."""
        ...

    def to_arrow(self, frame: FrameT) -> pa.Table:
        """The rows of ``frame`` in this process, as Arrow (for small results merged by key)."""
        ...


def shape(table: Table, data: pa.Table, constants: Mapping[str, object]) -> pa.Table:
    """``data`` as ``table``'s Arrow schema (column order and types), with ``constants`` as literal columns.

    ``constants`` naming columns the table lacks are ignored (e.g. ``_loaded_at`` for gold).

    Raises:
        SchemaMismatchError: if a column of the table is neither in ``data`` nor in ``constants``.

    """
    target = schema_to_pyarrow(table.schema(), include_field_ids=False)
    for name, value in constants.items():
        if name in target.names:
            column = pa.repeat(pa.scalar(value, type=target.field(name).type), data.num_rows)
            data = data.drop_columns([name]) if name in data.column_names else data
            data = data.append_column(name, column)
    missing = [n for n in target.names if n not in data.column_names]
    if missing:
        raise SchemaMismatchError(f"{'.'.join(table.name())}: no value for column(s) {', '.join(missing)}")
    return data.select(target.names).cast(target)


def filesystem(table: Table, location: str) -> tuple[FileSystem, str, str]:
    """The pyarrow file system of ``location`` (with the table's credentials), its scheme and path."""
    scheme, netloc, path = PyArrowFileIO.parse_location(location)
    return PyArrowFileIO(table.io.properties).fs_by_scheme(scheme, netloc), scheme, path


def data_directory(table: Table, prefix: str) -> str:
    """A new directory for one write's data files: ``<data path>/<prefix>-<uuid>``.

    The data path is the table's ``write.data.path`` or ``<location>/data``. Files of a write that
    is never committed are orphans there (``lakehouse.maintenance.remove_orphan_files``).
    """
    root = table.metadata.properties.get(
        TableProperties.WRITE_DATA_PATH, f"{table.location().rstrip('/')}/data"
    )
    return f"{root.rstrip('/')}/{prefix}-{uuid.uuid4().hex}"


def write_data_file(table: Table, data: pa.Table, path: str) -> str:
    """Write ``data`` (already shaped as the table's schema) as one Parquet data file at ``path``.

    Encoded as pyiceberg's own writer does, by the table's ``write.parquet.*`` properties (codec,
    level, page and dictionary sizes; pyiceberg's defaults where unset); timestamps are written as
    INT64 microseconds. Register it with :func:`register_files`.

    Raises:
        OSError: if the storage refuses the write (disk full, permission, read-only).

    """
    fs, _, key = filesystem(table, path)
    with fs.open_output_stream(key) as out:
        pq.write_table(
            data, out, coerce_timestamps="us", **_get_parquet_writer_kwargs(table.metadata.properties)
        )
    return path


def write_rows(table: Table, rows: pa.Table) -> DataFiles:
    """Write ``rows`` (shaped by :func:`shape`) as Parquet data files, one per partition value of ``table``.

    The files land in a new :func:`data_directory` (prefix ``rows``); register them with
    :func:`register_files`. pyiceberg's own write filters the whole table once per partition value
    (a second per year of a fact table at SF1); here the rows are gathered once per value. Files
    are encoded in parallel, as pyiceberg does (Arrow releases the GIL).

    Raises:
        OSError: if the storage refuses the write.

    """
    directory = data_directory(table, "rows")
    parts = _partitions(table, rows)
    paths = [f"{directory}/{number:05d}.parquet" for number in range(len(parts))]
    with ContextThreadPool(max_workers=os.cpu_count() or 1, thread_name_prefix="write") as pool:
        return DataFiles(tuple(pool.map(lambda part, path: write_data_file(table, part, path), parts, paths)))


def _partitions(table: Table, rows: pa.Table) -> list[pa.Table]:
    """``rows`` split by ``table``'s partition values (slices of the rows sorted by them); none if empty."""
    spec, schema = table.spec(), table.schema()
    if rows.num_rows == 0 or spec.is_unpartitioned():
        return [rows] if rows.num_rows else []
    keys = pl.DataFrame(
        {
            f"_{number}": pl.from_arrow(
                field.transform.pyarrow_transform(schema.find_type(field.source_id))(
                    rows.column(schema.find_column_name(field.source_id))
                )
            )
            for number, field in enumerate(spec.fields)
        }
    )
    ordered = keys.with_row_index("_row").sort(keys.columns, nulls_last=True, maintain_order=True)
    order = ordered.get_column("_row")
    if not order.is_sorted():  # one gather, not one per partition value
        rows = rows.take(order.to_arrow())
    lengths = ordered.group_by(keys.columns, maintain_order=True).len().get_column("len").to_list()
    offsets = itertools.accumulate(lengths, initial=0)
    return [rows.slice(offset, length) for offset, length in zip(offsets, lengths, strict=False)]


def register_files(
    tx: Transaction,
    files: DataFiles,
    *,
    replace: BooleanExpression,
    branch: str,
    properties: dict[str, str],
) -> None:
    """In transaction ``tx``: delete the rows matching ``replace`` on ``branch``, then add ``files`` there.

    Both snapshots are stamped with ``properties``; the commit is ``tx``'s, so readers see either
    the old rows or the new ones. A file whose rows all match ``replace`` is dropped whole; others
    are rewritten by pyiceberg (in process), which is why the Spark writer keeps one batch date per file.

    Raises:
        ValueError: from pyiceberg, if a file is already in the table or holds several partition values.
        FileNotFoundError: if a file does not exist.

    """
    with warnings.catch_warnings():
        # A first load of a batch replaces nothing; pyiceberg warns about that, which is expected.
        warnings.filterwarnings("ignore", "Delete operation did not match any records", UserWarning)
        tx.delete(replace, snapshot_properties=properties, branch=branch)
    # Always a snapshot, even of no file: it carries the properties (batches, lineage). The files
    # are new (every write has its own directory): no need to scan the table for duplicates.
    tx.add_files(
        list(files.paths), snapshot_properties=properties, check_duplicate_files=False, branch=branch
    )
