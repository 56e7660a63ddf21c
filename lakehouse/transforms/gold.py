"""Silver → gold: the sales fact and the daily revenue mart (native lazy frames of one engine)."""

from __future__ import annotations

import narwhals.stable.v2 as nw
from narwhals.typing import IntoLazyFrameT

from lakehouse.tables import BATCH_DATE, REVENUE
from lakehouse.transforms.frames import lazy

REVENUE_TYPE = nw.Decimal(REVENUE.precision, REVENUE.scale)


def fct_sales(lineitem: IntoLazyFrameT, orders: IntoLazyFrameT) -> IntoLazyFrameT:
    """Lineitem grain with its order's date and customer; revenue = extendedprice × (1 − discount).

    Raises:
        TypeError: if a frame is not a lazy frame of a supported engine.

    """
    order_cols = lazy(orders).select("o_orderkey", "o_orderdate", "o_custkey")
    sales = (
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
            (nw.col("l_extendedprice").cast(REVENUE_TYPE) * (1 - nw.col("l_discount")).cast(REVENUE_TYPE))
            .cast(REVENUE_TYPE)
            .alias("revenue"),
            "l_returnflag",
            "l_linestatus",
            "l_shipdate",
            BATCH_DATE,
        )
    )
    return sales.to_native()


def daily_revenue(sales: IntoLazyFrameT, customer: IntoLazyFrameT) -> IntoLazyFrameT:
    """Revenue, orders and customers per order date and market segment, sorted by both.

    ``_batch_date`` is the earliest batch of the group's rows (facts land by order date, so a
    group has a single one).

    Raises:
        TypeError: if a frame is not a lazy frame of a supported engine.

    """
    segments = lazy(customer).select(nw.col("c_custkey").alias("o_custkey"), "c_mktsegment")
    daily = (
        lazy(sales)
        .join(segments, on="o_custkey", how="left")
        .group_by("o_orderdate", "c_mktsegment")
        .agg(
            nw.col("revenue").sum().cast(REVENUE_TYPE),
            nw.col("l_orderkey").n_unique().cast(nw.Int64()).alias("orders"),
            nw.col("o_custkey").n_unique().cast(nw.Int64()).alias("customers"),
            nw.col(BATCH_DATE).min(),
        )
        .sort("o_orderdate", "c_mktsegment")
    )
    return daily.to_native()
