"""The registry: every declared source and gold model, validated together, and what follows from them.

Built once per run from the sources folder (:func:`load_registry`); the steps, the runner, the
contracts, lineage and the router ask it rather than naming tables. It derives:

- the load order of the landed tables (parents before the tables that reference them);
- the gold build order (a model after the models it reads) and each step's upstream tables, so a
  failure stops exactly what depends on it;
- the landed tables whose batches a model is built for (those its batch-scoped inputs come from);
- every table the pipeline writes, with its schema and partitioning.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lakehouse.models import MODEL_ATTRIBUTE, Input, Materialization, ModelDef, code_hash
from lakehouse.spec import (
    INTEGER,
    LAYERS,
    ColumnType,
    Partition,
    Source,
    SourceTable,
    SpecError,
    check_collisions,
    load_order,
    load_source,
    source_folders,
)
from lakehouse.tables import (
    BATCH_DATE,
    BRONZE,
    GOLD,
    IS_CURRENT,
    NAMESPACES,
    QUARANTINE,
    RUN_ID,
    SILVER,
    VALID_FROM,
    VALID_TO,
    TableDef,
    bronze_table,
    gold_table,
    quarantine_table,
    silver_table,
)

MODELS_FILE = "models.py"
SEED_FILE = "seed.py"
_RESERVED = {BATCH_DATE, RUN_ID, VALID_FROM, VALID_TO, IS_CURRENT}


@dataclass(frozen=True)
class Model:
    """A gold model of a source: its function, inputs, output columns, materialization, code hash."""

    source: str
    name: str
    function: Callable[..., Any]
    inputs: Mapping[str, Input]
    materialization: Materialization
    columns: tuple[tuple[str, ColumnType], ...]
    code: str
    description: str | None = None

    @property
    def identifier(self) -> str:
        """``gold.<name>``."""
        return f"{GOLD}.{self.name}"

    @property
    def definition(self) -> TableDef:
        """The table: merged dimensions are unpartitioned, replaced facts and marts by batch month."""
        partition: Partition = "batch_month" if self.materialization.kind == "replace" else "none"
        return gold_table(self.name, list(self.columns), partition, scd2=self.materialization.kind == "scd2")


class Registry:
    """Every declared source and model, and what is derived from them (see the module)."""

    def __init__(self, sources: Iterable[Source], models: Iterable[Model]) -> None:
        """Index ``sources`` and ``models`` (already validated: see :func:`load_registry`)."""
        self.sources: dict[str, Source] = {s.name: s for s in sources}
        self._tables: dict[str, SourceTable] = {}
        for source in self.sources.values():
            for table in source.tables.values():
                for layer in LAYERS:
                    self._tables[table.identifier(layer)] = table
        self.models: dict[str, Model] = {m.identifier: m for m in models}

    def seeder(self, source: str) -> Any | None:
        """``source``'s demo data generator (its folder's ``seed.py``), or None if it has none.

        The module's ``seed(zone, *, scale, workdir, start, days, anomalies, changes)`` lands demo
        batches into the source's landing zone (``start`` and ``days`` None: its own defaults).

        Raises:
            SpecError: naming the file, if importing it raises.

        """
        path = self.sources[source].folder / SEED_FILE
        return load_module(self.sources[source], path) if path.is_file() else None

    def landed(self, sources: Iterable[str] | None = None) -> list[SourceTable]:
        """The landed tables of ``sources`` (default: all), each source's in load order."""
        names = list(self.sources) if sources is None else list(sources)
        return [t for n in names for t in self.sources[n].tables.values()]

    def table(self, identifier: str) -> SourceTable:
        """The source table behind a bronze, silver or quarantine identifier.

        Raises:
            KeyError: if no declared table has that identifier.

        """
        try:
            return self._tables[identifier]
        except KeyError:
            raise KeyError(f"no declared table {identifier!r}") from None

    def model(self, identifier: str) -> Model:
        """The model of ``gold.<name>``.

        Raises:
            KeyError: if no model has that identifier.

        """
        try:
            return self.models[identifier]
        except KeyError:
            raise KeyError(f"no gold model {identifier!r}") from None

    def definitions(self) -> list[TableDef]:
        """Every table the pipeline writes: bronze, quarantine and silver in load order, then gold."""
        landed = self.landed()
        out = [bronze_table(t) for t in landed]
        out += [quarantine_table(t) for t in landed]
        out += [silver_table(t) for t in landed]
        out += [m.definition for m in self.models.values()]
        return out

    def parents(self, table: SourceTable) -> list[str]:
        """The silver tables ``table``'s foreign keys point at, in declaration order."""
        source = self.sources[table.source]
        return list(dict.fromkeys(source.tables[r.table].identifier(SILVER) for r in table.references))

    def reads(self, model: Model) -> list[str]:
        """The tables ``model`` reads: a versions input reads bronze and silver's parents too."""
        out: list[str] = []
        for item in model.inputs.values():
            if item.scope == "versions":
                table = self.table(item.table)
                out += [table.identifier(BRONZE), item.table, *self.parents(table)]
            else:
                out.append(item.table)
        return list(dict.fromkeys(out))

    def upstream(self, identifier: str) -> list[str]:
        """The tables the step writing ``identifier`` reads (empty for bronze: it reads landed files)."""
        namespace = identifier.partition(".")[0]
        if namespace == BRONZE:
            return []
        if namespace in (SILVER, QUARANTINE):
            table = self.table(identifier)
            return [table.identifier(BRONZE), *self.parents(table)]
        return self.reads(self.model(identifier))

    def drivers(self, model: Model) -> set[SourceTable]:
        """The landed tables whose batches ``model`` is built for: behind its batch-scoped inputs."""
        out: set[SourceTable] = set()
        for item in model.inputs.values():
            if item.scope == "all":
                continue
            if item.table.startswith(f"{GOLD}."):
                out |= self.drivers(self.model(item.table))
            else:
                out.add(self.table(item.table))
        return out

    def models_for(self, landed: Iterable[SourceTable]) -> list[Model]:
        """The models built for batches of the landed tables ``landed``, in build order."""
        names = set(landed)
        return [m for m in self.models.values() if self.drivers(m) & names]

    def targets(self, table: SourceTable) -> list[str]:
        """The tables a batch of ``table`` must reach before that batch counts as promoted."""
        return [table.identifier(SILVER)] + [m.identifier for m in self.models_for([table])]


def load_module(source: Source, path: Path) -> Any:
    """The Python module ``path`` of ``source``'s folder, imported as ``lakehouse_sources.<source>.<stem>``.

    Imported anew on each call (a registry is loaded once per run), so an edited file is read.

    Raises:
        SpecError: naming the file, if importing it raises.

    """
    name = f"lakehouse_sources.{source.name}.{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SpecError([f"{path}: cannot be imported as a Python module"])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise SpecError(
            [f"{path}: importing it raised {type(exc).__name__}: {exc} (fix the module)"]
        ) from exc
    return module


def _models(source: Source, problems: list[str]) -> list[Model]:
    path = source.folder / MODELS_FILE
    if not path.is_file():
        return []
    module = load_module(source, path)
    out = []
    for attribute in vars(module).values():
        declared: ModelDef | None = getattr(attribute, MODEL_ATTRIBUTE, None)
        if declared is None or getattr(attribute, "__module__", None) != module.__name__:
            continue
        where = f"{path}: model {declared.name}"
        columns = []
        for column, text in declared.columns.items():
            try:
                columns.append((column, ColumnType.parse(text)))
            except ValueError as exc:
                problems.append(f"{where}: column {column}: {exc} (use a type of the source spec)")
            if column in _RESERVED:
                problems.append(f"{where}: column {column} is added by the platform (remove it)")
        parameters = set(inspect.signature(attribute).parameters)
        if parameters != set(declared.inputs):
            problems.append(
                f"{where}: inputs {sorted(declared.inputs)} do not match the function's parameters "
                f"{sorted(parameters)} (name one input per parameter)"
            )
        out.append(
            Model(
                source.name,
                declared.name,
                attribute,
                declared.inputs,
                declared.materialization,
                tuple(columns),
                code_hash(attribute),
                declared.description,
            )
        )
    return out


def _check_model(model: Model, registry: Registry, problems: list[str]) -> None:
    where = f"{registry.sources[model.source].folder / MODELS_FILE}: model {model.name}"
    names = {n for n, _ in model.columns}
    materialization = model.materialization
    for column in (*materialization.key, *materialization.tracked):
        if column not in names:
            problems.append(
                f"{where}: {materialization.kind} column {column!r} is not an output column (declare it)"
            )
    if materialization.kind in ("merge", "scd2") and not materialization.key:
        problems.append(f"{where}: a {materialization.kind} model needs a key (give the key columns)")
    if materialization.surrogate_key is not None:
        if materialization.surrogate_key not in names:
            problems.append(
                f"{where}: surrogate key {materialization.surrogate_key!r} is not an output column"
            )
        key_types = [t for n, t in model.columns if n in materialization.key]
        if len(key_types) != 1 or key_types[0].kind not in INTEGER:
            problems.append(f"{where}: a surrogate key needs a single integer key column")
    for parameter, item in model.inputs.items():
        namespace = item.table.partition(".")[0]
        known = item.table in registry.models if namespace == GOLD else item.table in registry._tables
        if namespace not in NAMESPACES or not known:
            problems.append(
                f"{where}: input {parameter} reads unknown table {item.table!r} (declare it or fix the name)"
            )
        elif item.scope == "versions" and (
            namespace != SILVER or registry.table(item.table).kind != "reference"
        ):
            problems.append(f"{where}: input {parameter}: versions() reads a silver reference table")


def load_registry(root: Path) -> Registry:
    """Every source folder under ``root`` and its models, validated together.

    Raises:
        SpecError: listing every problem (file, key, fix): a bad spec or model, two tables with
            one identifier, a model reading an unknown table, a cycle among models, no source.

    """
    folders = {p.name: p for p in source_folders(root)}
    if not folders:
        raise SpecError([f"{root}: no source folder (a folder holding source.yml) (add one: see README)"])
    problems: list[str] = []
    sources = []
    for name in folders:
        try:
            sources.append(load_source(folders[name]))
        except SpecError as exc:
            problems += exc.problems
    problems += check_collisions(sources)
    models: list[Model] = []
    for source in sources:
        try:
            models += _models(source, problems)
        except SpecError as exc:
            problems += exc.problems
    seen: dict[str, str] = {}
    for m in models:
        if m.identifier in seen:
            problems.append(
                f"model {m.identifier} is declared by {seen[m.identifier]} and {m.source} (rename one)"
            )
        seen.setdefault(m.identifier, m.source)
    registry = Registry(sources, models)
    for m in models:
        _check_model(m, registry, problems)
    order, cycle = load_order({m.identifier: [i.table for i in m.inputs.values()] for m in models})
    if cycle:
        problems.append(f"models form a cycle: {' -> '.join(cycle)} (remove one of the inputs)")
    if problems:
        raise SpecError(problems)
    by_id = {m.identifier: m for m in models}
    return Registry(sources, [by_id[i] for i in order])
