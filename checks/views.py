"""DuckDB views over Iceberg snapshots: how the gate and the stock Soda CLI see a lakehouse table.

A table ``<namespace>.<name>`` is the view ``"<namespace>"."<name>"`` over ``read_parquet`` of the data
files of one snapshot, projected on the Iceberg schema's columns. Nothing is copied: DuckDB reads the
files when a check queries the view. Contracts name it ``lakehouse/<namespace>/<name>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path
from urllib.parse import urlparse

import duckdb
from pyiceberg.io import (
    S3_ACCESS_KEY_ID,
    S3_ENDPOINT,
    S3_FORCE_VIRTUAL_ADDRESSING,
    S3_REGION,
    S3_SECRET_ACCESS_KEY,
)
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.types import (
    BinaryType,
    BooleanType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IcebergType,
    IntegerType,
    LongType,
    StringType,
    TimestampType,
    TimestamptzType,
    TimeType,
)

from checks.errors import CheckCouldNotRun, UnsupportedLocation
from lakehouse.files import snapshot_files
from lakehouse.tables import BATCH_DATE

DATA_SOURCE = "lakehouse"
"""The Soda data source name: every contract's dataset is ``lakehouse/<namespace>/<table>``."""

_DUCKDB_TYPES: dict[type[IcebergType], str] = {
    BooleanType: "BOOLEAN",
    IntegerType: "INTEGER",
    LongType: "BIGINT",
    FloatType: "FLOAT",
    DoubleType: "DOUBLE",
    DateType: "DATE",
    TimeType: "TIME",
    TimestampType: "TIMESTAMP",
    TimestamptzType: "TIMESTAMPTZ",
    StringType: "VARCHAR",
    BinaryType: "BLOB",
}


def quote_identifier(name: str) -> str:
    """``name`` as a double-quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """``value`` as a single-quoted SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def view_name(identifier: str) -> str:
    """The quoted DuckDB view name of catalog identifier ``namespace.table``."""
    namespace, _, name = identifier.rpartition(".")
    return f"{quote_identifier(namespace)}.{quote_identifier(name)}"


def readable_path(location: str) -> str:
    """The path DuckDB's ``read_parquet`` opens for a data file location written by pyiceberg.

    Raises:
        UnsupportedLocation: for URI schemes other than local files and ``s3://``.
    """
    uri = urlparse(location)
    if uri.scheme in ("", "s3"):
        return location
    if uri.scheme == "file":
        # pyiceberg writes file:///abs/path without percent-encoding, so no unquoting here.
        return f"{uri.netloc}{uri.path}"
    raise UnsupportedLocation(f"cannot read {location}: the gate reads local files and s3:// only")


def _enable_s3(con: duckdb.DuckDBPyConnection, table: Table) -> None:
    """Load httpfs (shipped in the PyPI wheel ``duckdb-extension-httpfs``) and a secret from the table's io.

    The secret lives in this in-memory connection only and is never logged.
    """
    import duckdb_extension_httpfs

    wheel = Path(duckdb_extension_httpfs.__file__).parent
    con.load_extension(str(next(wheel.glob("extensions/*/httpfs.duckdb_extension"))))
    props = table.io.properties
    endpoint = urlparse(props.get(S3_ENDPOINT, "")) if props.get(S3_ENDPOINT) else None
    options = {
        "KEY_ID": props.get(S3_ACCESS_KEY_ID),
        "SECRET": props.get(S3_SECRET_ACCESS_KEY),
        "REGION": props.get(S3_REGION),
        "ENDPOINT": endpoint.netloc if endpoint else None,
        "USE_SSL": None if endpoint is None else str(endpoint.scheme == "https").lower(),
        "URL_STYLE": "path" if props.get(S3_FORCE_VIRTUAL_ADDRESSING, "false") != "true" else "vhost",
    }
    body = ", ".join(
        f"{key} {value if key == 'USE_SSL' else quote_literal(value)}"
        for key, value in options.items()
        if value is not None
    )
    con.execute(f"CREATE OR REPLACE SECRET lakehouse_s3 (TYPE s3{', ' if body else ''}{body})")


def _duckdb_type(kind: IcebergType) -> str:
    if isinstance(kind, DecimalType):
        return f"DECIMAL({kind.precision}, {kind.scale})"
    try:
        return _DUCKDB_TYPES[type(kind)]
    except KeyError:
        raise CheckCouldNotRun(f"no DuckDB type for Iceberg type {kind}") from None


def _source_sql(schema: Schema, paths: Sequence[str]) -> str:
    """Rows of ``paths`` projected on ``schema``; a typed empty relation when there is no file."""
    if not paths:
        nulls = ", ".join(
            f"CAST(NULL AS {_duckdb_type(f.field_type)}) AS {quote_identifier(f.name)}" for f in schema.fields
        )
        return f"SELECT {nulls} WHERE false"
    columns = ", ".join(quote_identifier(f.name) for f in schema.fields)
    files = ", ".join(quote_literal(readable_path(p)) for p in paths)
    return f"SELECT {columns} FROM read_parquet([{files}], union_by_name = true)"


def create_view(
    con: duckdb.DuckDBPyConnection,
    table: Table,
    snapshot_id: int | None,
    batches: Sequence[date] | None = None,
) -> int:
    """Create (or replace) the view of ``table`` at ``snapshot_id``, restricted to rows of ``batches``.

    ``snapshot_id`` None (a table with no snapshot) gives an empty view with the table's columns;
    ``batches`` None keeps every row. Returns the number of data files the view reads.

    Raises:
        UnsupportedLocation: if a data file is neither a local file nor on S3.
        CheckCouldNotRun: if an empty view is needed for a column type DuckDB has no name for here.
        LakehouseError: if the snapshot has delete files (reading by file list would be wrong).
        ValueError: if ``batches`` is given for a table without a ``_batch_date`` column.
    """
    schema = table.schema() if snapshot_id is None else table.scan(snapshot_id=snapshot_id).projection()
    if batches is not None and BATCH_DATE not in {f.name for f in schema.fields}:
        raise ValueError(f"{'.'.join(table.name())} has no {BATCH_DATE} column to select batches by")
    paths = snapshot_files(table, snapshot_id, list(batches) if batches is not None else None)
    if any(p.startswith("s3://") for p in paths):
        _enable_s3(con, table)
    sql = _source_sql(schema, paths)
    if batches is not None:
        dates = ", ".join(f"DATE {quote_literal(d.isoformat())}" for d in batches) or "NULL"
        sql = f"SELECT * FROM ({sql}) WHERE {quote_identifier(BATCH_DATE)} IN ({dates})"
    namespace = table.name()[-2]
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(namespace)}")
    con.execute(f"CREATE OR REPLACE VIEW {view_name('.'.join(table.name()[-2:]))} AS {sql}")
    return len(paths)
