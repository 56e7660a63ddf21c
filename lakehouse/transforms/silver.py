"""Bronze rows → typed, deduplicated silver rows, and the rejected rows with the rule they broke.

The rules are the table's declaration (:mod:`lakehouse.spec`); the first failing one wins:
``null_key``, ``unparseable:<column>``, ``missing:<column>`` (``not_null``),
``out_of_range:<column>``, ``not_accepted:<column>``, ``pattern:<column>``, ``length:<column>``,
``orphan_key:<columns>`` (a foreign key whose policy is ``quarantine``; ``+`` joins a composite
key's columns), then ``duplicate_key`` (the first row of a key, in file and row order, is kept).
A value equal to one of the source's null tokens (e.g. ``NA``) is null. Every function takes and
returns native lazy frames of one engine (Polars or Spark); see :mod:`lakehouse.transforms.parse`
for what parses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Generic

import narwhals.stable.v2 as nw
from narwhals.typing import IntoLazyFrameT

from lakehouse.spec import Column, SourceTable
from lakehouse.tables import BATCH_DATE, ROW_NUMBER, RULE, SOURCE_FILE
from lakehouse.transforms.frames import engine_of, lazy
from lakehouse.transforms.parse import parse_columns, stripped

_OK = "__ok_"
_ONE = "__one"
_CLEAN = "__clean"
_ORDER = "__order"


@dataclass(frozen=True)
class Conformed(Generic[IntoLazyFrameT]):
    """The result of conforming a batch: rows for silver and rows for quarantine."""

    good: IntoLazyFrameT
    rejected: IntoLazyFrameT


def _typed(name: str) -> str:
    return f"__typed_{name}"


def _value_rules(col: Column) -> list[tuple[nw.Expr, str]]:
    """The declared value rules of ``col`` on its typed value (a null value breaks none of them)."""
    rules = col.rules
    typed = nw.col(_typed(col.name))
    out: list[tuple[nw.Expr, str]] = []
    if rules.min is not None or rules.max is not None:
        outside = nw.lit(False)
        if rules.min is not None:
            outside = outside | (typed < rules.min)
        if rules.max is not None:
            outside = outside | (typed > rules.max)
        out.append((outside.fill_null(False), f"out_of_range:{col.name}"))
    if rules.accepted_values is not None:
        out.append((~typed.is_in(list(rules.accepted_values)).fill_null(True), f"not_accepted:{col.name}"))
    if rules.pattern is not None:
        out.append((~typed.str.contains(rules.pattern).fill_null(True), f"pattern:{col.name}"))
    if rules.min_length is not None or rules.max_length is not None:
        length = typed.str.len_chars()
        wrong = nw.lit(False)
        if rules.min_length is not None:
            wrong = wrong | (length < rules.min_length)
        if rules.max_length is not None:
            wrong = wrong | (length > rules.max_length)
        out.append((wrong.fill_null(False), f"length:{col.name}"))
    return out


def _rule(spec: SourceTable, checked: Sequence[str]) -> nw.Expr:
    checks: list[tuple[nw.Expr, str]] = []
    if spec.key:
        key_null = nw.any_horizontal(
            *(nw.col(k).is_null() | (stripped(k) == "") for k in spec.key), ignore_nulls=True
        )
        checks.append((key_null, "null_key"))
    for col in spec.columns:
        if col.kind != "string":
            bad = ~nw.col(col.name).is_null() & nw.col(_typed(col.name)).is_null()
            checks.append((bad, f"unparseable:{col.name}"))
    for col in spec.columns:
        if col.rules.not_null and col.name not in spec.key:
            checks.append((nw.col(_typed(col.name)).is_null(), f"missing:{col.name}"))
    for col in spec.columns:
        checks += _value_rules(col)
    for label in checked:
        checks.append((nw.col(_OK + label).is_null(), f"orphan_key:{label}"))
    rule: nw.Expr = nw.lit(None, dtype=nw.String())
    for cond, name in reversed(checks):  # built inside out: the first failing rule wins
        rule = nw.when(cond).then(nw.lit(name)).otherwise(rule)
    return rule.alias(RULE)


def _nulled(source: nw.LazyFrame[Any], spec: SourceTable, null_values: Sequence[str]) -> nw.LazyFrame[Any]:
    """``source`` with every value equal to a null token (stripped, for typed columns) set to null."""
    tokens = list(dict.fromkeys(null_values))
    if not tokens:
        return source
    out = []
    for col in spec.columns:
        value = stripped(col.name) if col.kind != "string" else nw.col(col.name)
        out.append(nw.when(~value.is_in(tokens)).then(nw.col(col.name)).alias(col.name))
    return source.with_columns(out)


def _flag_duplicates(work: nw.LazyFrame[Any], unique_by: list[str]) -> nw.LazyFrame[Any]:
    """``work`` in file and row order; each clean row after its key's first gets rule ``duplicate_key``.

    Polars numbers the rows once in that order and compares each clean row with its key's lowest
    number (a hash aggregation; a year of line items: 1.0 s instead of 1.26 s for an ordered running
    count per key). On Spark one numbering would move every row to a single partition, so it keeps
    the running count of clean rows per key partition.
    """
    clean = nw.col(RULE).is_null()
    if engine_of(work) == "polars":
        helper, order = _ORDER, [_ORDER]
        numbered = work.with_row_index(_ORDER, order_by=[SOURCE_FILE, ROW_NUMBER])
        first = nw.when(clean).then(nw.col(_ORDER)).min().over(*unique_by)
        duplicate = clean & (nw.col(_ORDER) > first)
    else:
        helper, order = _CLEAN, [SOURCE_FILE, ROW_NUMBER]
        numbered = work.with_columns(nw.when(clean).then(nw.lit(1)).otherwise(nw.lit(0)).alias(_CLEAN))
        duplicate = clean & (nw.col(_CLEAN).cum_sum().over(*unique_by, order_by=order) > 1)
    return (
        numbered.with_columns(
            nw.when(duplicate).then(nw.lit("duplicate_key")).otherwise(nw.col(RULE)).alias(RULE)
        )
        .sort(*order)
        .drop(helper)
    )


def conform(
    rows: IntoLazyFrameT,
    spec: SourceTable,
    parents: Mapping[str, IntoLazyFrameT] | None = None,
    *,
    null_values: Sequence[str] = ("",),
    materialize: Callable[[IntoLazyFrameT], IntoLazyFrameT] | None = None,
) -> Conformed[IntoLazyFrameT]:
    """Type, validate and deduplicate bronze rows of one table by its declared rules.

    Every row is typed and given the rule it breaks, if any, once; both results are cut from these
    flagged rows (the rejected ones joined back to their original string values).

    Args:
        rows: bronze rows (the declared columns as strings plus load metadata).
        spec: the table's declaration.
        parents: for each foreign key to check (by :attr:`~lakehouse.spec.Reference.label`), a
            frame (same engine as ``rows``) of the valid parent keys, typed like the columns, in
            the order of the reference's columns. A key whose policy is ``warn`` is not checked
            here (its orphans are kept, and reported by the table's contract).
        null_values: values read as null (the source's null tokens).
        materialize: applied to the flagged rows (e.g. an engine's ``materialize``) so that
            parsing, joins and deduplication run once rather than once per result.

    Returns:
        ``good`` with the declared columns typed plus the load metadata, in file and row order,
        and ``rejected`` with the original string values, ``_rule`` and the load metadata, in
        batch, file and row order; both of the engine of ``rows``.

    Raises:
        TypeError: if a frame is not a lazy frame of a supported engine.

    """
    parents = parents or {}
    source = lazy(rows)
    meta = [c for c in source.collect_schema().names() if c.startswith("_")]
    work = _nulled(source, spec, null_values)
    work = parse_columns(work, {_typed(c.name): (c.name, c) for c in spec.columns if c.kind != "string"})
    work = work.with_columns(nw.col(c.name).alias(_typed(c.name)) for c in spec.columns if c.kind == "string")
    checked = []
    for reference in spec.references:
        if reference.on_orphan != "quarantine" or reference.label not in parents:
            continue
        parent = lazy(parents[reference.label])
        names = parent.collect_schema().names()
        valid = (
            parent.select(nw.col(p).alias(_typed(c)) for p, c in zip(names, reference.columns, strict=True))
            .unique()
            .with_columns(nw.lit(True).alias(_OK + reference.label))
        )
        work = work.join(valid, on=[_typed(c) for c in reference.columns], how="left")
        checked.append(reference.label)
    work = work.with_columns(_rule(spec, checked))
    # Facts: a key is unique across batches. References: once per batch (later batches are versions).
    # Among the rows no other rule rejects, the first of a key (file and row order) is kept.
    flagged = work
    if spec.key:
        unique_by = [_typed(k) for k in spec.key] + ([BATCH_DATE] if spec.kind == "reference" else [])
        flagged = _flag_duplicates(work, unique_by)
    flagged = flagged.select(*(nw.col(_typed(c)).alias(c) for c in spec.column_names), *meta, RULE)
    if materialize is not None:
        flagged = lazy(materialize(flagged.to_native()))
    good = flagged.filter(nw.col(RULE).is_null()).drop(RULE)
    rule_of = flagged.filter(~nw.col(RULE).is_null()).select(SOURCE_FILE, ROW_NUMBER, RULE)
    rejected = (
        source.join(rule_of, on=[SOURCE_FILE, ROW_NUMBER], how="inner")
        .select(*spec.column_names, RULE, *meta)
        .sort(BATCH_DATE, SOURCE_FILE, ROW_NUMBER)
    )
    return Conformed(good=good.to_native(), rejected=rejected.to_native())


def merge_latest(
    current: IntoLazyFrameT, incoming: IntoLazyFrameT, key: tuple[str, ...], batches: list[date]
) -> IntoLazyFrameT:
    """Reference-table merge: per key the row of the latest batch wins.

    Rows of ``current`` that came from ``batches`` are replaced by ``incoming`` (reruns are
    idempotent); a late batch older than a key's current row does not override it. ``incoming``
    is cast to ``current``'s schema; the result is sorted by key.

    Raises:
        TypeError: if a frame is not a lazy frame of a supported engine.

    """
    now, new = lazy(current), lazy(incoming)
    schema = now.collect_schema()
    kept = now.filter(~nw.col(BATCH_DATE).is_in(batches))
    aligned = new.select(nw.col(name).cast(dtype) for name, dtype in schema.items())
    order = [BATCH_DATE, SOURCE_FILE, ROW_NUMBER]
    merged = (
        nw.concat([kept, aligned])
        .with_columns(nw.lit(1).alias(_ONE))
        .with_columns((nw.col(_ONE).cum_sum(reverse=True).over(*key, order_by=order) == 1).alias(_ONE))
        .filter(nw.col(_ONE))
        .select(schema.names())
        .sort(*key)
    )
    out: IntoLazyFrameT = merged.to_native()
    return out
