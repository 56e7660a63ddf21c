"""Bronze rows → typed, deduplicated silver rows, and the rejected rows with the rule they broke.

Rules, first failing one wins: ``null_key``, ``unparseable:<column>``, ``out_of_range:<column>``,
``orphan_key:<column>``, then ``duplicate_key`` (the first row of a key, in file and row order, is kept).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

import polars as pl

from lakehouse.tables import BATCH_DATE, POLARS, ROW_NUMBER, RULE, SOURCE_FILE, SourceTable

# Row-level value rules: column -> (lowest allowed, highest allowed); None means unbounded.
RANGES: dict[str, tuple[float | None, float | None]] = {
    "l_quantity": (0.01, None),
    "l_extendedprice": (0, None),
    "l_discount": (0, 1),
    "l_tax": (0, 1),
    "o_totalprice": (0, None),
    "p_retailprice": (0, None),
    "p_size": (1, None),
    "ps_availqty": (0, None),
    "ps_supplycost": (0, None),
}
DATE_RANGE = (date(1900, 1, 1), date(2099, 12, 31))
_OK = "__ok_"


@dataclass(frozen=True)
class Conformed:
    """The result of conforming a batch: rows for silver and rows for quarantine."""

    good: pl.LazyFrame
    rejected: pl.LazyFrame


def _typed(name: str) -> str:
    return f"__typed_{name}"


def _parse(spec: SourceTable) -> list[pl.Expr]:
    exprs = []
    for col in spec.columns:
        raw = pl.col(col.name).str.strip_chars()
        if col.type == "date":
            parsed = raw.str.to_date("%Y-%m-%d", strict=False)
        elif col.type == "string":
            parsed = pl.col(col.name)
        else:
            parsed = raw.cast(POLARS[col.type], strict=False)
        exprs.append(parsed.alias(_typed(col.name)))
    return exprs


def _rule(spec: SourceTable, parents: Mapping[str, pl.LazyFrame]) -> pl.Expr:
    checks: list[tuple[pl.Expr, str]] = []
    key_null = pl.any_horizontal(pl.col(k).is_null() | (pl.col(k).str.strip_chars() == "") for k in spec.key)
    checks.append((key_null, "null_key"))
    for col in spec.columns:
        if col.type != "string":
            bad = pl.col(col.name).is_not_null() & pl.col(_typed(col.name)).is_null()
            checks.append((bad, f"unparseable:{col.name}"))
    for col in spec.columns:
        typed = pl.col(_typed(col.name))
        if col.name in RANGES:
            low, high = RANGES[col.name]
            out = pl.lit(False)
            if low is not None:
                out = out | (typed < low)
            if high is not None:
                out = out | (typed > high)
            checks.append((out.fill_null(False), f"out_of_range:{col.name}"))
        elif col.type == "date":
            checks.append((~typed.is_between(*DATE_RANGE).fill_null(True), f"out_of_range:{col.name}"))
    for fk in parents:
        checks.append((pl.col(_OK + fk).is_null(), f"orphan_key:{fk}"))
    rule: pl.Expr = pl.lit(None, dtype=pl.String)
    for cond, name in reversed(checks):  # built inside out: the first failing rule wins
        rule = pl.when(cond).then(pl.lit(name)).otherwise(rule)
    return rule.alias(RULE)


def conform(
    rows: pl.LazyFrame, spec: SourceTable, parents: Mapping[str, pl.LazyFrame] | None = None
) -> Conformed:
    """Type, validate and deduplicate bronze rows of one table.

    Args:
        rows: bronze rows (TPC-H columns as strings plus load metadata).
        spec: the TPC-H table.
        parents: for each foreign-key column to check, a frame whose single column holds the
            valid parent keys (typed like the column).

    Returns:
        ``good`` with TPC-H columns typed plus the load metadata, and ``rejected`` with the original
        string values, ``_rule`` and the load metadata.

    """
    parents = parents or {}
    meta = [c for c in rows.collect_schema().names() if c.startswith("_")]
    work = rows.with_columns(_parse(spec))
    for col, keys in parents.items():
        valid = (
            keys.select(pl.first().alias(_typed(col))).unique().with_columns(pl.lit(True).alias(_OK + col))
        )
        work = work.join(valid, on=_typed(col), how="left", nulls_equal=False)
    work = work.with_columns(_rule(spec, parents))
    clean = work.filter(pl.col(RULE).is_null()).sort([SOURCE_FILE, ROW_NUMBER])
    first = pl.struct([_typed(k) for k in spec.key]).is_first_distinct()
    clean = clean.with_columns(
        pl.when(first).then(pl.lit(None, dtype=pl.String)).otherwise(pl.lit("duplicate_key")).alias(RULE)
    )
    good = clean.filter(pl.col(RULE).is_null()).select(
        *(pl.col(_typed(c)).alias(c) for c in spec.column_names), *meta
    )
    rejected = pl.concat([work.filter(pl.col(RULE).is_not_null()), clean.filter(pl.col(RULE).is_not_null())])
    rejected = rejected.select(*spec.column_names, RULE, *meta).sort([BATCH_DATE, SOURCE_FILE, ROW_NUMBER])
    return Conformed(good=good, rejected=rejected)


def merge_latest(
    current: pl.LazyFrame, incoming: pl.LazyFrame, key: tuple[str, ...], batches: list[date]
) -> pl.LazyFrame:
    """Reference-table merge: per key the row of the latest batch wins.

    Rows of ``current`` that came from ``batches`` are replaced by ``incoming`` (reruns are
    idempotent); a late batch older than a key's current row does not override it.
    """
    kept = current.filter(~pl.col(BATCH_DATE).is_in(batches))
    return (
        pl.concat([kept, incoming], how="vertical_relaxed")
        .sort([*key, BATCH_DATE, SOURCE_FILE, ROW_NUMBER])
        .unique(subset=list(key), keep="last", maintain_order=True)
    )
