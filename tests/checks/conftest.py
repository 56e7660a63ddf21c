"""A tiny real lakehouse for the gate: TPC-H at scale 0.001 (DuckDB's tpch extension) in Iceberg tables.

Every bronze, silver, gold and quarantine table exists in a SQLite SqlCatalog; facts are batched by
order date, reference tables land in one batch. Tests that need bad data write it to a branch, so
``main`` of the shared lakehouse always holds good data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import duckdb_extension_tpch
import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.io.pyarrow import schema_to_pyarrow
from pyiceberg.table import Table

from checks.contracts import write_contracts
from lakehouse.catalog import ensure_tables
from lakehouse.tables import TableDef, bronze_table, silver_table
from tests.declared import LOAD_ORDER, REGISTRY, TABLES

REFERENCE_BATCH = date(1992, 1, 1)
RUN_ID = "seed"


def arrow_for(table_def: TableDef, con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    """Rows of ``sql`` cast to the Arrow schema of ``table_def``."""
    return con.sql(sql).to_arrow_table().cast(schema_to_pyarrow(table_def.schema))


def _meta(table: str, batch_date: str) -> str:
    return (
        f"{batch_date} AS _batch_date, 'tpch/{table}/dt=' || {batch_date} || '/part-0.csv' AS _source_file, "
        f"row_number() OVER () AS _row_number, '{RUN_ID}' AS _run_id, now()::TIMESTAMPTZ AS _loaded_at"
    )


def _batch_date(table: str) -> str:
    if table == "orders":
        return "o_orderdate"
    if table == "lineitem":
        return "(SELECT o_orderdate FROM orders WHERE o_orderkey = l_orderkey)"
    return f"DATE '{REFERENCE_BATCH}'"


def silver_sql(table: str) -> str:
    """Typed TPC-H rows of ``table`` with load metadata, as silver holds them (deduplicated by key)."""
    spec = TABLES[table]
    columns = ", ".join(spec.column_names)
    # Below scale 0.01 dbgen repeats (ps_partkey, ps_suppkey) pairs: silver keeps one row per key.
    rows = f"(SELECT DISTINCT ON ({', '.join(spec.key)}) * FROM {table})"
    return f"SELECT {columns}, {_meta(table, _batch_date(table))} FROM {rows}"


def bronze_sql(table: str) -> str:
    """TPC-H rows of ``table`` as text with load metadata, as bronze holds them."""
    spec = TABLES[table]
    columns = ", ".join(f"{c}::VARCHAR AS {c}" for c in spec.column_names)
    return f"SELECT {columns}, {_meta(table, _batch_date(table))}, NULL::VARCHAR AS _error FROM {table}"


_VERSION = f"DATE '{REFERENCE_BATCH}'"
_CUSTOMER_KEY = f"c_custkey * 100000000 + {REFERENCE_BATCH:%Y%m%d}"
GOLD_SQL = {
    "dim_date": f"""
        SELECT CAST(strftime(o_orderdate, '%Y%m%d') AS INTEGER) AS date_key, o_orderdate AS full_date,
               year(o_orderdate) AS year, quarter(o_orderdate) AS quarter, month(o_orderdate) AS month,
               day(o_orderdate) AS day_of_month, isodow(o_orderdate) AS day_of_week,
               dayofyear(o_orderdate) AS day_of_year, isodow(o_orderdate) >= 6 AS is_weekend,
               o_orderdate AS _batch_date, '{RUN_ID}' AS _run_id
        FROM (SELECT DISTINCT o_orderdate FROM orders)""",
    "dim_customer": f"""
        SELECT {_CUSTOMER_KEY} AS customer_key, c_custkey, c_name, c_address, c_nationkey,
               n_name AS c_nation, r_name AS c_region, c_phone, c_acctbal, c_mktsegment,
               {_VERSION} AS valid_from, NULL::DATE AS valid_to, true AS is_current,
               {_VERSION} AS _batch_date, '{RUN_ID}' AS _run_id
        FROM customer JOIN nation ON c_nationkey = n_nationkey JOIN region ON n_regionkey = r_regionkey""",
    "dim_part": f"""
        SELECT p_partkey AS part_key, p_partkey, p_name, p_mfgr, p_brand, p_type, p_size, p_container,
               p_retailprice, {_VERSION} AS _batch_date, '{RUN_ID}' AS _run_id
        FROM part""",
    "dim_supplier": f"""
        SELECT s_suppkey AS supplier_key, s_suppkey, s_name, s_address, s_nationkey, n_name AS s_nation,
               r_name AS s_region, s_phone, s_acctbal, {_VERSION} AS _batch_date, '{RUN_ID}' AS _run_id
        FROM supplier JOIN nation ON s_nationkey = n_nationkey JOIN region ON n_regionkey = r_regionkey""",
    "fct_sales": f"""
        SELECT l_orderkey, l_linenumber, o_orderdate, o_custkey, l_partkey, l_suppkey, l_quantity,
               l_extendedprice, l_discount, l_tax, l_extendedprice * (1 - l_discount) AS revenue,
               l_returnflag, l_linestatus, l_shipdate,
               CAST(strftime(o_orderdate, '%Y%m%d') AS INTEGER) AS date_key,
               o_custkey * 100000000 + {REFERENCE_BATCH:%Y%m%d} AS customer_key, l_partkey AS part_key,
               l_suppkey AS supplier_key, o_orderdate AS _batch_date, '{RUN_ID}' AS _run_id
        FROM lineitem JOIN orders ON l_orderkey = o_orderkey""",
    "daily_revenue": f"""
        SELECT o_orderdate, c_mktsegment, n_name AS c_nation,
               sum(l_extendedprice * (1 - l_discount)) AS revenue,
               count(DISTINCT o_orderkey) AS orders, count(DISTINCT o_custkey) AS customers,
               o_orderdate AS _batch_date, '{RUN_ID}' AS _run_id
        FROM lineitem JOIN orders ON l_orderkey = o_orderkey JOIN customer ON o_custkey = c_custkey
             JOIN nation ON c_nationkey = n_nationkey
        GROUP BY o_orderdate, c_mktsegment, n_name""",
    "pricing_summary": f"""
        SELECT l_shipdate, l_returnflag, l_linestatus, sum(l_quantity) AS sum_qty,
               sum(l_extendedprice) AS sum_base_price,
               sum(l_extendedprice * (1 - l_discount)) AS sum_disc_price,
               sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)) AS sum_charge,
               sum(l_discount) AS sum_discount, count(*) AS count_order,
               o_orderdate AS _batch_date, '{RUN_ID}' AS _run_id
        FROM lineitem JOIN orders ON l_orderkey = o_orderkey
        GROUP BY l_shipdate, l_returnflag, l_linestatus, o_orderdate""",
}


@dataclass
class Lakehouse:
    """The catalog, its TPC-H source connection and a few facts about the data."""

    catalog: SqlCatalog
    tpch: duckdb.DuckDBPyConnection
    busy_day: date

    def table(self, identifier: str) -> Table:
        """Load a table of the catalog."""
        return self.catalog.load_table(identifier)

    def write_branch(self, identifier: str, rows: pa.Table, branch: str) -> int:
        """Append ``rows`` to a new branch cut from ``main``; returns the branch's snapshot id."""
        table = self.table(identifier)
        main = table.metadata.current_snapshot_id
        assert main is not None
        table.manage_snapshots().create_branch(main, branch).commit()
        table.append(rows, branch=branch)
        snapshot = table.refresh().snapshot_by_name(branch)
        assert snapshot is not None
        return snapshot.snapshot_id

    def batch_rows(self, identifier: str, sql: str) -> pa.Table:
        """Rows of ``sql`` (over the TPC-H source tables) cast to the schema of ``identifier``."""
        definition = next(t for t in REGISTRY.definitions() if t.identifier == identifier)
        return arrow_for(definition, self.tpch, sql)


def build_lakehouse(root: Path, tables: Sequence[str] = LOAD_ORDER) -> Lakehouse:
    """Create every lakehouse table under ``root`` and fill bronze, silver and gold from TPC-H SF 0.001."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "wh").mkdir(exist_ok=True)
    catalog = SqlCatalog("t", uri=f"sqlite:///{root}/c.db", warehouse=f"file://{root}/wh")
    ensure_tables(catalog, REGISTRY.definitions())
    tpch = duckdb.connect()
    extension = next(Path(duckdb_extension_tpch.__file__).parent.glob("extensions/*/tpch.duckdb_extension"))
    tpch.load_extension(str(extension))
    tpch.execute("CALL dbgen(sf = 0.001)")
    for name in tables:
        spec = TABLES[name]
        catalog.load_table(f"bronze.{name}").append(arrow_for(bronze_table(spec), tpch, bronze_sql(name)))
        catalog.load_table(f"silver.{name}").append(arrow_for(silver_table(spec), tpch, silver_sql(name)))
    if set(LOAD_ORDER) <= set(tables):
        for name, sql in GOLD_SQL.items():
            definition = REGISTRY.model(f"gold.{name}").definition
            catalog.load_table(f"gold.{name}").append(arrow_for(definition, tpch, sql))
    busy_day = tpch.sql(
        "SELECT o_orderdate FROM orders GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1"
    ).fetchone()
    assert busy_day is not None
    return Lakehouse(catalog, tpch, busy_day[0])


@pytest.fixture(scope="session")
def lakehouse(tmp_path_factory: pytest.TempPathFactory) -> Lakehouse:
    """Every table, filled with good TPC-H data (shared: write bad data to branches only)."""
    return build_lakehouse(tmp_path_factory.mktemp("lakehouse"))


@pytest.fixture(scope="session")
def contracts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every gated table's contract, derived from the bundled declarations, by table."""
    return write_contracts(REGISTRY, tmp_path_factory.mktemp("contracts"))
