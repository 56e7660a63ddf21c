"""Silver → gold star schema: the dimensions (``dim_customer`` as SCD2) and the fact's surrogate keys.

Every function takes and returns native lazy frames of one engine (Polars or Spark) and works on
their narwhals view, so the same code runs on both.

**Surrogate keys** are computed, not drawn from a sequence, so every run and engine gives the same
key to the same row: a dimension version's key is ``business key × 10⁸ + yyyymmdd(valid_from)``
(injective for business keys below 92,233,720,368, i.e. any TPC-H scale up to 600,000), a Type-1
dimension's key is its business key, and a date's key is ``yyyymmdd``. A packed key rather than a
hash: no hash function gives the same bits on Polars and Spark, and packing cannot collide.

**SCD2 versions of ``dim_customer``** come from two places: the customer rows landed in the
processed batches (bronze, conformed by the silver rules, so a quarantined row makes no version;
``valid_from`` is the row's ``_batch_date``) and the versions already in ``dim_customer`` for the
same customers. Per customer, the incoming rows replace the existing versions of the processed
batches (a rerun is idempotent), the versions are ordered by ``valid_from``, and a version whose
tracked attributes equal its predecessor's is dropped (an unchanged record creates no version).
Each remaining version is valid until the next one starts; the last is current. Because the whole
chain of every affected customer is recomputed, a late change set is inserted where it belongs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import narwhals.stable.v2 as nw
from narwhals.typing import IntoLazyFrameT

from lakehouse.tables import BATCH_DATE, IS_CURRENT, ROW_NUMBER, SOURCE_FILE, VALID_FROM, VALID_TO
from lakehouse.transforms.frames import lazy

CUSTOMER_KEY = "c_custkey"
TRACKED = ("c_name", "c_address", "c_nationkey", "c_phone", "c_acctbal", "c_mktsegment")
"""Customer attributes whose change opens a new version (the free-text comment is not tracked)."""
VERSION_FACTOR = 100_000_000
"""Surrogate key of a version: business key × this + yyyymmdd of ``valid_from``."""

_ONE = "__one"
_PRIORITY = "__priority"
_FIRST = "__first"


def date_key(column: str) -> nw.Expr:
    """``yyyymmdd`` of a date column as a 32-bit integer (the key of ``dim_date``)."""
    day = nw.col(column).dt
    # Each part widened first: month and day are 8-bit integers on Polars.
    year, month, dom = (part.cast(nw.Int32()) for part in (day.year(), day.month(), day.day()))
    return year * 10_000 + month * 100 + dom


def version_key(business_key: str, valid_from: str) -> nw.Expr:
    """The surrogate key of a dimension version: ``business_key × 10⁸ + yyyymmdd(valid_from)``."""
    return nw.col(business_key).cast(nw.Int64()) * VERSION_FACTOR + date_key(valid_from).cast(nw.Int64())


def _first_per(keys: Sequence[str], order_by: Sequence[str]) -> nw.Expr:
    """True on the first row of each ``keys`` group in ``order_by`` order (needs the ``__one`` column)."""
    return nw.col(_ONE).cum_sum().over(*keys, order_by=list(order_by)) == 1


def _same(column: str, other: nw.Expr) -> nw.Expr:
    """Null-safe equality of ``column`` and ``other`` (two nulls are equal)."""
    mine = nw.col(column)
    return (mine == other).fill_null(False) | (mine.is_null() & other.is_null())


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


def dim_date(orders: IntoLazyFrameT) -> IntoLazyFrameT:
    """One row per order date of ``orders``: ``date_key`` (yyyymmdd) and calendar attributes, by date.

    ``day_of_week`` is ISO (Monday 1 … Sunday 7); ``_batch_date`` is the earliest batch holding the date.

    Raises:
        TypeError: if a frame is not a lazy frame of a supported engine.

    """
    day = nw.col("full_date")
    # ISO weekday on both engines: narwhals 2.29 gives Sunday as 7 on Polars but 0 on Spark.
    weekday = (day.dt.weekday().cast(nw.Int32()) + 6) % 7 + 1
    dates = (
        lazy(orders)
        .group_by("o_orderdate")
        .agg(nw.col(BATCH_DATE).min())
        .select(nw.col("o_orderdate").alias("full_date"), BATCH_DATE)
        .select(
            date_key("full_date").alias("date_key"),
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


def dim_customer(
    current: IntoLazyFrameT,
    incoming: IntoLazyFrameT,
    nation: IntoLazyFrameT,
    region: IntoLazyFrameT,
    batches: Sequence[date],
) -> IntoLazyFrameT:
    """The complete SCD2 version chains of the customers in ``incoming``, by customer and ``valid_from``.

    Args:
        current: ``dim_customer`` rows (at least ``c_custkey``, the tracked attributes and
            ``valid_from``); only the customers of ``incoming`` are read.
        incoming: conformed customer rows (TPC-H columns typed, ``_batch_date``, ``_source_file``,
            ``_row_number``) of ``batches``. Several rows of a customer in one batch: the first in
            file and row order wins, as in silver.
        nation: ``n_nationkey``, ``n_name``, ``n_regionkey`` of every nation.
        region: ``r_regionkey``, ``r_name`` of every region.
        batches: the processed batch dates: existing versions starting on them are replaced.

    Returns:
        Rows with the columns of ``gold.dim_customer`` but ``_run_id``. ``customer_key`` is
        :func:`version_key` of ``(c_custkey, valid_from)``; ``valid_to`` is the next version's
        ``valid_from`` (null on the current one); ``_batch_date`` is, for every version of a
        customer, the latest processed batch that held the customer, so an audit of the batches
        sees whole chains.

    Raises:
        TypeError: if a frame is not a lazy frame of a supported engine.

    """
    new = lazy(incoming)
    latest = new.group_by(CUSTOMER_KEY).agg(nw.col(BATCH_DATE).max())
    arrived = (
        new.with_columns(nw.lit(1).alias(_ONE))
        .filter(_first_per([CUSTOMER_KEY, BATCH_DATE], [SOURCE_FILE, ROW_NUMBER]))
        .select(CUSTOMER_KEY, *TRACKED, nw.col(BATCH_DATE).alias(VALID_FROM), nw.lit(0).alias(_PRIORITY))
    )
    schema = arrived.collect_schema()
    known = (
        lazy(current)
        .join(latest.select(CUSTOMER_KEY), on=CUSTOMER_KEY, how="semi")
        .filter(~nw.col(VALID_FROM).is_in(list(batches)))
        .select(
            *(nw.col(c).cast(schema[c]) for c in (CUSTOMER_KEY, *TRACKED, VALID_FROM)),
            nw.lit(1).alias(_PRIORITY),
        )
    )
    # Should a batch of ``incoming`` be missing from ``batches``, its rows still win over a known
    # version starting the same day.
    versions = (
        nw.concat([arrived, known])
        .with_columns(nw.lit(1).alias(_ONE))
        .filter(_first_per([CUSTOMER_KEY, VALID_FROM], [_PRIORITY]))
    )
    changed = ~nw.all_horizontal(
        *(_same(c, nw.col(c).shift(1).over(CUSTOMER_KEY, order_by=VALID_FROM)) for c in TRACKED),
        ignore_nulls=False,
    )
    first = nw.col(VALID_FROM).shift(1).over(CUSTOMER_KEY, order_by=VALID_FROM).is_null()
    chains: nw.LazyFrame[IntoLazyFrameT] = (
        versions.filter(first | changed)
        .with_columns(nw.col(VALID_FROM).shift(-1).over(CUSTOMER_KEY, order_by=VALID_FROM).alias(VALID_TO))
        .join(latest, on=CUSTOMER_KEY, how="left")
        .join(_names(nation, region, "c"), on="c_nationkey", how="left")
        .select(
            version_key(CUSTOMER_KEY, VALID_FROM).alias("customer_key"),
            CUSTOMER_KEY,
            "c_name",
            "c_address",
            "c_nationkey",
            "c_nation",
            "c_region",
            "c_phone",
            "c_acctbal",
            "c_mktsegment",
            VALID_FROM,
            VALID_TO,
            nw.col(VALID_TO).is_null().alias(IS_CURRENT),
            BATCH_DATE,
        )
        .sort(CUSTOMER_KEY, VALID_FROM)
    )
    return chains.to_native()


def dim_part(part: IntoLazyFrameT) -> IntoLazyFrameT:
    """Type-1 part dimension: silver part rows with ``part_key`` (= ``p_partkey``), by key.

    Raises:
        TypeError: if a frame is not a lazy frame of a supported engine.

    """
    columns = ("p_partkey", "p_name", "p_mfgr", "p_brand", "p_type", "p_size", "p_container", "p_retailprice")
    parts = (
        lazy(part)
        .select(nw.col("p_partkey").cast(nw.Int64()).alias("part_key"), *columns, BATCH_DATE)
        .sort("p_partkey")
    )
    return parts.to_native()


def dim_supplier(supplier: IntoLazyFrameT, nation: IntoLazyFrameT, region: IntoLazyFrameT) -> IntoLazyFrameT:
    """Type-1 supplier dimension: silver supplier rows with ``supplier_key`` and nation/region names, by key.

    Raises:
        TypeError: if a frame is not a lazy frame of a supported engine.

    """
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


def with_dimension_keys(
    sales: IntoLazyFrameT, customers: IntoLazyFrameT, parts: IntoLazyFrameT, suppliers: IntoLazyFrameT
) -> IntoLazyFrameT:
    """Sales rows (see :func:`lakehouse.transforms.gold.fct_sales`) with their dimensions' surrogate keys.

    ``date_key`` is the order date's; ``customer_key`` the customer version valid on the order date
    (an order dated before a customer's first version gets that first version); ``part_key`` and
    ``supplier_key`` those of the part and supplier rows. A key with no dimension row is null, for
    the gate to reject; no sales row is dropped or duplicated by a well-formed dimension.

    Raises:
        TypeError: if a frame is not a lazy frame of a supported engine.

    """
    start = nw.col(VALID_FROM)
    versions = (
        lazy(customers)
        .select(nw.col(CUSTOMER_KEY).alias("o_custkey"), "customer_key", VALID_FROM, VALID_TO)
        .with_columns((start == start.min().over("o_custkey")).alias(_FIRST))
    )
    ordered = nw.col("o_orderdate")
    valid = start.is_null() | (
        ((start <= ordered) | nw.col(_FIRST)) & (nw.col(VALID_TO).is_null() | (ordered < nw.col(VALID_TO)))
    )
    part_keys = lazy(parts).select(nw.col("p_partkey").alias("l_partkey"), "part_key")
    supplier_keys = lazy(suppliers).select(nw.col("s_suppkey").alias("l_suppkey"), "supplier_key")
    base = lazy(sales)
    columns = [c for c in base.collect_schema().names() if c != BATCH_DATE]
    keyed = (
        base.join(versions, on="o_custkey", how="left")
        .filter(valid)
        .join(part_keys, on="l_partkey", how="left")
        .join(supplier_keys, on="l_suppkey", how="left")
        .select(
            *columns,
            date_key("o_orderdate").alias("date_key"),
            "customer_key",
            "part_key",
            "supplier_key",
            BATCH_DATE,
        )
    )
    return keyed.to_native()
