"""Gold marts built from the keyed sales fact (native lazy frames of one engine, via narwhals)."""

from __future__ import annotations

import narwhals.stable.v2 as nw
from narwhals.typing import IntoLazyFrameT
from pyiceberg.types import DecimalType

from lakehouse.tables import BATCH_DATE, REVENUE, SUM_2, SUM_6
from lakehouse.transforms.frames import lazy

_CHARGE = "__charge"


def _decimal(kind: DecimalType) -> nw.Decimal:
    return nw.Decimal(kind.precision, kind.scale)


def daily_revenue(sales: IntoLazyFrameT, customers: IntoLazyFrameT) -> IntoLazyFrameT:
    """Revenue, orders and customers per order date, market segment and nation, sorted by the three.

    Segment and nation are those of the customer version each sale points at (``customer_key``),
    i.e. as of the order date. ``_batch_date`` is the earliest batch of the group's rows (facts
    land by order date, so a group has a single one).

    Raises:
        TypeError: if a frame is not a lazy frame of a supported engine.

    """
    segments = lazy(customers).select("customer_key", "c_mktsegment", "c_nation")
    daily = (
        lazy(sales)
        .join(segments, on="customer_key", how="left")
        .group_by("o_orderdate", "c_mktsegment", "c_nation")
        .agg(
            nw.col("revenue").sum().cast(_decimal(REVENUE)),
            nw.col("l_orderkey").n_unique().cast(nw.Int64()).alias("orders"),
            nw.col("o_custkey").n_unique().cast(nw.Int64()).alias("customers"),
            nw.col(BATCH_DATE).min(),
        )
        .sort("o_orderdate", "c_mktsegment", "c_nation")
    )
    return daily.to_native()


def pricing_summary(sales: IntoLazyFrameT) -> IntoLazyFrameT:
    """TPC-H Q1's measures per ship date, return flag, line status and batch, sorted by the four.

    ``sum_disc_price`` is the sum of ``revenue`` (extended price × (1 − discount)), ``sum_charge``
    of revenue × (1 + tax); with ``sum_discount`` and ``count_order`` every Q1 average follows, so
    Q1 for a cutoff is a sum of the rows shipped on or before it. The batch is part of the grain so
    that a batch's rows are replaced on their own (one ship date gets lines from many order dates).

    Raises:
        TypeError: if a frame is not a lazy frame of a supported engine.

    """
    charge = _decimal(SUM_6)
    summary = (
        lazy(sales)
        # widened first: Polars multiplies decimals at the larger input scale (4), which would round
        .with_columns((nw.col("revenue").cast(charge) * (1 + nw.col("l_tax")).cast(charge)).alias(_CHARGE))
        .group_by("l_shipdate", "l_returnflag", "l_linestatus", BATCH_DATE)
        .agg(
            nw.col("l_quantity").sum().cast(_decimal(SUM_2)).alias("sum_qty"),
            nw.col("l_extendedprice").sum().cast(_decimal(SUM_2)).alias("sum_base_price"),
            nw.col("revenue").sum().cast(_decimal(REVENUE)).alias("sum_disc_price"),
            nw.col(_CHARGE).sum().cast(charge).alias("sum_charge"),
            nw.col("l_discount").sum().cast(_decimal(SUM_2)).alias("sum_discount"),
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
