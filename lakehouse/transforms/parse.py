"""Lenient string → typed parsing, identical on Polars and Spark.

A value is parsed if, once stripped of ASCII whitespace, it has the shape of its type (checked by
the same anchored regex on both engines) and fits the type; otherwise it parses to null. The
shape check is portable; the final cast is not (Polars ``cast(strict=False)`` and
``str.to_date(strict=False)`` against Spark ``try_cast`` and ``try_to_date``, which stay null-safe
whatever ``spark.sql.ansi.enabled`` says), so it has one small implementation per engine.

Shapes: integers ``[+-]digits``; decimals ``[+-]digits[.digits]`` or ``[+-].digits`` with at most
:data:`~lakehouse.tables.DECIMAL_SCALE` fractional digits (more would be rounded by Spark and
truncated by Polars: such values are rejected instead of silently altered), no exponent; dates
``YYYY-M-D`` (month and day one or two digits), which must also be a real calendar day. Digits
are ASCII only.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

import narwhals.stable.v2 as nw
import polars as pl

from lakehouse.tables import DECIMAL_PRECISION, DECIMAL_SCALE, POLARS, ColumnType
from lakehouse.transforms.frames import engine_of

WHITESPACE = string.whitespace
"""Stripped around values before parsing: ASCII whitespace on both engines."""

# \A and \z, not ^ and $: Java's $ also matches before a final line terminator.
SHAPES: dict[ColumnType, str] = {
    "int": r"\A[+-]?[0-9]+\z",
    "bigint": r"\A[+-]?[0-9]+\z",
    "decimal": rf"\A[+-]?([0-9]+(\.[0-9]{{0,{DECIMAL_SCALE}}})?|\.[0-9]{{1,{DECIMAL_SCALE}}})\z",
    "date": r"\A[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}\z",
}
_SPARK_TYPES: dict[ColumnType, str] = {
    "int": "int",
    "bigint": "bigint",
    "decimal": f"decimal({DECIMAL_PRECISION},{DECIMAL_SCALE})",
}


def stripped(column: str) -> nw.Expr:
    """``column`` without surrounding ASCII whitespace."""
    return nw.col(column).str.strip_chars(WHITESPACE)


def parse_columns(
    frame: nw.LazyFrame[Any], columns: Mapping[str, tuple[str, ColumnType]]
) -> nw.LazyFrame[Any]:
    """Add parsed columns: ``{output: (string source column, type)}``; unparseable values become null.

    Raises:
        ValueError: if a type is ``string`` (nothing to parse).

    """
    for name, (_, kind) in columns.items():
        if kind not in SHAPES:
            raise ValueError(f"{name}: no lenient parsing to {kind!r}")
    shaped = frame.with_columns(
        nw.when(stripped(source).str.contains(SHAPES[kind])).then(stripped(source)).alias(name)
        for name, (source, kind) in columns.items()
    )
    kinds = {name: kind for name, (_, kind) in columns.items()}
    if engine_of(frame) == "polars":
        return _cast_polars(shaped, kinds)
    return _cast_spark(shaped, kinds)


def _cast_polars(frame: nw.LazyFrame[Any], kinds: Mapping[str, ColumnType]) -> nw.LazyFrame[Any]:
    native: pl.LazyFrame = frame.to_native()
    exprs = [
        pl.col(name).str.to_date("%Y-%m-%d", strict=False)
        if kind == "date"
        else pl.col(name).cast(POLARS[kind], strict=False)
        for name, kind in kinds.items()
    ]
    return nw.from_native(native.with_columns(exprs))


def _cast_spark(frame: nw.LazyFrame[Any], kinds: Mapping[str, ColumnType]) -> nw.LazyFrame[Any]:
    from pyspark.sql import functions as F

    native = frame.to_native()
    casts = {
        name: F.try_to_date(F.col(name), "yyyy-M-d")
        if kind == "date"
        else F.col(name).try_cast(_SPARK_TYPES[kind])
        for name, kind in kinds.items()
    }
    cast: nw.LazyFrame[Any] = nw.from_native(native.withColumns(casts))
    return cast
