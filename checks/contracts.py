"""Soda contracts derived from the declarations, plus the checks a source adds by hand.

Every gated table's contract is built from what its source spec (bronze, silver) or model (gold)
declares, so a row rule and its check cannot disagree:

- bronze: schema, row count, every landed row loaded once, freshness of the load;
- silver: schema (with precision and scale), row count, freshness, the share of the batch sent to
  quarantine (``max_quarantine_share``), key uniqueness, and per column the declared rules:
  ``not_null`` → missing, ``accepted_values`` → valid values, numeric ``range`` → valid min/max,
  date and timestamp ranges → a failed-rows expression, ``pattern`` → valid format, ``length`` →
  valid lengths; each foreign key → a reference check (at ``warn`` level when its policy keeps
  orphans). Rows breaking these are quarantined before the write, so on silver they pass by
  construction: what fails a silver gate is the batch as a whole (the quarantine share, an empty
  batch, a stale load, an orphan share in a reference);
- gold: schema, row count, the materialization's key unique and never missing.

A source's ``checks/<layer>/<table>.yml`` (a contract fragment without ``dataset``) adds checks:
its top-level ``checks`` are appended, its ``columns`` add their checks to the derived columns,
its ``variables`` add or override variables. A check the derivation already makes (same type and
qualifier) is kept once. :func:`write_contracts` writes every contract as a file, which the gate
and the stock ``soda contract verify`` CLI both read.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml

from checks.errors import ContractError
from checks.views import DATA_SOURCE
from lakehouse.registry import Model, Registry
from lakehouse.spec import NUMERIC, Column, ColumnType, SourceTable
from lakehouse.tables import (
    BATCH_DATE,
    BRONZE,
    ERROR,
    GOLD,
    LOADED_AT,
    QUARANTINE,
    ROW_NUMBER,
    RUN_ID,
    SILVER,
    SOURCE_FILE,
    VALID_FROM,
)

EXTRA_CHECKS_DIR = "checks"
_VARIABLE = re.compile(r"'(\$\{var\.[a-z_]+\})'")
DEFAULT_MAX_QUARANTINE_SHARE = 0.05
_FRESHNESS = {
    "name": "Batch loaded less than 24 hours ago",
    "column": LOADED_AT,
    "threshold": {"unit": "hour", "must_be_less_than": 24},
}
_LOAD_META = [(BATCH_DATE, "date"), (SOURCE_FILE, "varchar"), (ROW_NUMBER, "bigint"), (RUN_ID, "varchar")]
_SODA_TYPES = {
    "bigint": "bigint",
    "int": "integer",
    "double": "double",
    "boolean": "boolean",
    "date": "date",
    "timestamp": "timestamp",
    "timestamptz": "timestamp_tz",
    "string": "varchar",
}


def _column_type(kind: ColumnType) -> dict[str, Any]:
    if kind.kind == "decimal":
        return {"data_type": "decimal", "numeric_precision": kind.precision, "numeric_scale": kind.scale}
    return {"data_type": _SODA_TYPES[kind.kind]}


def _dataset(identifier: str) -> str:
    return f"{DATA_SOURCE}/{identifier.replace('.', '/')}"


def _meta_columns(columns: list[tuple[str, str]]) -> list[dict[str, Any]]:
    return [{"name": n, "data_type": t, "checks": [{"missing": None}]} for n, t in columns]


def _literal(value: object) -> str:
    if isinstance(value, datetime):
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    return repr(value)


def _range_text(col: Column) -> str:
    low, high = col.rules.min, col.rules.max
    if low is not None and high is not None:
        return f"is between {low} and {high}"
    return f"is at least {low}" if low is not None else f"is at most {high}"


def _silver_column(spec: SourceTable, col: Column) -> dict[str, Any]:
    checks: list[dict[str, Any]] = []
    rules = col.rules
    if rules.not_null or col.name in spec.key:
        checks.append({"missing": None})
    if spec.key == (col.name,):
        checks.append({"duplicate": None})
    if rules.accepted_values is not None:
        shown = ", ".join(str(v) for v in rules.accepted_values)
        checks.append(
            {
                "invalid": {
                    "name": f"{col.name} is one of {shown}",
                    "valid_values": list(rules.accepted_values),
                }
            }
        )
    if col.kind in NUMERIC and (rules.min is not None or rules.max is not None):
        bounds = {k: v for k, v in (("valid_min", rules.min), ("valid_max", rules.max)) if v is not None}
        checks.append({"invalid": {"name": f"{col.name} {_range_text(col)}", "qualifier": "range", **bounds}})
    if rules.pattern is not None:
        checks.append(
            {
                "invalid": {
                    "name": f"{col.name} matches {rules.pattern}",
                    "qualifier": "pattern",
                    "valid_format": {"name": rules.pattern, "regex": rules.pattern},
                }
            }
        )
    if rules.min_length is not None or rules.max_length is not None:
        lengths = {
            k: v
            for k, v in (("valid_min_length", rules.min_length), ("valid_max_length", rules.max_length))
            if v is not None
        }
        checks.append({"invalid": {"name": f"{col.name} length", "qualifier": "length", **lengths}})
    for reference in spec.references:
        if reference.columns != (col.name,):
            continue
        parent = f"{SILVER}.{reference.table}"
        body: dict[str, Any] = {
            "name": f"{col.name} exists in {parent}",
            "qualifier": "reference",
            "valid_reference_data": {"dataset": _dataset(parent), "column": reference.key[0]},
        }
        if reference.on_orphan == "warn":
            body["threshold"] = {"must_be": 0, "level": "warn"}
        checks.append({"invalid": body})
    return {"name": col.name, **_column_type(col.type), **({"checks": checks} if checks else {})}


def _silver(registry: Registry, spec: SourceTable) -> dict[str, Any]:
    silver, quarantine = spec.identifier(SILVER), spec.identifier(QUARANTINE)
    checks: list[dict[str, Any]] = [{"schema": None}, {"row_count": None}]
    if len(spec.key) > 1:
        checks.append(
            {"duplicate": {"name": f"({', '.join(spec.key)}) is unique", "columns": list(spec.key)}}
        )
    checks.append({"freshness": dict(_FRESHNESS)})
    share = (
        "SELECT coalesce(q.n / nullif(q.n + s.n, 0), 0)\n"
        f"FROM (SELECT count(*)::DOUBLE AS n FROM {quarantine}) AS q,\n"
        f"     (SELECT count(*)::DOUBLE AS n FROM {silver}) AS s\n"
    )
    checks.append(
        {
            "metric": {
                "name": "Share of the batch sent to quarantine",
                "query": share,
                "threshold": {"must_be_less_than_or_equal": "${var.max_quarantine_share}"},
            }
        }
    )
    for col in spec.columns:
        if col.kind in ("date", "timestamp", "timestamptz") and (
            col.rules.min is not None or col.rules.max is not None
        ):
            outside = [
                f"{col.name} {op} {_literal(v)}"
                for op, v in (("<", col.rules.min), (">", col.rules.max))
                if v is not None
            ]
            checks.append(
                {
                    "failed_rows": {
                        "name": f"{col.name} {_range_text(col)}",
                        "qualifier": f"range_{col.name}",
                        "expression": " OR ".join(outside),
                    }
                }
            )
    source = registry.sources[spec.source]
    for reference in spec.references:
        if len(reference.columns) == 1:
            continue
        parent = source.tables[reference.table].identifier(SILVER)
        on = " AND ".join(f"p.{k} = c.{c}" for c, k in zip(reference.columns, reference.key, strict=True))
        body: dict[str, Any] = {
            "name": f"({', '.join(reference.columns)}) exists in {parent}",
            "qualifier": f"reference_{'_'.join(reference.columns)}",
            "query": f"SELECT {', '.join(f'c.{c}' for c in dict.fromkeys([*spec.key, *reference.columns]))}\n"
            f"FROM {silver} AS c\n"
            f"ANTI JOIN {parent} AS p ON {on}\n",
        }
        if reference.on_orphan == "warn":
            body["threshold"] = {"must_be": 0, "level": "warn"}
        checks.append({"failed_rows": body})
    columns = [_silver_column(spec, c) for c in spec.columns]
    columns += _meta_columns([*_LOAD_META, (LOADED_AT, "timestamp_tz")])
    return {
        "dataset": _dataset(silver),
        "variables": {"max_quarantine_share": {"default": DEFAULT_MAX_QUARANTINE_SHARE}},
        "checks": checks,
        "columns": columns,
    }


def _bronze(spec: SourceTable) -> dict[str, Any]:
    columns: list[dict[str, Any]] = [{"name": c.name, "data_type": "varchar"} for c in spec.columns]
    columns += _meta_columns([*_LOAD_META, (LOADED_AT, "timestamp_tz")])
    columns.append({"name": ERROR, "data_type": "varchar"})
    checks = [
        {"schema": None},
        {"row_count": None},
        {"duplicate": {"name": "Every landed row is loaded once", "columns": [SOURCE_FILE, ROW_NUMBER]}},
        {"freshness": dict(_FRESHNESS)},
    ]
    return {"dataset": _dataset(spec.identifier(BRONZE)), "checks": checks, "columns": columns}


def _gold(model: Model) -> dict[str, Any]:
    materialization = model.materialization
    key = list(materialization.key) + ([VALID_FROM] if materialization.kind == "scd2" else [])
    checks: list[dict[str, Any]] = [{"schema": None}, {"row_count": None}]
    if len(key) > 1:
        checks.append({"duplicate": {"name": f"({', '.join(key)}) is unique", "columns": key}})
    unique = {key[0]} if len(key) == 1 else set()
    if materialization.surrogate_key:
        unique.add(materialization.surrogate_key)
    required = set(key) | unique
    columns = []
    for name, kind in model.columns:
        col_checks: list[dict[str, Any]] = []
        if name in required:
            col_checks.append({"missing": None})
        if name in unique:
            col_checks.append({"duplicate": None})
        columns.append({"name": name, **_column_type(kind), **({"checks": col_checks} if col_checks else {})})
    if materialization.kind == "scd2":
        columns += [
            {"name": "valid_from", "data_type": "date", "checks": [{"missing": None}]},
            {"name": "valid_to", "data_type": "date"},
            {"name": "is_current", "data_type": "boolean", "checks": [{"missing": None}]},
        ]
    columns += _meta_columns([(BATCH_DATE, "date"), (RUN_ID, "varchar")])
    return {"dataset": _dataset(model.identifier), "checks": checks, "columns": columns}


def _identity(check: object) -> tuple[str, Any]:
    if isinstance(check, dict) and len(check) == 1:
        kind, body = next(iter(check.items()))
        return str(kind), body.get("qualifier") if isinstance(body, dict) else None
    return repr(check), None


def _add_checks(into: list[Any], extra: list[Any]) -> None:
    seen = {_identity(c) for c in into}
    for check in extra:
        if _identity(check) not in seen:
            into.append(check)
            seen.add(_identity(check))


def merge_extra(contract: dict[str, Any], extra: Mapping[str, Any], file: Path) -> dict[str, Any]:
    """``contract`` with the checks of the fragment ``extra`` (read from ``file``) added (see the module).

    Raises:
        ContractError: naming ``file``, if the fragment names a dataset or a column the table lacks.

    """
    if "dataset" in extra:
        raise ContractError(f"{file}: dataset is derived from the declarations (remove it)")
    out = {
        **contract,
        "checks": list(contract.get("checks", [])),
        "columns": [dict(c) for c in contract["columns"]],
    }
    if "variables" in extra:
        out["variables"] = {**contract.get("variables", {}), **extra["variables"]}
    _add_checks(out["checks"], list(extra.get("checks") or []))
    by_name = {c["name"]: c for c in out["columns"]}
    for column in extra.get("columns") or []:
        name = column.get("name")
        if name not in by_name:
            raise ContractError(f"{file}: column {name!r} is not a column of the table (fix the name)")
        target = by_name[name]
        target["checks"] = list(target.get("checks", []))
        _add_checks(target["checks"], list(column.get("checks") or []))
    for key, value in extra.items():
        if key not in ("checks", "columns", "variables"):
            out.setdefault(key, value)
    return out


def extra_checks_file(registry: Registry, identifier: str) -> Path:
    """The file of extra checks of ``identifier`` in its source's folder (it may not exist).

    Raises:
        KeyError: if no declared table or model has that identifier.

    """
    layer, _, name = identifier.partition(".")
    source = registry.model(identifier).source if layer == GOLD else registry.table(identifier).source
    return registry.sources[source].folder / EXTRA_CHECKS_DIR / layer / f"{name}.yml"


def contract(registry: Registry, identifier: str) -> dict[str, Any]:
    """The contract of the gated table ``identifier`` (bronze, silver or gold), extra checks merged.

    Raises:
        KeyError: if no declared table or model has that identifier.
        ContractError: if the source's extra checks cannot be merged (naming their file).

    """
    layer = identifier.partition(".")[0]
    if layer == GOLD:
        derived = _gold(registry.model(identifier))
    else:
        spec = registry.table(identifier)
        derived = _bronze(spec) if layer == BRONZE else _silver(registry, spec)
    file = extra_checks_file(registry, identifier)
    if not file.is_file():
        return derived
    try:
        extra = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ContractError(f"{file}: not valid YAML: {exc}") from exc
    if not isinstance(extra, dict):
        raise ContractError(f"{file}: not a YAML mapping")
    return merge_extra(derived, extra, file)


def gated_tables(registry: Registry) -> list[str]:
    """Every table with a contract: bronze and silver of each landed table, then every gold model."""
    landed = registry.landed()
    return (
        [t.identifier(BRONZE) for t in landed]
        + [t.identifier(SILVER) for t in landed]
        + list(registry.models)
    )


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (queries) as literal blocks."""


def _string(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|" if "\n" in data else None)


_Dumper.add_representer(str, _string)


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    Path(tmp).replace(path)


def write_contracts(registry: Registry, out_dir: Path) -> dict[str, Path]:
    """Write every gated table's contract as ``out_dir/<namespace>/<table>.yml``; returns them by table.

    A file is replaced atomically and only when its content changed, so concurrent runs agree.

    Raises:
        ContractError: if a source's extra checks cannot be merged.
        OSError: if the files cannot be written.

    """
    out = {}
    for identifier in gated_tables(registry):
        namespace, _, name = identifier.partition(".")
        path = out_dir / namespace / f"{name}.yml"
        header = (
            f"# {identifier}: derived from the declarations by checks.contracts (do not edit: regenerated)\n"
        )
        body = yaml.dump(
            contract(registry, identifier), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110
        )
        # Soda substitutes variables in the text: a quoted one would stay a string, not a number
        body = _VARIABLE.sub(r"\1", body)
        _atomic_write(path, header + body)
        out[identifier] = path
    return out
