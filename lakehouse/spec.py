"""Source specs: what a source folder declares, validated once, and everything derived from it.

A source is one folder, ``sources/<name>/``, holding ``source.yml``: its landing format and its
tables (columns and types, key, kind, foreign keys with their policy, row rules, partitioning, the
table's name in each layer); optionally ``models.py`` (its gold models, see
:mod:`lakehouse.models`) and ``checks/<layer>/<table>.yml`` (extra Soda checks merged into the
derived contracts, see :mod:`checks.contracts`). Nothing else states a source's tables, so the
conform rules, quarantine reasons, schemas and contracts derived from a spec cannot disagree.

:func:`load_sources` reads every source folder and validates each spec as a whole: a bad spec
raises :class:`SpecError` listing every problem with the file, the key path and the fix, before
anything is written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lakehouse.errors import ConfigurationError

SPEC_FILE = "source.yml"
LAYERS = ("bronze", "silver", "quarantine")
Kind = Literal["fact", "reference"]
Partition = Literal["batch_day", "batch_month", "none"]
OrphanPolicy = Literal["quarantine", "warn"]

# Column types a spec may declare; decimal takes its precision and scale: decimal(15,2).
BaseType = Literal[
    "bigint", "int", "double", "decimal", "boolean", "date", "timestamp", "timestamptz", "string"
]
SIMPLE_TYPES: tuple[BaseType, ...] = (
    "bigint",
    "int",
    "double",
    "boolean",
    "date",
    "timestamp",
    "timestamptz",
    "string",
)
_DECIMAL = re.compile(r"^decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)$")
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
NUMERIC: frozenset[str] = frozenset({"bigint", "int", "double", "decimal"})
TEMPORAL: frozenset[str] = frozenset({"date", "timestamp", "timestamptz"})
INTEGER: frozenset[str] = frozenset({"bigint", "int"})
DATE_DIRECTIVES = ("%Y", "%m", "%d", "%y")


class SpecError(ConfigurationError):
    """A source spec is invalid; the message lists every problem with its file, key and fix."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("invalid source spec:\n" + "\n".join(f"  - {p}" for p in problems))
        self.problems = tuple(problems)


@dataclass(frozen=True)
class ColumnType:
    """A declared column type: ``kind`` and, for decimals, precision and scale."""

    kind: BaseType
    precision: int = 0
    scale: int = 0

    @classmethod
    def parse(cls, text: str) -> ColumnType:
        """The type named by ``text`` (``bigint``, ``decimal(15,2)``, ...).

        Raises:
            ValueError: if ``text`` names no supported type.

        """
        clean = text.strip().lower()
        if clean in SIMPLE_TYPES:
            return cls(clean)
        match = _DECIMAL.match(clean)
        if match:
            precision, scale = int(match.group(1)), int(match.group(2))
            if not 1 <= precision <= 38 or scale > precision:
                raise ValueError(
                    f"decimal({precision},{scale}): precision must be 1..38 and scale at most it"
                )
            return cls("decimal", precision, scale)
        raise ValueError(f"unknown type {text!r}")

    def __str__(self) -> str:
        return f"decimal({self.precision},{self.scale})" if self.kind == "decimal" else self.kind


@dataclass(frozen=True)
class Rules:
    """Row rules of one column; a row breaking one goes to quarantine with that rule's name."""

    not_null: bool = False
    min: int | float | date | datetime | None = None
    max: int | float | date | datetime | None = None
    accepted_values: tuple[Any, ...] | None = None
    pattern: str | None = None
    min_length: int | None = None
    max_length: int | None = None


@dataclass(frozen=True)
class Column:
    """A declared column: its name, type, parsing format (dates and timestamps) and rules."""

    name: str
    type: ColumnType
    format: str | None = None
    rules: Rules = field(default_factory=Rules)
    description: str | None = None

    @property
    def kind(self) -> BaseType:
        """The type's kind (``decimal`` for any decimal)."""
        return self.type.kind


@dataclass(frozen=True)
class Reference:
    """A foreign key: ``columns`` of this table point at ``key`` of ``table`` (same source)."""

    columns: tuple[str, ...]
    table: str
    key: tuple[str, ...]
    on_orphan: OrphanPolicy = "quarantine"

    @property
    def label(self) -> str:
        """The columns, joined by ``+``: names the quarantine rule ``orphan_key:<label>``."""
        return "+".join(self.columns)


@dataclass(frozen=True)
class SourceTable:
    """A landed table of a source, as its spec declares it.

    Facts are replaced per batch date (their key is unique across batches); reference tables are
    merged by key in silver (the latest batch wins).
    """

    source: str
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    kind: Kind
    references: tuple[Reference, ...] = ()
    partition: Partition = "batch_month"
    names: Mapping[str, str] = field(default_factory=dict, hash=False)
    description: str | None = None

    @property
    def column_names(self) -> list[str]:
        """Column names in declaration order."""
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        """The declared column ``name``.

        Raises:
            KeyError: if the table has no such column.

        """
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.source}.{self.name} has no column {name!r}")

    def table_name(self, layer: str) -> str:
        """The table's name in ``layer`` (its own name unless the spec names it)."""
        return self.names.get(layer, self.name)

    def identifier(self, layer: str) -> str:
        """The catalog identifier of the table in ``layer``: ``<layer>.<name>``."""
        return f"{layer}.{self.table_name(layer)}"


@dataclass(frozen=True)
class Landing:
    """How a source's files are written: format, CSV dialect, encoding and the tokens read as null."""

    format: Literal["csv", "jsonl", "parquet"] = "csv"
    delimiter: str = ","
    quote: str = '"'
    header: bool = True
    encoding: str = "utf-8"
    null_values: tuple[str, ...] = ("",)


@dataclass(frozen=True)
class Source:
    """One source folder: its name, landing format and tables in load order (parents first)."""

    name: str
    folder: Path
    landing: Landing
    tables: Mapping[str, SourceTable]
    description: str | None = None

    @property
    def spec_file(self) -> Path:
        """The folder's ``source.yml``."""
        return self.folder / SPEC_FILE


# --- the YAML as written ----------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Range(_Strict):
    min: int | float | datetime | date | None = None
    max: int | float | datetime | date | None = None


class _Length(_Strict):
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)


class _ColumnYaml(_Strict):
    type: str
    format: str | None = None
    description: str | None = None
    not_null: bool = False
    range: _Range | None = None
    accepted_values: list[str | int | float | bool] | None = None
    pattern: str | None = None
    length: _Length | None = None


class _ReferenceYaml(_Strict):
    columns: list[str] = Field(min_length=1)
    table: str
    key: list[str] | None = None
    on_orphan: OrphanPolicy = "quarantine"


class _TableYaml(_Strict):
    kind: Kind
    description: str | None = None
    key: list[str] = []
    partition: Partition | None = None
    columns: dict[str, _ColumnYaml | str] = Field(min_length=1)
    references: list[_ReferenceYaml] = []
    names: dict[Literal["bronze", "silver", "quarantine"], str] = {}


class _LandingYaml(_Strict):
    format: Literal["csv", "jsonl", "parquet"] = "csv"
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    quote: str = Field(default='"', min_length=1, max_length=1)
    header: bool = True
    encoding: str = "utf-8"
    null_values: list[str] = [""]

    @field_validator("encoding")
    @classmethod
    def _utf8_only(cls, value: str) -> str:
        if value.lower().replace("_", "-") not in ("utf-8", "utf8"):
            raise ValueError(f"files are read as UTF-8 only, not {value}: convert them to UTF-8 when landing")
        return "utf-8"

    @field_validator("header")
    @classmethod
    def _header_required(cls, value: bool) -> bool:
        if not value:
            raise ValueError("files without a header line are not supported yet: land them with one")
        return value


class _SourceYaml(_Strict):
    name: str
    description: str | None = None
    landing: _LandingYaml = _LandingYaml()
    tables: dict[str, _TableYaml] = Field(min_length=1)


# --- loading and validation -------------------------------------------------------------------

_FIXES = {
    "extra_forbidden": "remove it or check its spelling",
    "missing": "add it",
    "literal_error": "use one of the values listed",
}


def _path(loc: Iterable[str | int]) -> str:
    return ".".join(str(p) for p in loc if not str(p).startswith(("function-", "_")))


def _pydantic_problems(file: Path, error: ValidationError) -> list[str]:
    out = []
    for problem in error.errors():
        loc = [p for p in problem["loc"] if p not in ("_ColumnYaml", "str")]
        fix = _FIXES.get(problem["type"], "correct the value")
        out.append(f"{file}: {_path(loc) or '(top)'}: {problem['msg']} ({fix})")
    return sorted(set(out))


def _parse_value(kind: BaseType, value: Any) -> Any:
    """``value`` (from YAML) as a value of a column of ``kind``; raises ValueError if it is none."""
    if kind in ("bigint", "int"):
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError(f"{value!r} is not an integer")
        return int(value)
    if kind in ("double", "decimal"):
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(f"{value!r} is not a number")
        return value if isinstance(value, int) else float(value)
    if kind == "date":
        return (
            value
            if isinstance(value, date) and not isinstance(value, datetime)
            else date.fromisoformat(value)
        )
    if kind in ("timestamp", "timestamptz"):
        return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if kind == "boolean":
        if not isinstance(value, bool):
            raise ValueError(f"{value!r} is not a boolean")
        return value
    return str(value)


class _Problems:
    def __init__(self, file: Path) -> None:
        self.file = file
        self.items: list[str] = []

    def add(self, key: str, message: str, fix: str) -> None:
        self.items.append(f"{self.file}: {key}: {message} ({fix})")


def _column(problems: _Problems, where: str, name: str, raw: _ColumnYaml | str) -> Column | None:
    spec = raw if isinstance(raw, _ColumnYaml) else _ColumnYaml(type=raw)
    if not _NAME.match(name) or name.startswith("_"):
        problems.add(where, f"column name {name!r} is not lower_snake_case", "rename it (no leading '_')")
    try:
        kind = ColumnType.parse(spec.type)
    except ValueError as exc:
        types = ", ".join((*SIMPLE_TYPES, "decimal(p,s)"))
        problems.add(f"{where}.type", str(exc), f"use one of {types}")
        return None
    base = kind.kind
    if spec.format is not None:
        if base != "date":
            problems.add(
                f"{where}.format", f"a format is for dates ({kind} values are read as ISO 8601)", "remove it"
            )
        elif any(t not in DATE_DIRECTIVES for t in re.findall(r"%.", spec.format)):
            problems.add(
                f"{where}.format", f"unsupported directive in {spec.format!r}", "use %Y, %m, %d and %y"
            )
    low = high = None
    if spec.range is not None:
        if base not in NUMERIC | TEMPORAL:
            problems.add(
                f"{where}.range", f"a range does not fit type {kind}", "use accepted_values or pattern"
            )
        else:
            try:
                low = None if spec.range.min is None else _parse_value(base, spec.range.min)
                high = None if spec.range.max is None else _parse_value(base, spec.range.max)
            except (TypeError, ValueError) as exc:
                problems.add(f"{where}.range", f"{exc} for type {kind}", f"give bounds of type {kind}")
            if low is not None and high is not None and low > high:
                problems.add(f"{where}.range", f"min {low} is above max {high}", "swap them")
    accepted = None
    if spec.accepted_values is not None:
        if base not in ("string", "bigint", "int", "boolean"):
            problems.add(f"{where}.accepted_values", f"accepted values do not fit type {kind}", "use a range")
        else:
            try:
                accepted = tuple(_parse_value(base, v) for v in spec.accepted_values)
            except (TypeError, ValueError) as exc:
                problems.add(
                    f"{where}.accepted_values", f"{exc} for type {kind}", f"list values of type {kind}"
                )
    for rule, value in (("pattern", spec.pattern), ("length", spec.length)):
        if value is not None and base != "string":
            problems.add(
                f"{where}.{rule}", f"a {rule} rule does not fit type {kind}", "declare the column string"
            )
    if spec.pattern is not None:
        try:
            re.compile(spec.pattern)
        except re.error as exc:
            problems.add(f"{where}.pattern", f"not a regular expression: {exc}", "fix the pattern")
    rules = Rules(
        not_null=spec.not_null,
        min=low,
        max=high,
        accepted_values=accepted,
        pattern=spec.pattern,
        min_length=spec.length.min if spec.length else None,
        max_length=spec.length.max if spec.length else None,
    )
    return Column(name, kind, spec.format, rules, spec.description)


def _table(problems: _Problems, source: str, name: str, raw: _TableYaml) -> SourceTable:
    where = f"tables.{name}"
    if not _NAME.match(name):
        problems.add(where, f"table name {name!r} is not lower_snake_case", "rename it")
    columns = [
        c for c in (_column(problems, f"{where}.columns.{n}", n, r) for n, r in raw.columns.items()) if c
    ]
    declared = {c.name for c in columns} | set(raw.columns)
    for column in raw.key:
        if column not in declared:
            problems.add(
                f"{where}.key",
                f"key column {column!r} is not a column of {name}",
                "declare it or fix the key",
            )
    if raw.kind == "reference" and not raw.key:
        problems.add(f"{where}.key", "a reference table is merged by its key and needs one", "declare a key")
    references = []
    for i, ref in enumerate(raw.references):
        for column in ref.columns:
            if column not in declared:
                problems.add(
                    f"{where}.references.{i}.columns",
                    f"{column!r} is not a column of {name}",
                    "declare it or fix the reference",
                )
        references.append(Reference(tuple(ref.columns), ref.table, tuple(ref.key or ()), ref.on_orphan))
    partition: Partition = raw.partition or ("batch_month" if raw.kind == "fact" else "none")
    return SourceTable(
        source=source,
        name=name,
        columns=tuple(columns),
        key=tuple(raw.key),
        kind=raw.kind,
        references=tuple(references),
        partition=partition,
        names={str(k): v for k, v in raw.names.items()},
        description=raw.description,
    )


def _resolve_references(problems: _Problems, tables: dict[str, SourceTable]) -> dict[str, SourceTable]:
    """Fill each reference's parent key (default: the parent's key) and check it fits."""
    out = {}
    for name, table in tables.items():
        refs = []
        for i, ref in enumerate(table.references):
            where = f"tables.{name}.references.{i}"
            parent = tables.get(ref.table)
            if parent is None:
                known = ", ".join(tables)
                problems.add(
                    f"{where}.table", f"no table {ref.table!r} in this source", f"use one of {known}"
                )
                continue
            key = ref.key or parent.key
            if not key:
                problems.add(
                    f"{where}.key", f"{ref.table} has no key to point at", "name the parent columns in key"
                )
                continue
            if len(key) != len(ref.columns):
                problems.add(
                    f"{where}.key",
                    f"{len(ref.columns)} columns point at {len(key)} parent columns",
                    "give as many parent columns as columns",
                )
                continue
            parent_columns = {c.name: c for c in parent.columns}
            for mine, theirs in zip(ref.columns, key, strict=True):
                if theirs not in parent_columns:
                    problems.add(
                        f"{where}.key", f"{ref.table} has no column {theirs!r}", "fix the parent column"
                    )
                    continue
                own = next((c for c in table.columns if c.name == mine), None)
                if own is not None and _family(own.type) != _family(parent_columns[theirs].type):
                    problems.add(
                        where,
                        f"{mine} ({own.type}) cannot point at {ref.table}.{theirs} "
                        f"({parent_columns[theirs].type})",
                        "declare both with the same type",
                    )
            refs.append(Reference(ref.columns, ref.table, tuple(key), ref.on_orphan))
        out[name] = SourceTable(**{**table.__dict__, "references": tuple(refs)})
    return out


def _family(kind: ColumnType) -> str:
    return "integer" if kind.kind in INTEGER else str(kind)


def load_order(edges: Mapping[str, Iterable[str]]) -> tuple[list[str], list[str] | None]:
    """Names ordered so each comes after what it depends on (declaration order otherwise), and a cycle.

    ``edges`` maps a name to the names it depends on (unknown names are ignored). Returns the order
    and, when the dependencies hold a cycle, the names on it (the order then leaves them out).
    """
    order: list[str] = []
    state: dict[str, int] = {}  # 1: in progress, 2: done
    cycle: list[str] | None = None

    def visit(name: str, trail: list[str]) -> None:
        nonlocal cycle
        if state.get(name) == 2 or cycle is not None:
            return
        if state.get(name) == 1:
            cycle = [*trail[trail.index(name) :], name]
            return
        state[name] = 1
        for parent in edges.get(name, ()):
            if parent in edges and parent != name:
                visit(parent, [*trail, name])
        state[name] = 2
        order.append(name)

    for name in edges:
        visit(name, [])
    return order, cycle


def load_source(folder: Path) -> Source:
    """The validated spec of the source folder ``folder`` (its ``source.yml``).

    Raises:
        SpecError: listing every problem of the spec (file, key path, fix).

    """
    file = folder / SPEC_FILE
    problems = _Problems(file)
    try:
        document = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpecError([f"{file}: cannot be read: {exc.strerror or exc}"]) from exc
    except yaml.YAMLError as exc:
        raise SpecError([f"{file}: not valid YAML: {exc}"]) from exc
    try:
        raw = _SourceYaml.model_validate(document)
    except ValidationError as exc:
        raise SpecError(_pydantic_problems(file, exc)) from exc
    if raw.name != folder.name:
        problems.add(
            "name", f"{raw.name!r} differs from the folder's name {folder.name!r}", "make them equal"
        )
    tables = {n: _table(problems, raw.name, n, t) for n, t in raw.tables.items()}
    tables = _resolve_references(problems, tables)
    order, cycle = load_order({n: [r.table for r in t.references] for n, t in tables.items()})
    if cycle:
        problems.add(
            "tables", f"foreign keys form a cycle: {' -> '.join(cycle)}", "remove one of the references"
        )
    if problems.items:
        raise SpecError(problems.items)
    landing = Landing(
        format=raw.landing.format,
        delimiter=raw.landing.delimiter,
        quote=raw.landing.quote,
        header=raw.landing.header,
        encoding=raw.landing.encoding,
        null_values=tuple(raw.landing.null_values),
    )
    return Source(raw.name, folder, landing, {n: tables[n] for n in order}, raw.description)


def source_folders(root: Path) -> list[Path]:
    """The source folders under ``root`` (those holding a ``source.yml``), by name."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / SPEC_FILE).is_file())


def check_collisions(sources: Iterable[Source]) -> list[str]:
    """Problems where two tables of the sources would get the same identifier in a layer."""
    seen: dict[str, str] = {}
    problems = []
    for source in sources:
        for table in source.tables.values():
            for layer in LAYERS:
                identifier = table.identifier(layer)
                owner = f"{source.name}.{table.name}"
                if identifier in seen and seen[identifier] != owner:
                    problems.append(
                        f"{source.spec_file}: tables.{table.name}: {identifier} is also {seen[identifier]}'s "
                        f"(give one of them another name under names.{layer})"
                    )
                seen.setdefault(identifier, owner)
    return problems
