"""Parity: every transform gives identical rows (values, types, order where defined) on Polars and Spark."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from lakehouse.spec import Column, ColumnType
from lakehouse.transforms.frames import lazy
from lakehouse.transforms.parse import parse_columns
from lakehouse.transforms.silver import conform, merge_latest
from tests.declared import REGISTRY, TABLES, without_rules

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

pytestmark = pytest.mark.spark

D1, D2, D3 = date(1995, 1, 1), date(1995, 1, 2), date(1995, 1, 3)

NUMBERS = [
    "1", "-1", "+1", " 7 ", "\t8\n", "00012", "-0", "1.5", "1.05", "1.", ".5", "-.5", "1.005", "1e3", "0x10",
    "1,5", "12,5x", "1.2.3", "n/a", "", "   ", "abc", "NaN", "inf", "1_000", "١", "1\u2028", "\u00a01", "1 2",
    "2147483647", "2147483648", "-2147483648", "99999999999", "9223372036854775807", "9223372036854775808",
    "9999999999999.99", "10000000000000.00", None,
]  # fmt: skip
DATES = [
    "1995-01-01", "1995-1-1", " 1995-01-31 ", "1995-13-45", "1995-02-29", "1996-02-29", "1996-02-30",
    "0001-01-01", "9999-12-31", "1899-12-31", "2100-01-01", "19950101", "1995-01-01T00:00:00", "+1995-01-01",
    "95-01-01", "1995/01/01", "31/12/1995", "12345-01-01", "1995-01-01x", "2000-00-10", "", None,
]  # fmt: skip


fct_sales = inspect.getmodule(REGISTRY.model("gold.fct_sales").function).sales  # type: ignore[union-attr]


def to_spark(spark: SparkSession, frame: pl.DataFrame | pl.LazyFrame) -> DataFrame:
    data = frame.collect() if isinstance(frame, pl.LazyFrame) else frame
    if data.is_empty():  # Spark cannot take the schema of an empty Arrow table
        from pyspark.sql.pandas.types import from_arrow_schema

        return spark.createDataFrame(
            [], from_arrow_schema(data.to_arrow(compat_level=pl.CompatLevel.oldest()).schema)
        )
    return spark.createDataFrame(data.to_arrow(compat_level=pl.CompatLevel.oldest()))


def collected(frame: Any) -> pl.DataFrame:
    """A native frame of either engine, collected to Polars."""
    if isinstance(frame, pl.LazyFrame):
        return frame.collect()
    return pl.DataFrame(pl.from_arrow(frame.toArrow()))


def assert_same(polars_out: pl.LazyFrame, spark_out: DataFrame, *, ordered: bool = True) -> pl.DataFrame:
    expected, actual = collected(polars_out), collected(spark_out)
    assert actual.schema == expected.schema
    if not ordered:
        expected, actual = expected.sort(pl.all()), actual.sort(pl.all())
    assert_frame_equal(actual, expected)
    return expected


def on_both(
    spark: SparkSession, transform: Callable[..., Any], *frames: pl.LazyFrame, **kwargs: Any
) -> tuple[Any, Any]:
    return transform(*frames, **kwargs), transform(*(to_spark(spark, f) for f in frames), **kwargs)


def bronze_orders(
    rows: list[tuple[str | None, str | None, str | None, str | None]], batch: date = D1
) -> pl.LazyFrame:
    """Bronze orders (orderkey, custkey, totalprice, orderdate); other columns valid."""
    n = len(rows)
    return pl.LazyFrame(
        {
            "o_orderkey": [r[0] for r in rows],
            "o_custkey": [r[1] for r in rows],
            "o_orderstatus": ["O"] * n,
            "o_totalprice": [r[2] for r in rows],
            "o_orderdate": [r[3] for r in rows],
            "o_orderpriority": ["1-URGENT"] * n,
            "o_clerk": ["Clerk#1"] * n,
            "o_shippriority": ["0"] * n,
            "o_comment": ["c"] * n,
            "_batch_date": [batch] * n,
            "_source_file": [f"f{i % 2}.csv" for i in range(n)],
            "_row_number": list(range(1, n + 1)),
        },
        schema=dict.fromkeys(TABLES["orders"].column_names, pl.String)
        | {"_batch_date": pl.Date, "_source_file": pl.String, "_row_number": pl.Int64},
    )


TIMESTAMPS = [
    "2024-01-02T03:04:05", "2024-01-02 03:04:05", "2024-1-2T3:04:05.123456", "2024-01-02T03:04:05Z",
    "2024-01-02T03:04:05.5+01:00", "2024-01-02T03:04:05-05:30", "2024-02-30T00:00:00", "2024-01-02T25:00:00",
    "2024-01-02", "03:04:05", "2024-01-02T03:04", "x", "", None,
]  # fmt: skip
BOOLEANS = ["true", "false", "TRUE", "False", " true ", "1", "0", "yes", "t", "", None]


def column(kind: str, fmt: str | None = None) -> Column:
    return Column("c", ColumnType.parse(kind), fmt)


def test_lenient_parsing(spark: SparkSession) -> None:
    longest = max(len(NUMBERS), len(DATES), len(TIMESTAMPS), len(BOOLEANS))

    def padded(values: list[str | None]) -> list[str | None]:
        return values + [None] * (longest - len(values))

    values = pl.LazyFrame(
        {"n": padded(NUMBERS), "d": padded(DATES), "t": padded(TIMESTAMPS), "b": padded(BOOLEANS)}
    )
    columns = {
        "int": ("n", column("int")),
        "bigint": ("n", column("bigint")),
        "decimal": ("n", column("decimal(15,2)")),
        "decimal_0": ("n", column("decimal(20,0)")),
        "double": ("n", column("double")),
        "date": ("d", column("date")),
        "date_dmy": ("d", column("date", "%d/%m/%Y")),
        "timestamp": ("t", column("timestamp")),
        "timestamptz": ("t", column("timestamptz")),
        "boolean": ("b", column("boolean")),
    }

    def parse(frame: Any) -> Any:
        return parse_columns(lazy(frame), columns).to_native()  # type: ignore[arg-type]

    out = assert_same(*on_both(spark, parse, values))
    parsed = dict(zip(out["n"], out["decimal"], strict=True))
    assert parsed["1.05"] == Decimal("1.05") and parsed[".5"] == Decimal("0.50")
    assert parsed["1.005"] is None and parsed["1e3"] is None and parsed["١"] is None  # rejected, not altered
    dates = dict(zip(out["d"], out["date"], strict=True))
    assert dates["1995-1-1"] == date(1995, 1, 1) and dates["1995-02-29"] is None and dates["95-01-01"] is None
    assert dict(zip(out["d"], out["date_dmy"], strict=True))["31/12/1995"] == date(1995, 12, 31)
    doubles = dict(zip(out["n"], out["double"], strict=True))
    assert doubles["1e3"] == 1000.0 and doubles["-.5"] == -0.5 and doubles["NaN"] is None
    naive = dict(zip(out["t"], out["timestamp"], strict=True))
    assert naive["2024-01-02 03:04:05"] == datetime(2024, 1, 2, 3, 4, 5)
    assert naive["2024-1-2T3:04:05.123456"] == datetime(2024, 1, 2, 3, 4, 5, 123456)
    assert naive["2024-01-02T03:04:05Z"] is None and naive["2024-02-30T00:00:00"] is None
    zoned = dict(zip(out["t"], out["timestamptz"], strict=True))
    assert zoned["2024-01-02T03:04:05Z"] == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert zoned["2024-01-02T03:04:05.5+01:00"] == datetime(2024, 1, 2, 2, 4, 5, 500000, tzinfo=UTC)
    assert zoned["2024-01-02T03:04:05"] is None  # a zone is required
    flags = dict(zip(out["b"], out["boolean"], strict=True))
    assert (flags["TRUE"], flags["False"], flags[" true "], flags["1"], flags["yes"]) == (
        True,
        False,
        True,
        None,
        None,
    )


def test_conform_rules_nulls_duplicates(spark: SparkSession) -> None:
    rows = [
        ("1", "7", "10.50", "1995-01-01"),
        ("1", "7", "99.00", "1995-01-01"),  # duplicate key
        (" 1 ", "7", "1.00", "1995-01-01"),  # duplicate after stripping
        (None, "7", "1.00", "1995-01-01"),
        ("  ", "7", "1.00", "1995-01-01"),
        ("3", "7", "12,5x", "1995-01-01"),
        ("4", "7", "1.00", "1995-13-45"),
        ("5", "7", "-1.00", "1995-01-01"),
        ("6", "999", "1.00", "1995-01-01"),
        ("7", None, "1.00", "1995-01-01"),  # null foreign key: o_custkey is declared not null
        ("8", "8", None, None),  # a value of a column declared not null is missing
        ("9", "7", "1.005", "1899-12-31"),
        ("10", "8", "0", "2099-12-31"),
    ]
    parents = pl.LazyFrame({"c_custkey": [7, 8, None]}, schema={"c_custkey": pl.Int64})
    spec = TABLES["orders"]
    polars_out = conform(bronze_orders(rows), spec, {"o_custkey": parents})
    spark_out = conform(to_spark(spark, bronze_orders(rows)), spec, {"o_custkey": to_spark(spark, parents)})
    good = assert_same(polars_out.good, spark_out.good)
    rejected = assert_same(polars_out.rejected, spark_out.rejected)
    assert sorted(good["o_orderkey"].to_list()) == [1, 10]
    assert dict(zip(rejected["_row_number"], rejected["_rule"], strict=True)) == {
        2: "duplicate_key",
        3: "duplicate_key",
        4: "null_key",
        5: "null_key",
        6: "unparseable:o_totalprice",
        7: "unparseable:o_orderdate",
        8: "out_of_range:o_totalprice",
        9: "orphan_key:o_custkey",
        10: "missing:o_custkey",
        11: "missing:o_totalprice",
        12: "unparseable:o_totalprice",
    }


def test_conform_keeps_the_same_row_of_a_key_on_both_engines_whatever_the_input_order(
    spark: SparkSession,
) -> None:
    # Polars numbers the rows in file and row order, Spark counts per key: the same row must win.
    rows = bronze_orders(
        [
            ("1", "7", "4.00", "1995-01-01"),
            ("2", "7", "5.00", "1995-01-01"),
            ("1", "7", "3.00", "1995-01-01"),
            ("1", "7", "bad", "1995-01-01"),
            ("1", "7", "2.00", "1995-01-01"),
            ("2", "7", "6.00", "1995-01-01"),
        ]
    ).with_columns(
        pl.Series("_source_file", ["b.csv", "b.csv", "a.csv", "a.csv", "a.csv", "c.csv"]),
        pl.Series("_row_number", [1, 2, 9, 3, 5, 1], dtype=pl.Int64),
    )
    parents = pl.LazyFrame({"c_custkey": [7]}, schema={"c_custkey": pl.Int64})
    spec = TABLES["orders"]
    polars_out = conform(rows, spec, {"o_custkey": parents})
    spark_out = conform(to_spark(spark, rows), spec, {"o_custkey": to_spark(spark, parents)})
    good = assert_same(polars_out.good, spark_out.good)
    assert_same(polars_out.rejected, spark_out.rejected)
    assert good.select("_source_file", "_row_number").rows() == [("a.csv", 5), ("b.csv", 2)]


def test_conform_empty_input_and_reference_versions(spark: SparkSession) -> None:
    spec = TABLES["orders"]
    empty_polars, empty_spark = (
        conform(bronze_orders([]), spec),
        conform(to_spark(spark, bronze_orders([])), spec),
    )
    assert assert_same(empty_polars.good, empty_spark.good).is_empty()
    assert assert_same(empty_polars.rejected, empty_spark.rejected).is_empty()

    region = pl.LazyFrame(
        {
            "r_regionkey": ["1", "1", "1", "2"],
            "r_name": ["A", "A2", "B", None],
            "r_comment": ["c"] * 4,
            "_batch_date": [D1, D1, D2, D2],
            "_source_file": ["f"] * 4,
            "_row_number": [1, 2, 1, 2],
        }
    )
    polars_out, spark_out = (
        conform(region, without_rules(TABLES["region"])),
        conform(to_spark(spark, region), without_rules(TABLES["region"])),
    )
    assert assert_same(polars_out.good, spark_out.good)["r_name"].to_list() == ["A", "B", None]
    assert_same(polars_out.rejected, spark_out.rejected)


def customers(rows: list[tuple[int, str | None, date, int]]) -> pl.LazyFrame:
    return pl.LazyFrame(
        {
            "c_custkey": [r[0] for r in rows],
            "c_acctbal": [Decimal("1.10") if r[0] % 2 else None for r in rows],
            "c_mktsegment": [r[1] for r in rows],
            "_batch_date": [r[2] for r in rows],
            "_source_file": ["f"] * len(rows),
            "_row_number": [r[3] for r in rows],
        },
        schema={
            "c_custkey": pl.Int64,
            "c_acctbal": pl.Decimal(15, 2),
            "c_mktsegment": pl.String,
            "_batch_date": pl.Date,
            "_source_file": pl.String,
            "_row_number": pl.Int64,
        },
    )


def test_merge_latest(spark: SparkSession) -> None:
    current = customers([(1, "A", D1, 1), (2, "B", D1, 2), (3, None, D2, 1), (4, "D", D3, 1)])
    incoming = customers(
        [(1, "C", D2, 2), (1, "C2", D2, 3), (3, "E", D2, 1), (4, "OLD", D2, 5), (5, None, D2, 4)]
    )
    out = assert_same(*on_both(spark, merge_latest, current, incoming, key=("c_custkey",), batches=[D2]))
    assert out["c_mktsegment"].to_list() == ["C2", "B", "E", "D", None]
    empty = customers([])
    assert_same(*on_both(spark, merge_latest, empty, incoming, key=("c_custkey",), batches=[D2]))
    assert_same(*on_both(spark, merge_latest, current, empty, key=("c_custkey",), batches=[D2]))


def test_gold(spark: SparkSession) -> None:
    decimals = {c: pl.Decimal(15, 2) for c in ("l_quantity", "l_extendedprice", "l_discount", "l_tax")}
    lineitem = pl.LazyFrame(
        {
            "l_orderkey": [1, 1, 2, 3, 9],
            "l_linenumber": [1, 2, 1, 1, 1],
            "l_partkey": [5, 6, 7, 8, 9],
            "l_suppkey": [1, 1, 1, 2, 2],
            "l_quantity": [Decimal("1.00")] * 5,
            "l_extendedprice": [Decimal("100.00"), Decimal("50.33"), None, Decimal("0.01"), Decimal("9.99")],
            "l_discount": [Decimal("0.10"), Decimal("0.07"), Decimal("0.05"), None, Decimal("0")],
            "l_tax": [Decimal("0.01")] * 5,
            "l_returnflag": ["N"] * 5,
            "l_linestatus": ["O"] * 5,
            "l_shipdate": [D1, D2, None, D3, D3],
            "_batch_date": [D1, D1, D1, D2, D2],
        },
        schema_overrides={**decimals, "l_linenumber": pl.Int32},
    )
    orders = pl.LazyFrame({"o_orderkey": [1, 2, 3], "o_orderdate": [D1, D1, D2], "o_custkey": [7, 8, 99]})
    polars_sales, spark_sales = on_both(spark, fct_sales, lineitem, orders)
    sales = assert_same(polars_sales, spark_sales, ordered=False)
    assert sales.height == 4 and sales.schema["revenue"] == pl.Decimal(18, 4)
    empty = lineitem.clear()
    polars_sales, spark_sales = on_both(spark, fct_sales, empty, orders)
    assert_same(polars_sales, spark_sales)
