"""Failed-row samples: a few rows that break a failed check, read back from the audited view.

Soda 4 keeps failed rows only in Soda Cloud, so the gate rebuilds the condition of the check from
its definition (missing, invalid, duplicate and failed-rows checks) and reads a handful of rows.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import yaml

from checks.views import quote_identifier, quote_literal, view_name

logger = logging.getLogger(__name__)

SAMPLE_ROWS = 5
MAX_VALUE_CHARS = 80
LINEAGE_COLUMNS = ("_batch_date", "_source_file", "_row_number")


@dataclass(frozen=True)
class FailedRows:
    """A few rows breaking a check, as text (None for NULL), with their column names."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str | None, ...], ...]


def check_body(definition: str) -> dict[str, Any]:
    """The configuration of one check from Soda's ``Check.definition`` YAML (empty if it has none)."""
    document = yaml.safe_load(definition) or {}
    holder = document["columns"][0] if "columns" in document else document
    body = (holder.get("checks") or [None])[0]
    return body if isinstance(body, dict) else {}


def _sql_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return quote_literal(str(value))


def _values(values: Iterable[object]) -> str:
    return ", ".join(_sql_value(v) for v in values)


def _missing_condition(column: str, body: Mapping[str, Any]) -> str:
    condition = f"{column} IS NULL"
    if body.get("missing_values"):
        condition += f" OR {column} IN ({_values(body['missing_values'])})"
    return condition


def _invalid_condition(column: str, body: Mapping[str, Any]) -> str | None:
    """SQL that is true for a non-missing value the check counts as invalid (None if unknown)."""
    parts = []
    if body.get("valid_values") is not None:
        parts.append(f"{column} NOT IN ({_values(body['valid_values'])})")
    if body.get("invalid_values") is not None:
        parts.append(f"{column} IN ({_values(body['invalid_values'])})")
    if body.get("valid_min") is not None:
        parts.append(f"{column} < {_sql_value(body['valid_min'])}")
    if body.get("valid_max") is not None:
        parts.append(f"{column} > {_sql_value(body['valid_max'])}")
    if body.get("valid_length") is not None:
        parts.append(f"length({column}) <> {int(body['valid_length'])}")
    if body.get("valid_min_length") is not None:
        parts.append(f"length({column}) < {int(body['valid_min_length'])}")
    if body.get("valid_max_length") is not None:
        parts.append(f"length({column}) > {int(body['valid_max_length'])}")
    if isinstance(body.get("valid_format"), dict):
        parts.append(f"NOT regexp_matches({column}, {quote_literal(body['valid_format']['regex'])})")
    if isinstance(body.get("invalid_format"), dict):
        parts.append(f"regexp_matches({column}, {quote_literal(body['invalid_format']['regex'])})")
    reference = body.get("valid_reference_data")
    if isinstance(reference, dict):
        # dataset is <data source>/<namespace>/<table>: the view is "<namespace>"."<table>".
        _, namespace, table = str(reference["dataset"]).split("/")
        ref_column = quote_identifier(str(reference["column"]))
        parts.append(
            f"NOT EXISTS (SELECT 1 FROM {view_name(f'{namespace}.{table}')} AS _ref "
            f"WHERE _ref.{ref_column} = {column})"
        )
    if not parts:
        return None
    return f"NOT ({_missing_condition(column, body)}) AND ({' OR '.join(parts)})"


def _shown_columns(
    first: Sequence[str], table_columns: Sequence[str], key_columns: Sequence[str]
) -> list[str]:
    """The checked columns, then the table's key and lineage columns: enough to find the row again."""
    wanted = [*first, *key_columns, *LINEAGE_COLUMNS]
    shown: list[str] = []
    for name in wanted:
        if name in table_columns and name not in shown:
            shown.append(name)
    return shown


def sample_sql(
    view: str,
    check_type: str,
    column: str | None,
    body: Mapping[str, Any],
    table_columns: Sequence[str],
    key_columns: Sequence[str],
    limit: int = SAMPLE_ROWS,
) -> str | None:
    """SQL reading up to ``limit`` rows of ``view`` that break the check, or None for aggregate checks."""
    where = f" AND ({body['filter']})" if body.get("filter") else ""
    if check_type == "failed_rows" and body.get("query"):
        return f"SELECT * FROM ({body['query']}) LIMIT {limit}"
    if check_type == "failed_rows" and body.get("expression"):
        expression = str(body["expression"])
        mentioned = [c for c in table_columns if re.search(rf"\b{re.escape(c)}\b", expression)]
        columns = ", ".join(
            quote_identifier(c) for c in _shown_columns(mentioned, table_columns, key_columns)
        )
        return f"SELECT {columns} FROM {view} AS _t WHERE ({expression}){where} LIMIT {limit}"
    if check_type == "duplicate":
        keys = [column] if column else [str(c) for c in body.get("columns", [])]
        if not keys:
            return None
        grouped = ", ".join(quote_identifier(c) for c in keys)
        return (
            f"SELECT {grouped}, count(*) AS copies FROM {view} AS _t WHERE true{where} "
            f"GROUP BY {grouped} HAVING count(*) > 1 ORDER BY copies DESC LIMIT {limit}"
        )
    if column is None:
        return None
    quoted = f"_t.{quote_identifier(column)}"
    condition: str | None
    if check_type == "missing":
        condition = _missing_condition(quoted, body)
    elif check_type == "invalid":
        condition = _invalid_condition(quoted, body)
    else:
        condition = None
    if condition is None:
        return None
    columns = ", ".join(
        f"_t.{quote_identifier(c)}" for c in _shown_columns([column], table_columns, key_columns)
    )
    return f"SELECT {columns} FROM {view} AS _t WHERE ({condition}){where} LIMIT {limit}"


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def read_failed_rows(con: duckdb.DuckDBPyConnection, sql: str) -> FailedRows | None:
    """Run a sample query; None (with a warning logged) if DuckDB cannot run it."""
    try:
        cursor = con.execute(sql)
        rows = cursor.fetchall()
    except duckdb.Error as exc:
        logger.warning("could not read failed-row samples: %s", exc)
        return None
    columns = tuple(d[0] for d in cursor.description or ())
    return FailedRows(columns, tuple(tuple(_text(v) for v in row) for row in rows))
