"""SCD2 version chains, for any dimension: a version per change of its tracked columns.

Versions come from two places: the rows of the processed batches (``valid_from`` is the row's
``_batch_date``; several rows of a key in one batch: the first in file and row order wins, as in
silver) and the versions already in the dimension for the same keys. Per key, the incoming rows
replace the existing versions of the processed batches (a rerun is idempotent), the versions are
ordered by ``valid_from``, and a version whose tracked columns equal its predecessor's is dropped
(an unchanged record creates no version). Each remaining version is valid until the next one
starts; the last is current. Because the whole chain of every affected key is recomputed, a late
change set is inserted where it belongs.

**Surrogate keys** are computed, not drawn from a sequence, so every run and engine gives the same
key to the same version: ``business key × 10⁸ + yyyymmdd(valid_from)`` (injective for business
keys below 92,233,720,368). A packed key rather than a hash: no hash function gives the same bits
on Polars and Spark, and packing cannot collide.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import narwhals.stable.v2 as nw
from narwhals.typing import IntoLazyFrameT

from lakehouse.tables import BATCH_DATE, IS_CURRENT, ROW_NUMBER, SOURCE_FILE, VALID_FROM, VALID_TO
from lakehouse.transforms.frames import lazy

VERSION_FACTOR = 100_000_000
"""Surrogate key of a version: business key × this + yyyymmdd of ``valid_from``."""

_ONE = "__one"
_PRIORITY = "__priority"


def yyyymmdd(column: str) -> nw.Expr:
    """``yyyymmdd`` of a date column as a 32-bit integer."""
    day = nw.col(column).dt
    # Each part widened first: month and day are 8-bit integers on Polars.
    year, month, dom = (part.cast(nw.Int32()) for part in (day.year(), day.month(), day.day()))
    return year * 10_000 + month * 100 + dom


def version_key(business_key: str, valid_from: str) -> nw.Expr:
    """The surrogate key of a dimension version: ``business_key × 10⁸ + yyyymmdd(valid_from)``."""
    return nw.col(business_key).cast(nw.Int64()) * VERSION_FACTOR + yyyymmdd(valid_from).cast(nw.Int64())


def first_per(keys: Sequence[str], order_by: Sequence[str]) -> nw.Expr:
    """True on the first row of each ``keys`` group in ``order_by`` order (needs a ``__one`` column of 1s)."""
    return nw.col(_ONE).cum_sum().over(*keys, order_by=list(order_by)) == 1


def _same(column: str, other: nw.Expr) -> nw.Expr:
    """Null-safe equality of ``column`` and ``other`` (two nulls are equal)."""
    mine = nw.col(column)
    return (mine == other).fill_null(False) | (mine.is_null() & other.is_null())


def chains(
    current: IntoLazyFrameT,
    incoming: IntoLazyFrameT,
    *,
    key: str,
    tracked: Sequence[str],
    columns: Sequence[str],
    batches: Sequence[date],
    surrogate_key: str | None = None,
) -> IntoLazyFrameT:
    """The complete version chains of the keys in ``incoming``, by key and ``valid_from``.

    Args:
        current: the dimension's rows (``columns`` and ``valid_from``); only ``incoming``'s keys are read.
        incoming: rows of ``batches`` with ``columns`` (the surrogate key aside), ``_batch_date``,
            ``_source_file`` and ``_row_number``.
        key: the business key column.
        tracked: the columns whose change opens a version.
        columns: the dimension's columns in order (the surrogate key, if any, included).
        batches: the processed batch dates: existing versions starting on them are replaced.
        surrogate_key: the column that gets :func:`version_key` of ``(key, valid_from)``.

    Returns:
        Rows of ``columns``, ``valid_from``, ``valid_to`` (the next version's ``valid_from``, null
        on the current one), ``is_current`` and ``_batch_date``: for every version of a key, the
        latest processed batch that held the key, so an audit of the batches sees whole chains.

    Raises:
        TypeError: if a frame is not a lazy frame of a supported engine.

    """
    attributes = [c for c in columns if c not in (key, surrogate_key)]
    new = lazy(incoming)
    latest = new.group_by(key).agg(nw.col(BATCH_DATE).max())
    arrived = (
        new.with_columns(nw.lit(1).alias(_ONE))
        .filter(first_per([key, BATCH_DATE], [SOURCE_FILE, ROW_NUMBER]))
        .select(key, *attributes, nw.col(BATCH_DATE).alias(VALID_FROM), nw.lit(0).alias(_PRIORITY))
    )
    schema = arrived.collect_schema()
    known = (
        lazy(current)
        .join(latest.select(key), on=key, how="semi")
        .filter(~nw.col(VALID_FROM).is_in(list(batches)))
        .select(
            *(nw.col(c).cast(schema[c]) for c in (key, *attributes, VALID_FROM)), nw.lit(1).alias(_PRIORITY)
        )
    )
    # Should a batch of ``incoming`` be missing from ``batches``, its rows still win over a known
    # version starting the same day.
    versions = (
        nw.concat([arrived, known])
        .with_columns(nw.lit(1).alias(_ONE))
        .filter(first_per([key, VALID_FROM], [_PRIORITY]))
    )
    changed = ~nw.all_horizontal(
        *(_same(c, nw.col(c).shift(1).over(key, order_by=VALID_FROM)) for c in tracked), ignore_nulls=False
    )
    first = nw.col(VALID_FROM).shift(1).over(key, order_by=VALID_FROM).is_null()
    surrogate = [] if surrogate_key is None else [version_key(key, VALID_FROM).alias(surrogate_key)]
    out: nw.LazyFrame[IntoLazyFrameT] = (
        versions.filter(first | changed)
        .with_columns(nw.col(VALID_FROM).shift(-1).over(key, order_by=VALID_FROM).alias(VALID_TO))
        .join(latest, on=key, how="left")
        .with_columns(*surrogate, nw.col(VALID_TO).is_null().alias(IS_CURRENT))
        .select(*columns, VALID_FROM, VALID_TO, IS_CURRENT, BATCH_DATE)
        .sort(key, VALID_FROM)
    )
    return out.to_native()
