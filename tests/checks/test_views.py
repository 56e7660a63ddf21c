"""DuckDB views over Iceberg snapshots."""

from __future__ import annotations

from datetime import date

import duckdb
import pytest

from checks.errors import CheckCouldNotRun, UnsupportedLocation
from checks.views import create_view, readable_path
from tests.checks.conftest import Lakehouse


def test_local_locations_become_plain_paths() -> None:
    assert readable_path("file:///tmp/wh/a b/x.parquet") == "/tmp/wh/a b/x.parquet"
    assert readable_path("/tmp/x.parquet") == "/tmp/x.parquet"


def test_object_store_locations_are_refused_clearly() -> None:
    assert readable_path("s3://bucket/x.parquet") == "s3://bucket/x.parquet"
    with pytest.raises(UnsupportedLocation, match=r"gs://bucket/x\.parquet.*local files and s3") as raised:
        readable_path("gs://bucket/x.parquet")
    assert isinstance(raised.value, CheckCouldNotRun)


def test_view_holds_the_batch_only_with_the_table_columns(lakehouse: Lakehouse) -> None:
    table = lakehouse.table("silver.orders")
    con = duckdb.connect()
    files = create_view(con, table, table.metadata.current_snapshot_id, [lakehouse.busy_day])
    assert files >= 1
    (rows, days) = (
        con.sql('SELECT count(*), count(DISTINCT _batch_date) FROM "silver"."orders"').fetchone() or ()
    )
    expected = lakehouse.tpch.sql(f"SELECT count(*) FROM orders WHERE o_orderdate = '{lakehouse.busy_day}'")
    assert (rows, days) == ((expected.fetchone() or (0,))[0], 1)
    assert [c[0] for c in con.sql('DESCRIBE "silver"."orders"').fetchall()] == [
        f.name for f in table.schema().fields
    ]


def test_view_of_no_snapshot_or_no_batch_is_empty_and_typed(lakehouse: Lakehouse) -> None:
    table = lakehouse.table("silver.orders")
    con = duckdb.connect()
    assert create_view(con, table, None) == 0
    types = dict(
        con.sql("SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'orders'").fetchall()
    )
    assert types["o_totalprice"] == "DECIMAL(15,2)"
    assert types["_loaded_at"] == "TIMESTAMP WITH TIME ZONE"
    create_view(con, table, table.metadata.current_snapshot_id, [date(1970, 1, 1)])
    assert con.sql('SELECT count(*) FROM "silver"."orders"').fetchone() == (0,)
