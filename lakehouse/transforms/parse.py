"""Lenient string → typed parsing, identical on Polars and Spark.

A value is parsed if, once stripped of ASCII whitespace, it has the shape of its type (checked by
the same anchored regex on both engines) and fits the type; otherwise it parses to null. The
shape check is portable; the final cast is not (Polars ``cast(strict=False)`` and
``str.to_date(strict=False)`` against Spark ``try_cast`` and ``try_to_date``, which stay null-safe
whatever ``spark.sql.ansi.enabled`` says), so it has one small implementation per engine.

Shapes: integers ``[+-]digits``; decimals ``[+-]digits[.digits]`` or ``[+-].digits`` with at most
the type's scale of fractional digits (more would be rounded by Spark and truncated by Polars:
such values are rejected instead of silently altered), no exponent; doubles as decimals plus an
optional exponent; booleans ``true`` or ``false`` in any case; dates ``YYYY-M-D`` (month and day
one or two digits) or the column's declared format (``%Y``, ``%m``, ``%d``, ``%y`` and literal
characters), which must also be a real calendar day; timestamps ISO 8601, ``YYYY-M-D`` then ``T``
or a space, ``H:MM:SS`` and up to 9 fractional digits, and for ``timestamptz`` a zone ``Z`` or
``±HH:MM`` (required). Digits are ASCII only.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from typing import Any

import narwhals.stable.v2 as nw
import polars as pl

from lakehouse.spec import Column, ColumnType
from lakehouse.transforms.frames import engine_of

WHITESPACE = string.whitespace
"""Stripped around values before parsing: ASCII whitespace on both engines."""

# \A and \z, not ^ and $: Java's $ also matches before a final line terminator.
_INTEGER = r"\A[+-]?[0-9]+\z"
_DATE = "[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
_TIME = "[T ][0-9]{1,2}:[0-9]{2}:[0-9]{2}([.][0-9]{1,9})?"
_ZONE = "(Z|[+-][0-9]{2}:[0-9]{2})"
_DIRECTIVES = {
    "%Y": ("[0-9]{4}", "yyyy"),
    "%m": ("[0-9]{1,2}", "M"),
    "%d": ("[0-9]{1,2}", "d"),
    "%y": ("[0-9]{2}", "yy"),
}
DATE_FORMAT = "%Y-%m-%d"
_TIMESTAMP_POLARS = "%Y-%m-%dT%H:%M:%S%.f"
_TIMESTAMP_SPARK = "yyyy-M-d'T'H:mm:ss[.SSSSSSSSS]"


def _date_format(fmt: str) -> tuple[str, str]:
    """A date format's shape regex and Java pattern.

    Raises:
        ValueError: if the format uses another directive than %Y, %m, %d and %y.

    """
    shape, java = "", ""
    for token in re.findall(r"%.|[^%]", fmt):
        if token.startswith("%"):
            if token not in _DIRECTIVES:
                raise ValueError(f"date format {fmt!r}: {token} is not supported (use %Y, %m, %d, %y)")
            shape += _DIRECTIVES[token][0]
            java += _DIRECTIVES[token][1]
        else:
            shape += re.escape(token)
            java += f"'{token}'" if token.isalpha() or token == "'" else token
    return rf"\A{shape}\z", java


def shape(kind: ColumnType, fmt: str | None = None) -> str:
    """The anchored regex a value of ``kind`` must match to be parsed.

    Raises:
        ValueError: if ``kind`` is ``string`` (nothing to parse) or ``fmt`` is not supported.

    """
    base = kind.kind
    if base in ("int", "bigint"):
        return _INTEGER
    if base == "decimal":
        s = kind.scale
        if s == 0:
            return _INTEGER
        return rf"\A[+-]?([0-9]+([.][0-9]{{0,{s}}})?|[.][0-9]{{1,{s}}})\z"
    if base == "double":
        return r"\A[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?[0-9]+)?\z"
    if base == "boolean":
        return r"\A(?i:true|false)\z"
    if base == "date":
        return _date_format(fmt)[0] if fmt else rf"\A{_DATE}\z"
    if base == "timestamp":
        return rf"\A{_DATE}{_TIME}\z"
    if base == "timestamptz":
        return rf"\A{_DATE}{_TIME}{_ZONE}\z"
    raise ValueError(f"no lenient parsing to {kind}")


def stripped(column: str) -> nw.Expr:
    """``column`` without surrounding ASCII whitespace."""
    return nw.col(column).str.strip_chars(WHITESPACE)


def parse_columns(frame: nw.LazyFrame[Any], columns: Mapping[str, tuple[str, Column]]) -> nw.LazyFrame[Any]:
    """Add parsed columns ``{output: (string column, declared column)}``; unparseable values become null.

    Raises:
        ValueError: if a column is a ``string`` (nothing to parse) or its format is not supported.

    """
    shaped = frame.with_columns(
        nw.when(stripped(source).str.contains(shape(col.type, col.format))).then(stripped(source)).alias(name)
        for name, (source, col) in columns.items()
    )
    declared = {name: col for name, (_, col) in columns.items()}
    if engine_of(frame) == "polars":
        return _cast_polars(shaped, declared)
    return _cast_spark(shaped, declared)


def polars_type(kind: ColumnType) -> pl.DataType:
    """The Polars type of a declared column type."""
    base = kind.kind
    if base == "decimal":
        return pl.Decimal(kind.precision, kind.scale)
    return {
        "bigint": pl.Int64(),
        "int": pl.Int32(),
        "double": pl.Float64(),
        "boolean": pl.Boolean(),
        "date": pl.Date(),
        "timestamp": pl.Datetime("us"),
        "timestamptz": pl.Datetime("us", "UTC"),
        "string": pl.String(),
    }[base]


def _iso(column: pl.Expr) -> pl.Expr:
    return column.str.replace(" ", "T", literal=True).str.replace(r"Z\z", "+00:00")


def _cast_polars(frame: nw.LazyFrame[Any], declared: Mapping[str, Column]) -> nw.LazyFrame[Any]:
    native: pl.LazyFrame = frame.to_native()
    exprs = []
    for name, col in declared.items():
        value, base = pl.col(name), col.kind
        if base == "date":
            expr = value.str.to_date(col.format or DATE_FORMAT, strict=False)
        elif base == "timestamp":
            expr = _iso(value).str.to_datetime(_TIMESTAMP_POLARS, strict=False, time_unit="us")
        elif base == "timestamptz":
            expr = _iso(value).str.to_datetime(
                f"{_TIMESTAMP_POLARS}%:z", strict=False, time_unit="us", time_zone="UTC"
            )
        elif base == "boolean":
            expr = value.str.to_lowercase() == "true"
        else:
            expr = value.cast(polars_type(col.type), strict=False)
        exprs.append(expr.alias(name))
    return nw.from_native(native.with_columns(exprs))


def _cast_spark(frame: nw.LazyFrame[Any], declared: Mapping[str, Column]) -> nw.LazyFrame[Any]:
    from pyspark.sql import functions as F

    native = frame.to_native()
    casts = {}
    for name, col in declared.items():
        value, base = F.col(name), col.kind
        if base == "date":
            casts[name] = F.try_to_date(value, _date_format(col.format)[1] if col.format else "yyyy-M-d")
        elif base in ("timestamp", "timestamptz"):
            iso = F.regexp_replace(F.regexp_replace(value, " ", "T"), "Z$", "+00:00")
            if base == "timestamp":  # read as UTC (the session's zone), then the wall clock kept
                parsed = F.try_to_timestamp(F.concat(iso, F.lit("+00:00")), F.lit(f"{_TIMESTAMP_SPARK}XXX"))
                casts[name] = parsed.cast("timestamp_ntz")
            else:
                casts[name] = F.try_to_timestamp(iso, F.lit(f"{_TIMESTAMP_SPARK}XXX"))
        elif base == "boolean":
            casts[name] = F.lower(value) == F.lit("true")
        else:
            spark_type = {"int": "int", "bigint": "bigint", "double": "double"}.get(base, str(col.type))
            casts[name] = value.try_cast(spark_type)
    cast: nw.LazyFrame[Any] = nw.from_native(native.withColumns(casts))
    return cast
