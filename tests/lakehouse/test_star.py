"""TPC-H's gold models on tiny inline frames: SCD2 scenarios, surrogate keys, the fact's keys, marts."""

from __future__ import annotations

import inspect
from datetime import date
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from pyiceberg.io.pyarrow import schema_to_pyarrow

from lakehouse.pipeline import versioned
from lakehouse.tables import RUN_ID
from tests.declared import REGISTRY

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

MODELS = {m.name: m for m in REGISTRY.models.values()}
SOURCE_MODULE = inspect.getmodule(MODELS["fct_sales"].function)
with_dimension_keys = SOURCE_MODULE.with_dimension_keys  # type: ignore[union-attr]
dim_date, dim_part, dim_supplier, daily_revenue, pricing_summary = (
    MODELS[n].function for n in ("dim_date", "dim_part", "dim_supplier", "daily_revenue", "pricing_summary")
)


def dim_customer(current: Any, incoming: Any, nation: Any, region: Any, batches: list[date]) -> Any:
    """The dimension's chains as the gold step builds them: the model's rows, then SCD2 versioning."""
    model = MODELS["dim_customer"]
    return versioned(model, current, model.function(incoming, nation, region), batches)


D1, D2, D3, D4 = date(1995, 1, 1), date(1995, 1, 2), date(1995, 1, 3), date(1995, 1, 4)
NATION = pl.LazyFrame(
    {"n_nationkey": [1, 2], "n_name": ["FRANCE", "JAPAN"], "n_regionkey": [3, 2]},
    schema={"n_nationkey": pl.Int32, "n_name": pl.String, "n_regionkey": pl.Int32},
)
REGION = pl.LazyFrame(
    {"r_regionkey": [2, 3], "r_name": ["ASIA", "EUROPE"]},
    schema={"r_regionkey": pl.Int32, "r_name": pl.String},
)
CUSTOMER_SCHEMA = {
    "c_custkey": pl.Int64,
    "c_name": pl.String,
    "c_address": pl.String,
    "c_nationkey": pl.Int32,
    "c_phone": pl.String,
    "c_acctbal": pl.Decimal(15, 2),
    "c_mktsegment": pl.String,
    "c_comment": pl.String,
    "_batch_date": pl.Date,
    "_source_file": pl.String,
    "_row_number": pl.Int64,
}
SCD2 = ["customer_key", "c_custkey", "c_address", "c_mktsegment", "valid_from", "valid_to", "is_current"]


def customer(
    key: int, batch: date, address: str = "a", segment: str = "BUILDING", **more: Any
) -> dict[str, Any]:
    """A conformed customer row landed in ``batch``."""
    row = {
        "c_custkey": key,
        "c_name": f"Customer#{key}",
        "c_address": address,
        "c_nationkey": 1,
        "c_phone": "11-111-111-1111",
        "c_acctbal": Decimal("1.00"),
        "c_mktsegment": segment,
        "c_comment": "c",
        "_batch_date": batch,
        "_source_file": f"customer/dt={batch}/changes.jsonl",
        "_row_number": 1,
    }
    return row | more


def rows(*records: dict[str, Any]) -> pl.LazyFrame:
    return pl.LazyFrame(list(records), schema=CUSTOMER_SCHEMA)


def empty(table: str) -> pl.DataFrame:
    """An empty frame with the columns and types of ``gold.<table>`` but ``_run_id``."""
    schema = REGISTRY.model(f"gold.{table}").definition.schema
    frame = pl.from_arrow(schema_to_pyarrow(schema, include_field_ids=False).empty_table())
    assert isinstance(frame, pl.DataFrame)
    return frame.drop(RUN_ID)


EMPTY_DIM = empty("dim_customer")


class Dimension:
    """``gold.dim_customer`` as the pipeline keeps it: each run's chains replace those keys' rows (MERGE)."""

    def __init__(self) -> None:
        self.rows = EMPTY_DIM

    def run(self, batches: list[date], *records: dict[str, Any]) -> pl.DataFrame:
        out = dim_customer(self.rows.lazy(), rows(*records), NATION, REGION, batches).collect()
        kept = self.rows.join(out.select("c_custkey").unique(), on="c_custkey", how="anti")
        self.rows = pl.concat([kept, out]).sort("c_custkey", "valid_from")
        return out

    def chain(self, key: int = 1) -> list[tuple[Any, ...]]:
        return self.rows.filter(pl.col("c_custkey") == key).select(SCD2).rows()


def version(
    key: int, start: date, end: date | None, address: str = "a", segment: str = "BUILDING"
) -> tuple[Any, ...]:
    surrogate = key * 100_000_000 + int(start.strftime("%Y%m%d"))
    return (surrogate, key, address, segment, start, end, end is None)


def test_a_new_customer_opens_one_current_version_with_nation_and_region() -> None:
    dim = Dimension()
    out = dim.run([D1], customer(1, D1), customer(2, D1, c_nationkey=2))
    assert out.select(SCD2).rows() == [version(1, D1, None), version(2, D1, None)]
    assert out.get_column("customer_key").to_list() == [119950101, 219950101]
    assert out.select("c_nation", "c_region").rows() == [("FRANCE", "EUROPE"), ("JAPAN", "ASIA")]
    assert out.get_column("_batch_date").to_list() == [D1, D1]
    assert out.schema == EMPTY_DIM.schema


def test_a_change_closes_the_current_version_and_opens_a_new_one() -> None:
    dim = Dimension()
    dim.run([D1], customer(1, D1), customer(2, D1))
    out = dim.run([D2], customer(1, D2, address="b"))
    assert dim.chain(1) == [version(1, D1, D2), version(1, D2, None, "b")]
    assert dim.chain(2) == [version(2, D1, None)]  # untouched
    # the batch's rows are the customer's whole chain, so an audit of the batch sees it all
    assert out.get_column("_batch_date").to_list() == [D2, D2]


def test_an_unchanged_record_creates_no_version() -> None:
    dim = Dimension()
    dim.run([D1], customer(1, D1))
    dim.run([D2], customer(1, D2, c_comment="only the untracked comment changed"))
    assert dim.chain() == [version(1, D1, None)]


def test_changed_twice_in_one_run_gives_two_versions() -> None:
    dim = Dimension()
    dim.run([D1], customer(1, D1))
    dim.run([D2, D3], customer(1, D2, address="b"), customer(1, D3, address="b", segment="MACHINERY"))
    assert dim.chain() == [
        version(1, D1, D2),
        version(1, D2, D3, "b"),
        version(1, D3, None, "b", "MACHINERY"),
    ]


def test_twice_in_one_batch_the_first_row_wins_as_in_silver() -> None:
    dim = Dimension()
    dim.run([D1], customer(1, D1, address="first"), customer(1, D1, address="second", _row_number=2))
    assert dim.chain() == [version(1, D1, None, "first")]


def test_a_late_change_set_is_inserted_where_it_belongs() -> None:
    in_order, late = Dimension(), Dimension()
    batches = {D1: customer(1, D1), D2: customer(1, D2, address="b"), D3: customer(1, D3, address="c")}
    for day in (D1, D2, D3):
        in_order.run([day], batches[day])
    for day in (D1, D3, D2):
        late.run([day], batches[day])
    expected = [version(1, D1, D2), version(1, D2, D3, "b"), version(1, D3, None, "c")]
    assert in_order.chain() == late.chain() == expected


def test_a_late_change_equal_to_the_next_version_absorbs_it() -> None:
    dim = Dimension()
    dim.run([D1], customer(1, D1))
    dim.run([D3], customer(1, D3, address="b"))
    dim.run([D2], customer(1, D2, address="b"))
    assert dim.chain() == [version(1, D1, D2), version(1, D2, None, "b")]


def test_rerunning_batches_changes_nothing() -> None:
    dim = Dimension()
    dim.run([D1], customer(1, D1), customer(2, D1))
    dim.run([D2], customer(1, D2, address="b"))
    dim.run([D3], customer(1, D3, address="c"))
    before = dim.rows
    dim.run([D2], customer(1, D2, address="b"))
    dim.run([D1], customer(1, D1), customer(2, D1))
    assert dim.rows.drop("_batch_date").equals(before.drop("_batch_date"))


def test_a_corrected_rerun_replaces_the_batch_version() -> None:
    dim = Dimension()
    dim.run([D1], customer(1, D1))
    dim.run([D2], customer(1, D2, address="b"))
    dim.run([D2], customer(1, D2, address="corrected"))
    assert dim.chain() == [version(1, D1, D2), version(1, D2, None, "corrected")]


SALES_SCHEMA = {
    "l_orderkey": pl.Int64,
    "l_linenumber": pl.Int32,
    "o_orderdate": pl.Date,
    "o_custkey": pl.Int64,
    "l_partkey": pl.Int64,
    "l_suppkey": pl.Int64,
    "l_quantity": pl.Decimal(15, 2),
    "l_extendedprice": pl.Decimal(15, 2),
    "l_discount": pl.Decimal(15, 2),
    "l_tax": pl.Decimal(15, 2),
    "revenue": pl.Decimal(18, 4),
    "l_returnflag": pl.String,
    "l_linestatus": pl.String,
    "l_shipdate": pl.Date,
    "_batch_date": pl.Date,
}


def sale(order: int, ordered: date, customer_key: int = 1, **more: Any) -> dict[str, Any]:
    row = {
        "l_orderkey": order,
        "l_linenumber": 1,
        "o_orderdate": ordered,
        "o_custkey": customer_key,
        "l_partkey": 7,
        "l_suppkey": 8,
        "l_quantity": Decimal("2.00"),
        "l_extendedprice": Decimal("100.00"),
        "l_discount": Decimal("0.10"),
        "l_tax": Decimal("0.05"),
        "revenue": Decimal("90.0000"),
        "l_returnflag": "N",
        "l_linestatus": "O",
        "l_shipdate": D4,
        "_batch_date": ordered,
    }
    return row | more


def sales(*records: dict[str, Any]) -> pl.LazyFrame:
    return pl.LazyFrame(list(records), schema=SALES_SCHEMA)


def parts() -> pl.LazyFrame:
    return pl.LazyFrame(
        {
            "p_partkey": [7],
            "p_name": ["p"],
            "p_mfgr": ["m"],
            "p_brand": ["b"],
            "p_type": ["t"],
            "p_size": [1],
            "p_container": ["c"],
            "p_retailprice": [Decimal("9.99")],
            "p_comment": ["x"],
            "_batch_date": [D1],
        },
        schema_overrides={"p_size": pl.Int32, "p_retailprice": pl.Decimal(15, 2)},
    )


def suppliers() -> pl.LazyFrame:
    return pl.LazyFrame(
        {
            "s_suppkey": [8],
            "s_name": ["s"],
            "s_address": ["a"],
            "s_nationkey": [2],
            "s_phone": ["p"],
            "s_acctbal": [Decimal("5.00")],
            "s_comment": ["x"],
            "_batch_date": [D1],
        },
        schema_overrides={"s_nationkey": pl.Int32, "s_acctbal": pl.Decimal(15, 2)},
    )


def test_a_fact_row_resolves_the_customer_version_valid_at_its_order_date() -> None:
    dim = Dimension()
    dim.run([D2], customer(1, D2))
    dim.run([D3], customer(1, D3, segment="MACHINERY"))
    facts = sales(sale(1, D1), sale(2, D2), sale(3, D3), sale(4, D4), sale(5, D3, customer_key=9))
    keyed = with_dimension_keys(
        facts, dim.rows.lazy(), dim_part(parts()), dim_supplier(suppliers(), NATION, REGION)
    )
    out = keyed.collect().sort("l_orderkey")
    assert out.select("l_orderkey", "customer_key").rows() == [
        (1, 119950102),  # ordered before the first version: the first version
        (2, 119950102),
        (3, 119950103),  # the day the new version starts
        (4, 119950103),
        (5, None),  # no such customer: null, for the gate to reject
    ]
    assert out.get_column("date_key").to_list() == [19950101, 19950102, 19950103, 19950104, 19950103]
    assert set(out.get_column("part_key")) == {7} and set(out.get_column("supplier_key")) == {8}
    assert out.schema == empty("fct_sales").schema

    daily = daily_revenue(keyed.filter(pl.col("customer_key").is_not_null()), dim.rows.lazy()).collect()
    assert daily.select("o_orderdate", "c_mktsegment", "c_nation", "orders").rows() == [
        (D1, "BUILDING", "FRANCE", 1),
        (D2, "BUILDING", "FRANCE", 1),
        (D3, "MACHINERY", "FRANCE", 1),
        (D4, "MACHINERY", "FRANCE", 1),
    ]


def test_type_1_dimensions_and_the_date_dimension() -> None:
    part = dim_part(parts()).collect()
    assert part.select("part_key", "p_partkey", "p_retailprice").rows() == [(7, 7, Decimal("9.99"))]
    supplier = dim_supplier(suppliers(), NATION, REGION).collect()
    assert supplier.select("supplier_key", "s_nation", "s_region").rows() == [(8, "JAPAN", "ASIA")]
    orders = pl.LazyFrame(
        {"o_orderdate": [date(1995, 3, 31), date(1995, 4, 1), D1], "_batch_date": [D2, D2, D1]}
    )
    dates = dim_date(orders).collect()
    assert dates.drop("full_date").rows() == [
        (19950101, 1995, 1, 1, 1, 7, 1, True, D1),  # a Sunday
        (19950331, 1995, 1, 3, 31, 5, 90, False, D2),
        (19950401, 1995, 2, 4, 1, 6, 91, True, D2),
    ]


def test_pricing_summary_sums_q1_measures_per_ship_date_and_batch() -> None:
    facts = sales(
        sale(1, D1),
        sale(2, D1, l_extendedprice=Decimal("10.00"), l_discount=Decimal("0.00"), revenue=Decimal("10.0000")),
        sale(3, D2, l_returnflag="R", l_extendedprice=Decimal("100.01"), l_discount=Decimal("0.07"),
             revenue=Decimal("93.0093"), l_tax=Decimal("0.07")),
    )  # fmt: skip
    out = pricing_summary(facts).collect()
    assert out.rows() == [
        (D4, "N", "O", Decimal("4.00"), Decimal("110.00"), Decimal("100.0000"), Decimal("105.000000"),
         Decimal("0.10"), 2, D1),
        (D4, "R", "O", Decimal("2.00"), Decimal("100.01"), Decimal("93.0093"), Decimal("99.519951"),
         Decimal("0.07"), 1, D2),  # exact: 93.0093 × 1.07, not rounded to the inputs' scale
    ]  # fmt: skip


def to_spark(spark: SparkSession, frame: pl.DataFrame | pl.LazyFrame) -> DataFrame:
    data = frame.collect() if isinstance(frame, pl.LazyFrame) else frame
    return spark.createDataFrame(data.to_arrow(compat_level=pl.CompatLevel.oldest()))


def from_spark(frame: DataFrame) -> pl.DataFrame:
    out = pl.from_arrow(frame.toArrow())
    assert isinstance(out, pl.DataFrame)
    return out


@pytest.mark.spark
def test_the_star_transforms_give_the_same_rows_on_spark(spark: SparkSession) -> None:
    dim = Dimension()
    dim.run([D1], customer(1, D1), customer(2, D1, c_nationkey=2))
    dim.run([D3], customer(1, D3, address="c"))
    # a late change, an unchanged record, a new customer and two changes of one customer in one run
    incoming = rows(
        customer(1, D2, address="b"),
        customer(2, D2),
        customer(3, D2),
        customer(3, D4, segment="MACHINERY"),
    )
    args = (NATION, REGION)
    on_polars = dim_customer(dim.rows.lazy(), incoming, *args, [D2, D4]).collect()
    on_spark = dim_customer(
        to_spark(spark, dim.rows), to_spark(spark, incoming), *map(partial(to_spark, spark), args), [D2, D4]
    )
    assert_frame_equal(from_spark(on_spark), on_polars)
    customers = pl.concat(
        [dim.rows.join(on_polars.select("c_custkey"), on="c_custkey", how="anti"), on_polars]
    )

    part, supplier = dim_part(parts()), dim_supplier(suppliers(), *args)
    facts = sales(sale(1, D1), sale(2, D2), sale(3, D4, customer_key=3), sale(4, D4, l_returnflag="R"))
    keyed = with_dimension_keys(facts, customers.lazy(), part, supplier).collect().sort("l_orderkey")
    keyed_on_spark = with_dimension_keys(*(to_spark(spark, f) for f in (facts, customers, part, supplier)))
    assert_frame_equal(from_spark(keyed_on_spark).sort("l_orderkey"), keyed)
    pairs = [
        (
            daily_revenue(keyed.lazy(), customers.lazy()),
            daily_revenue(to_spark(spark, keyed), to_spark(spark, customers)),
        ),
        (pricing_summary(keyed.lazy()), pricing_summary(to_spark(spark, keyed))),
        (
            dim_date(facts.select("o_orderdate", "_batch_date")),
            dim_date(to_spark(spark, facts.select("o_orderdate", "_batch_date"))),
        ),
        (supplier, dim_supplier(to_spark(spark, suppliers()), *map(partial(to_spark, spark), args))),
    ]
    for polars_frame, spark_frame in pairs:
        assert_frame_equal(from_spark(spark_frame), polars_frame.collect())
