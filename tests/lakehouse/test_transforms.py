"""Transform logic on tiny inline frames."""

import inspect
from datetime import date
from decimal import Decimal

import polars as pl
import pytest

from lakehouse.transforms.frames import concat
from lakehouse.transforms.silver import conform, merge_latest
from tests.declared import REGISTRY, TABLES, without_rules

D1, D2 = date(1995, 1, 1), date(1995, 1, 2)


fct_sales = inspect.getmodule(REGISTRY.model("gold.fct_sales").function).sales  # type: ignore[union-attr]


def _orders(rows: list[tuple[str | None, str, str, str]], batch: date = D1) -> pl.LazyFrame:
    """Rows of (orderkey, custkey, totalprice, orderdate); other columns filled validly."""
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
            "_source_file": ["f.csv"] * n,
            "_row_number": list(range(1, n + 1)),
        },
        schema_overrides=dict.fromkeys(TABLES["orders"].column_names, pl.String) | {"_batch_date": pl.Date},
    )


def test_conform_types_rows_and_rejects_each_rule_once() -> None:
    rows = _orders(
        [
            ("1", "7", "10.50", "1995-01-01"),  # good
            ("1", "7", "99.00", "1995-01-01"),  # duplicate of key 1: the first one wins
            (None, "7", "1.00", "1995-01-01"),  # null key
            ("3", "7", "12,5x", "1995-01-01"),  # unparseable number
            ("4", "7", "1.00", "1995-13-45"),  # unparseable date
            ("5", "7", "-1.00", "1995-01-01"),  # out of range
            ("6", "999", "1.00", "1995-01-01"),  # orphan customer
        ]
    )
    out = conform(rows, TABLES["orders"], {"o_custkey": pl.LazyFrame({"c_custkey": [7]})})
    good, rejected = out.good.collect(), out.rejected.collect()
    assert good.get_column("o_orderkey").to_list() == [1]
    assert good.get_column("o_totalprice").to_list() == [Decimal("10.50")]
    assert good.schema["o_orderdate"] == pl.Date and good.schema["o_shippriority"] == pl.Int32
    assert dict(zip(rejected["_row_number"], rejected["_rule"], strict=True)) == {
        2: "duplicate_key",
        3: "null_key",
        4: "unparseable:o_totalprice",
        5: "unparseable:o_orderdate",
        6: "out_of_range:o_totalprice",
        7: "orphan_key:o_custkey",
    }
    # rejected rows keep their original values
    assert rejected.filter(pl.col("_row_number") == 4)["o_totalprice"].item() == "12,5x"
    assert good.height + rejected.height == 7


def test_conform_flags_rows_once_and_keeps_the_first_clean_row_of_a_key() -> None:
    rows = _orders(
        [
            ("1", "7", "bad", "1995-01-01"),  # key 1, but unparseable: not the row kept
            ("1", "7", "2.00", "1995-01-01"),  # the first row of key 1 no other rule rejects: kept
            ("1", "7", "3.00", "1995-01-01"),  # duplicate
            ("2", "999", "1.00", "1995-01-01"),  # orphan customer
        ]
    )
    parents = {"o_custkey": pl.LazyFrame({"c_custkey": [7]})}
    materialized: list[pl.LazyFrame] = []

    def materialize(frame: pl.LazyFrame) -> pl.LazyFrame:
        materialized.append(frame)
        return frame.collect().lazy()

    once = conform(rows, TABLES["orders"], parents, materialize=materialize)
    good, rejected = once.good.collect(), once.rejected.collect()
    assert len(materialized) == 1  # both results are cut from one computation
    assert good["o_totalprice"].to_list() == [Decimal("2.00")]
    assert rejected.select("_row_number", "_rule", "o_totalprice").rows() == [
        (1, "unparseable:o_totalprice", "bad"),
        (3, "duplicate_key", "3.00"),
        (4, "orphan_key:o_custkey", "1.00"),
    ]
    lazy = conform(rows, TABLES["orders"], parents)  # without materializing: the same rows
    assert lazy.good.collect().equals(good) and lazy.rejected.collect().equals(rejected)


def test_conform_keeps_the_first_clean_row_of_a_key_in_file_and_row_order_whatever_the_input_order() -> None:
    rows = _orders(
        [
            ("1", "7", "4.00", "1995-01-01"),  # b.csv row 1: after every a.csv row
            ("2", "7", "5.00", "1995-01-01"),  # b.csv row 2: key 2's only row
            ("1", "7", "3.00", "1995-01-01"),  # a.csv row 9
            ("1", "7", "bad", "1995-01-01"),  # a.csv row 3: first of key 1, but unparseable
            ("1", "7", "2.00", "1995-01-01"),  # a.csv row 5: key 1's first clean row, kept
        ]
    ).with_columns(
        pl.Series("_source_file", ["b.csv", "b.csv", "a.csv", "a.csv", "a.csv"]),
        pl.Series("_row_number", [1, 2, 9, 3, 5]),
    )
    out = conform(rows, TABLES["orders"], {"o_custkey": pl.LazyFrame({"c_custkey": [7]})})
    good, rejected = out.good.collect(), out.rejected.collect()
    assert good.select("_source_file", "_row_number", "o_totalprice").rows() == [
        ("a.csv", 5, Decimal("2.00")),
        ("b.csv", 2, Decimal("5.00")),
    ]
    assert rejected.select("_source_file", "_row_number", "_rule").rows() == [
        ("a.csv", 3, "unparseable:o_totalprice"),
        ("a.csv", 9, "duplicate_key"),
        ("b.csv", 1, "duplicate_key"),
    ]


def test_conform_handles_empty_input() -> None:
    out = conform(_orders([]), TABLES["orders"])
    assert out.good.collect().height == 0 and out.rejected.collect().height == 0


def _customer(key: int, segment: str, batch: date, row: int = 1) -> dict[str, object]:
    return {
        "c_custkey": key,
        "c_mktsegment": segment,
        "_batch_date": batch,
        "_source_file": "f",
        "_row_number": row,
    }


def test_merge_latest_keeps_latest_batch_and_is_idempotent() -> None:
    current = pl.LazyFrame([_customer(1, "A", D1), _customer(2, "B", D1)])
    change = pl.LazyFrame([_customer(1, "C", D2)])
    merged = merge_latest(current, change, ("c_custkey",), [D2]).collect().sort("c_custkey")
    assert merged["c_mktsegment"].to_list() == ["C", "B"]
    again = merge_latest(merged.lazy(), change, ("c_custkey",), [D2]).collect().sort("c_custkey")
    assert again.equals(merged)
    # a late, older change set does not override the newer version
    late = pl.LazyFrame([_customer(1, "OLD", date(1994, 12, 31))])
    after_late = merge_latest(merged.lazy(), late, ("c_custkey",), [date(1994, 12, 31)]).collect()
    assert after_late.filter(pl.col("c_custkey") == 1)["c_mktsegment"].item() == "C"


def test_fct_sales_revenue() -> None:
    lineitem = pl.LazyFrame(
        {
            "l_orderkey": [1, 1, 2],
            "l_linenumber": [1, 2, 1],
            "l_partkey": [5, 6, 7],
            "l_suppkey": [1, 1, 1],
            "l_quantity": [Decimal("1.00")] * 3,
            "l_extendedprice": [Decimal("100.00"), Decimal("50.00"), Decimal("10.00")],
            "l_discount": [Decimal("0.10"), Decimal("0.00"), Decimal("0.05")],
            "l_tax": [Decimal("0.01")] * 3,
            "l_returnflag": ["N"] * 3,
            "l_linestatus": ["O"] * 3,
            "l_shipdate": [D1] * 3,
            "_batch_date": [D1] * 3,
        },
        schema_overrides={
            c: pl.Decimal(15, 2) for c in ("l_quantity", "l_extendedprice", "l_discount", "l_tax")
        },
    )
    orders = pl.LazyFrame({"o_orderkey": [1, 2], "o_orderdate": [D1, D1], "o_custkey": [7, 8]})
    sales = fct_sales(lineitem, orders).collect()
    assert sales["revenue"].to_list() == [Decimal("90.0000"), Decimal("50.0000"), Decimal("9.5000")]


def test_reference_keys_are_unique_per_batch_not_across_batches() -> None:
    spec = without_rules(TABLES["region"])
    rows = pl.LazyFrame(
        {
            "r_regionkey": ["1", "1", "1"],
            "r_name": ["A", "A2", "B"],
            "r_comment": ["c"] * 3,
            "_batch_date": [D1, D1, D2],
            "_source_file": ["f"] * 3,
            "_row_number": [1, 2, 1],
        }
    )
    out = conform(rows, spec)
    assert out.good.collect()["r_name"].to_list() == ["A", "B"]
    assert out.rejected.collect()["_rule"].to_list() == ["duplicate_key"]


def test_revenue_is_exact_to_four_decimals() -> None:
    decimal = pl.Decimal(15, 2)
    lineitem = pl.LazyFrame(
        {"l_orderkey": [1], "l_extendedprice": [Decimal("50.33")], "l_discount": [Decimal("0.07")]},
        schema={"l_orderkey": pl.Int64, "l_extendedprice": decimal, "l_discount": decimal},
    ).with_columns(
        pl.lit(1, pl.Int32).alias("l_linenumber"),
        *(pl.lit(None, pl.Int64).alias(c) for c in ("l_partkey", "l_suppkey")),
        *(pl.lit(None, decimal).alias(c) for c in ("l_quantity", "l_tax")),
        *(pl.lit(None, pl.String).alias(c) for c in ("l_returnflag", "l_linestatus")),
        *(pl.lit(D1).alias(c) for c in ("l_shipdate", "_batch_date")),
    )
    orders = pl.LazyFrame({"o_orderkey": [1], "o_orderdate": [D1], "o_custkey": [7]})
    # Polars multiplies decimals at the larger input scale: 46.81 if the operands are not widened
    assert fct_sales(lineitem, orders).collect()["revenue"].to_list() == [Decimal("46.8069")]


def test_values_that_would_be_altered_are_unparseable() -> None:
    rows = _orders(
        [
            ("1", "7", "1.005", "1995-01-01"),  # a third decimal: Spark rounds, Polars truncates
            ("2", "7", "1e3", "1995-1-1"),  # exponent; unpadded month and day are fine
            ("3", "7", " +2.5 ", "95-01-01"),  # two-digit year
            ("4", "7", "\u00a01", "1995-01-01"),  # non-ASCII space
        ]
    )
    rejected = conform(rows, TABLES["orders"]).rejected.collect()
    assert dict(zip(rejected["_row_number"], rejected["_rule"], strict=True)) == {
        1: "unparseable:o_totalprice",
        2: "unparseable:o_totalprice",
        3: "unparseable:o_orderdate",
        4: "unparseable:o_totalprice",
    }


def test_concat_keeps_frames_in_order() -> None:
    parts = [pl.LazyFrame({"a": [1, 2]}), pl.LazyFrame({"a": [3]})]
    assert concat(parts).collect()["a"].to_list() == [1, 2, 3]
    with pytest.raises(ValueError, match="nothing"):
        concat([])
    with pytest.raises(TypeError, match="LazyFrame"):
        concat([pl.DataFrame({"a": [1]})])
