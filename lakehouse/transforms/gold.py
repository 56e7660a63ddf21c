"""Silver → gold: the sales fact and the daily revenue mart."""

from __future__ import annotations

import polars as pl

from lakehouse.tables import BATCH_DATE

REVENUE = pl.Decimal(18, 4)


def fct_sales(lineitem: pl.LazyFrame, orders: pl.LazyFrame) -> pl.LazyFrame:
    """Lineitem grain with its order's date and customer; revenue = extendedprice × (1 − discount)."""
    order_cols = orders.select("o_orderkey", "o_orderdate", "o_custkey")
    return lineitem.join(order_cols, left_on="l_orderkey", right_on="o_orderkey", how="inner").select(
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
        (pl.col("l_extendedprice") * (1 - pl.col("l_discount"))).cast(REVENUE).alias("revenue"),
        "l_returnflag",
        "l_linestatus",
        "l_shipdate",
        BATCH_DATE,
    )


def daily_revenue(sales: pl.LazyFrame, customer: pl.LazyFrame) -> pl.LazyFrame:
    """Revenue, orders and customers per order date and market segment."""
    segments = customer.select(pl.col("c_custkey").alias("o_custkey"), "c_mktsegment")
    return (
        sales.join(segments, on="o_custkey", how="left")
        .group_by("o_orderdate", "c_mktsegment")
        .agg(
            pl.col("revenue").sum().cast(REVENUE),
            pl.col("l_orderkey").n_unique().cast(pl.Int64).alias("orders"),
            pl.col("o_custkey").n_unique().cast(pl.Int64).alias("customers"),
            pl.col(BATCH_DATE).first(),
        )
        .sort("o_orderdate", "c_mktsegment")
    )
