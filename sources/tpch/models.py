"""TPC-H's gold models: a star schema and two marts.

The star: SCD2 customers, Type-1 parts and suppliers, dates, and the sales fact at line-item grain
with its dimensions' keys.

Each model is a plain function over native lazy frames of one engine (narwhals view in between),
so the same code runs on Polars and Spark; :func:`lakehouse.models.model` declares its inputs,
columns and materialization.

**Surrogate keys** are computed, so every run and engine gives the same key to the same row: a
customer version's key packs ``c_custkey`` and ``valid_from`` (see :mod:`lakehouse.transforms.scd2`;
injective for any TPC-H scale up to 600,000), a Type-1 dimension's key is its business key, and a
date's key is ``yyyymmdd``.
"""

from __future__ import annotations

import narwhals.stable.v2 as nw
from narwhals.typing import IntoLazyFrameT

from lakehouse.models import batches, merge, model, replace, scd2, versions
from lakehouse.tables import BATCH_DATE, VALID_FROM, VALID_TO
from lakehouse.transforms.frames import lazy
from lakehouse.transforms.scd2 import yyyymmdd

PRICE = "decimal(15,2)"
REVENUE = nw.Decimal(18, 4)
# Q1's sums per ship date: base prices and quantities keep scale 2, discounted prices 4, charges 6.
SUM_2, SUM_6 = nw.Decimal(18, 2), nw.Decimal(22, 6)
_FIRST = "__first"
_CHARGE = "__charge"


def _names(nation: IntoLazyFrameT, region: IntoLazyFrameT, prefix: str) -> nw.LazyFrame[IntoLazyFrameT]:
    """Nation key → names: ``<prefix>_nationkey``, ``<prefix>_nation`` and ``<prefix>_region``."""
    regions = lazy(region).select(
        nw.col("r_regionkey").alias("n_regionkey"), nw.col("r_name").alias(f"{prefix}_region")
    )
    return (
        lazy(nation)
        .select(
            nw.col("n_nationkey").alias(f"{prefix}_nationkey"),
            nw.col("n_name").alias(f"{prefix}_nation"),
            "n_regionkey",
        )
        .join(regions, on="n_regionkey", how="left")
        .drop("n_regionkey")
    )


@model(
    "dim_date",
    inputs={"orders": batches("silver.orders")},
    materialization=merge("date_key"),
    columns={
        "date_key": "int",
        "full_date": "date",
        "year": "int",
        "quarter": "int",
        "month": "int",
        "day_of_month": "int",
        "day_of_week": "int",
        "day_of_year": "int",
        "is_weekend": "boolean",
    },
    description="One row per order date: yyyymmdd key and calendar attributes (ISO weekday)",
)
def dim_date(orders: IntoLazyFrameT) -> IntoLazyFrameT:
    """One row per order date of ``orders``; ``_batch_date`` is the earliest batch holding the date."""
    day = nw.col("full_date")
    # ISO weekday on both engines: narwhals 2.29 gives Sunday as 7 on Polars but 0 on Spark.
    weekday = (day.dt.weekday().cast(nw.Int32()) + 6) % 7 + 1
    dates = (
        lazy(orders)
        .group_by("o_orderdate")
        .agg(nw.col(BATCH_DATE).min())
        .select(nw.col("o_orderdate").alias("full_date"), BATCH_DATE)
        .select(
            yyyymmdd("full_date").alias("date_key"),
            "full_date",
            day.dt.year().cast(nw.Int32()).alias("year"),
            ((day.dt.month().cast(nw.Int32()) - 1) // 3 + 1).cast(nw.Int32()).alias("quarter"),
            day.dt.month().cast(nw.Int32()).alias("month"),
            day.dt.day().cast(nw.Int32()).alias("day_of_month"),
            weekday.alias("day_of_week"),
            day.dt.ordinal_day().cast(nw.Int32()).alias("day_of_year"),
            (weekday >= 6).alias("is_weekend"),
            BATCH_DATE,
        )
        .sort("date_key")
    )
    return dates.to_native()


@model(
    "dim_customer",
    inputs={"customer": versions("silver.customer"), "nation": "silver.nation", "region": "silver.region"},
    materialization=scd2(
        "c_custkey",
        tracked=("c_name", "c_address", "c_nationkey", "c_phone", "c_acctbal", "c_mktsegment"),
        surrogate_key="customer_key",
    ),
    columns={
        "customer_key": "bigint",
        "c_custkey": "bigint",
        "c_name": "string",
        "c_address": "string",
        "c_nationkey": "int",
        "c_nation": "string",
        "c_region": "string",
        "c_phone": "string",
        "c_acctbal": PRICE,
        "c_mktsegment": "string",
    },
    description="SCD2 customer versions (the free-text comment is not tracked) with nation and region names",
)
def dim_customer(customer: IntoLazyFrameT, nation: IntoLazyFrameT, region: IntoLazyFrameT) -> IntoLazyFrameT:
    """Every landed customer version with its nation's and region's names."""
    return (
        lazy(customer)
        .join(_names(nation, region, "c"), on="c_nationkey", how="left")
        .drop("c_comment")
        .to_native()
    )


@model(
    "dim_part",
    inputs={"part": batches("silver.part")},
    materialization=merge("p_partkey"),
    columns={
        "part_key": "bigint",
        "p_partkey": "bigint",
        "p_name": "string",
        "p_mfgr": "string",
        "p_brand": "string",
        "p_type": "string",
        "p_size": "int",
        "p_container": "string",
        "p_retailprice": PRICE,
    },
    description="Type-1 part dimension, part_key = p_partkey",
)
def dim_part(part: IntoLazyFrameT) -> IntoLazyFrameT:
    """Silver part rows with ``part_key`` (= ``p_partkey``), by key."""
    columns = ("p_partkey", "p_name", "p_mfgr", "p_brand", "p_type", "p_size", "p_container", "p_retailprice")
    parts = (
        lazy(part)
        .select(nw.col("p_partkey").cast(nw.Int64()).alias("part_key"), *columns, BATCH_DATE)
        .sort("p_partkey")
    )
    return parts.to_native()


@model(
    "dim_supplier",
    inputs={"supplier": batches("silver.supplier"), "nation": "silver.nation", "region": "silver.region"},
    materialization=merge("s_suppkey"),
    columns={
        "supplier_key": "bigint",
        "s_suppkey": "bigint",
        "s_name": "string",
        "s_address": "string",
        "s_nationkey": "int",
        "s_nation": "string",
        "s_region": "string",
        "s_phone": "string",
        "s_acctbal": PRICE,
    },
    description="Type-1 supplier dimension with nation and region names, supplier_key = s_suppkey",
)
def dim_supplier(supplier: IntoLazyFrameT, nation: IntoLazyFrameT, region: IntoLazyFrameT) -> IntoLazyFrameT:
    """Silver supplier rows with ``supplier_key`` and nation/region names, by key."""
    suppliers = (
        lazy(supplier)
        .join(_names(nation, region, "s"), on="s_nationkey", how="left")
        .select(
            nw.col("s_suppkey").cast(nw.Int64()).alias("supplier_key"),
            "s_suppkey",
            "s_name",
            "s_address",
            "s_nationkey",
            "s_nation",
            "s_region",
            "s_phone",
            "s_acctbal",
            BATCH_DATE,
        )
        .sort("s_suppkey")
    )
    return suppliers.to_native()


def sales(lineitem: IntoLazyFrameT, orders: IntoLazyFrameT) -> IntoLazyFrameT:
    """Lineitem grain with its order's date and customer; revenue = extendedprice × (1 − discount)."""
    order_cols = lazy(orders).select("o_orderkey", "o_orderdate", "o_custkey")
    rows = (
        lazy(lineitem)
        .join(order_cols, left_on="l_orderkey", right_on="o_orderkey", how="inner")
        .select(
            "l_orderkey",
            "l_linenumber",
            "o_orderdate",
            "o_custkey",
            "l_partkey",
            "l_suppkey",
            "l_quantity",
            "l_extendedprice",
            "l_discount",
            "l_tax",
            # widened first: Polars keeps the larger input scale (2), which would round every line
            (nw.col("l_extendedprice").cast(REVENUE) * (1 - nw.col("l_discount")).cast(REVENUE))
            .cast(REVENUE)
            .alias("revenue"),
            "l_returnflag",
            "l_linestatus",
            "l_shipdate",
            BATCH_DATE,
        )
    )
    return rows.to_native()


def with_dimension_keys(
    rows: IntoLazyFrameT, customers: IntoLazyFrameT, parts: IntoLazyFrameT, suppliers: IntoLazyFrameT
) -> IntoLazyFrameT:
    """Sales rows (see :func:`sales`) with their dimensions' surrogate keys.

    ``date_key`` is the order date's; ``customer_key`` the customer version valid on the order date
    (an order dated before a customer's first version gets that first version); ``part_key`` and
    ``supplier_key`` those of the part and supplier rows. A key with no dimension row is null, for
    the gate to reject; no sales row is dropped or duplicated by a well-formed dimension.
    """
    start = nw.col(VALID_FROM)
    customer_versions = (
        lazy(customers)
        .select(nw.col("c_custkey").alias("o_custkey"), "customer_key", VALID_FROM, VALID_TO)
        .with_columns((start == start.min().over("o_custkey")).alias(_FIRST))
    )
    ordered = nw.col("o_orderdate")
    valid = start.is_null() | (
        ((start <= ordered) | nw.col(_FIRST)) & (nw.col(VALID_TO).is_null() | (ordered < nw.col(VALID_TO)))
    )
    part_keys = lazy(parts).select(nw.col("p_partkey").alias("l_partkey"), "part_key")
    supplier_keys = lazy(suppliers).select(nw.col("s_suppkey").alias("l_suppkey"), "supplier_key")
    base = lazy(rows)
    columns = [c for c in base.collect_schema().names() if c != BATCH_DATE]
    keyed = (
        base.join(customer_versions, on="o_custkey", how="left")
        .filter(valid)
        .join(part_keys, on="l_partkey", how="left")
        .join(supplier_keys, on="l_suppkey", how="left")
        .select(
            *columns,
            yyyymmdd("o_orderdate").alias("date_key"),
            "customer_key",
            "part_key",
            "supplier_key",
            BATCH_DATE,
        )
    )
    return keyed.to_native()


@model(
    "fct_sales",
    inputs={
        "lineitem": batches("silver.lineitem"),
        "orders": batches("silver.orders"),
        "dim_date": "gold.dim_date",
        "dim_customer": "gold.dim_customer",
        "dim_part": "gold.dim_part",
        "dim_supplier": "gold.dim_supplier",
    },
    materialization=replace(),
    columns={
        "l_orderkey": "bigint",
        "l_linenumber": "int",
        "o_orderdate": "date",
        "o_custkey": "bigint",
        "l_partkey": "bigint",
        "l_suppkey": "bigint",
        "l_quantity": PRICE,
        "l_extendedprice": PRICE,
        "l_discount": PRICE,
        "l_tax": PRICE,
        "revenue": "decimal(18,4)",
        "l_returnflag": "string",
        "l_linestatus": "string",
        "l_shipdate": "date",
        "date_key": "int",
        "customer_key": "bigint",
        "part_key": "bigint",
        "supplier_key": "bigint",
    },
    description="Sales at line-item grain with the dimensions' keys as of the order date",
)
def fct_sales(
    lineitem: IntoLazyFrameT,
    orders: IntoLazyFrameT,
    dim_date: IntoLazyFrameT,
    dim_customer: IntoLazyFrameT,
    dim_part: IntoLazyFrameT,
    dim_supplier: IntoLazyFrameT,
) -> IntoLazyFrameT:
    """The sales rows of the batches, keyed (``dim_date``'s key is computed: its rows are not read)."""
    del dim_date  # read for lineage and build order: the date key is computed from the order date
    return with_dimension_keys(sales(lineitem, orders), dim_customer, dim_part, dim_supplier)


@model(
    "daily_revenue",
    inputs={"sales": batches("gold.fct_sales"), "customers": "gold.dim_customer"},
    materialization=replace(),
    columns={
        "o_orderdate": "date",
        "c_mktsegment": "string",
        "c_nation": "string",
        "revenue": "decimal(18,4)",
        "orders": "bigint",
        "customers": "bigint",
    },
    description="Revenue, orders and customers per order date, market segment and nation",
)
def daily_revenue(sales: IntoLazyFrameT, customers: IntoLazyFrameT) -> IntoLazyFrameT:
    """Per order date, segment and nation (those of the customer version each sale points at)."""
    segments = lazy(customers).select("customer_key", "c_mktsegment", "c_nation")
    daily = (
        lazy(sales)
        .join(segments, on="customer_key", how="left")
        .group_by("o_orderdate", "c_mktsegment", "c_nation")
        .agg(
            nw.col("revenue").sum().cast(REVENUE),
            nw.col("l_orderkey").n_unique().cast(nw.Int64()).alias("orders"),
            nw.col("o_custkey").n_unique().cast(nw.Int64()).alias("customers"),
            nw.col(BATCH_DATE).min(),
        )
        .sort("o_orderdate", "c_mktsegment", "c_nation")
    )
    return daily.to_native()


@model(
    "pricing_summary",
    inputs={"sales": batches("gold.fct_sales")},
    materialization=replace(),
    columns={
        "l_shipdate": "date",
        "l_returnflag": "string",
        "l_linestatus": "string",
        "sum_qty": "decimal(18,2)",
        "sum_base_price": "decimal(18,2)",
        "sum_disc_price": "decimal(18,4)",
        "sum_charge": "decimal(22,6)",
        "sum_discount": "decimal(18,2)",
        "count_order": "bigint",
    },
    description="TPC-H Q1's measures per ship date, return flag, line status and batch",
)
def pricing_summary(sales: IntoLazyFrameT) -> IntoLazyFrameT:
    """Q1's sums per ship date, return flag, line status and batch, sorted by the four.

    ``sum_disc_price`` is the sum of ``revenue``, ``sum_charge`` of revenue × (1 + tax); with
    ``sum_discount`` and ``count_order`` every Q1 average follows, so Q1 for a cutoff is a sum of
    the rows shipped on or before it. The batch is part of the grain so that a batch's rows are
    replaced on their own (one ship date gets lines from many order dates).
    """
    summary = (
        lazy(sales)
        # widened first: Polars multiplies decimals at the larger input scale (4), which would round
        .with_columns((nw.col("revenue").cast(SUM_6) * (1 + nw.col("l_tax")).cast(SUM_6)).alias(_CHARGE))
        .group_by("l_shipdate", "l_returnflag", "l_linestatus", BATCH_DATE)
        .agg(
            nw.col("l_quantity").sum().cast(SUM_2).alias("sum_qty"),
            nw.col("l_extendedprice").sum().cast(SUM_2).alias("sum_base_price"),
            nw.col("revenue").sum().cast(REVENUE).alias("sum_disc_price"),
            nw.col(_CHARGE).sum().cast(SUM_6).alias("sum_charge"),
            nw.col("l_discount").sum().cast(SUM_2).alias("sum_discount"),
            nw.len().cast(nw.Int64()).alias("count_order"),
        )
        .select(
            "l_shipdate",
            "l_returnflag",
            "l_linestatus",
            "sum_qty",
            "sum_base_price",
            "sum_disc_price",
            "sum_charge",
            "sum_discount",
            "count_order",
            BATCH_DATE,
        )
        .sort("l_shipdate", "l_returnflag", "l_linestatus", BATCH_DATE)
    )
    return summary.to_native()
