"""Schema evolution: additive changes applied automatically, breaking ones only on purpose.

:func:`evolve` brings a table to a target schema when every difference is additive (new optional
columns, type widening, a required column made optional); anything else raises
:class:`SchemaEvolutionError` naming the column and the ``lakehouse migrate`` command that applies
it deliberately through :func:`rename_column`, :func:`drop_column` or :func:`set_column_type`.
Columns are matched by name.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import TypeAdapter, ValidationError
from pyiceberg.exceptions import CommitFailedException, ValidationException
from pyiceberg.io.pyarrow import schema_to_pyarrow
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.typedef import EMPTY_DICT
from pyiceberg.types import (
    DecimalType,
    DoubleType,
    FloatType,
    IcebergType,
    IntegerType,
    LongType,
    NestedField,
)

from lakehouse.errors import CommitConflictError, SchemaEvolutionError
from lakehouse.maintenance import carried_properties, table_name

log = logging.getLogger(__name__)

TYPE_EXAMPLES = "int, long, float, double, decimal(15,2), string, date, timestamptz, boolean"


@dataclass(frozen=True)
class SchemaChange:
    """An additive change :func:`evolve` applies."""

    kind: Literal["add", "widen", "make-optional"]
    column: str
    detail: str


def parse_type(text: str) -> IcebergType:
    """An Iceberg type from its name, e.g. ``long`` or ``decimal(18,4)``.

    Raises:
        SchemaEvolutionError: if ``text`` names no Iceberg type.
    """
    try:
        return TypeAdapter(IcebergType).validate_python(text.strip())
    except ValidationError as exc:
        raise SchemaEvolutionError(f"unknown type {text!r}; types are e.g. {TYPE_EXAMPLES}") from exc


def widens(old: IcebergType, new: IcebergType) -> bool:
    """Whether ``old`` → ``new`` is a type promotion Iceberg reads old files through."""
    if isinstance(old, IntegerType):
        return isinstance(new, LongType)
    if isinstance(old, FloatType):
        return isinstance(new, DoubleType)
    if isinstance(old, DecimalType) and isinstance(new, DecimalType):
        return new.scale == old.scale and new.precision > old.precision
    return False


def _breaking(table: str, column: str, what: str, fix: str, keys: set[str]) -> str:
    key = " (a key column)" if column in keys else ""
    return f"column {column!r}{key} {what}: run `lakehouse migrate {table} {fix}` to apply it on purpose"


def plan_evolution(current: Schema, target: Schema, *, table: str) -> list[SchemaChange]:
    """The additive changes that turn ``current`` into ``target`` (top-level columns, by name).

    Raises:
        SchemaEvolutionError: listing every breaking change (a column dropped or renamed, a type
            narrowed or changed, an optional column made required, a new required column).
    """
    keys = set(current.identifier_field_names())
    existing = {f.name: f for f in current.fields}
    wanted = {f.name: f for f in target.fields}
    changes: list[SchemaChange] = []
    breaking = [
        _breaking(
            table,
            name,
            "is missing from the target (dropped or renamed)",
            f"--drop {name} | --rename {name}=NEW",
            keys,
        )
        for name in existing
        if name not in wanted
    ]
    for name, field in wanted.items():
        old = existing.get(name)
        if old is None:
            if field.required:
                breaking.append(
                    f"new column {name!r} is required: existing rows have no value; add it optional"
                )
            else:
                changes.append(SchemaChange("add", name, str(field.field_type)))
            continue
        if old.field_type != field.field_type:
            if widens(old.field_type, field.field_type):
                changes.append(SchemaChange("widen", name, f"{old.field_type} -> {field.field_type}"))
            else:
                what = f"changes type {old.field_type} -> {field.field_type}"
                breaking.append(_breaking(table, name, what, f"--set-type {name}={field.field_type}", keys))
        if old.required and not field.required:
            changes.append(SchemaChange("make-optional", name, "required -> optional"))
        elif field.required and not old.required:
            breaking.append(f"column {name!r} becomes required: existing rows may hold nulls")
    if breaking:
        raise SchemaEvolutionError(f"{table}: breaking schema change: " + "; ".join(breaking))
    return changes


def evolve(table: Table, target: Schema) -> list[SchemaChange]:
    """Apply the additive changes from ``table``'s schema to ``target`` in one schema update.

    New columns are added optional at the end; nothing is rewritten.

    Raises:
        SchemaEvolutionError: if any change is breaking (nothing is applied).
        CommitConflictError: if the schema changed concurrently.
    """
    name = table_name(table)
    changes = plan_evolution(table.schema(), target, table=name)
    if not changes:
        return []
    wanted = {f.name: f for f in target.fields}
    try:
        with table.update_schema() as update:
            for change in changes:
                field = wanted[change.column]
                if change.kind == "add":
                    update.add_column(change.column, field.field_type, doc=field.doc)
                elif change.kind == "widen":
                    update.update_column(change.column, field_type=field.field_type)
                else:
                    update.update_column(change.column, required=False)
    except CommitFailedException as exc:
        raise CommitConflictError(f"{name}: the schema changed concurrently: {exc}") from exc
    log.info("%s: schema evolved: %s", name, "; ".join(f"{c.kind} {c.column} ({c.detail})" for c in changes))
    return changes


def _field(table: Table, column: str) -> NestedField:
    for field in table.schema().fields:
        if field.name == column:
            return field
    names = ", ".join(f.name for f in table.schema().fields)
    raise SchemaEvolutionError(f"{table_name(table)} has no column {column!r}; columns: {names}")


def _refuse_partition_source(table: Table, field: NestedField, change: str) -> None:
    if any(pf.source_id == field.field_id for spec in table.specs().values() for pf in spec.fields):
        raise SchemaEvolutionError(
            f"{table_name(table)}: cannot {change} {field.name!r}, the table is partitioned by it"
        )


def rename_column(table: Table, old: str, new: str) -> None:
    """Rename a column (metadata only: Iceberg tracks columns by id, data files are untouched).

    Readers that select by name (pipelines, contracts, Spark reading by file list) must follow.

    Raises:
        SchemaEvolutionError: if ``old`` does not exist or ``new`` does.
        CommitConflictError: if the schema changed concurrently.
    """
    _field(table, old)
    if any(f.name == new for f in table.schema().fields):
        raise SchemaEvolutionError(f"{table_name(table)} already has a column {new!r}")
    try:
        with table.update_schema() as update:
            update.rename_column(old, new)
    except CommitFailedException as exc:
        raise CommitConflictError(f"{table_name(table)}: the schema changed concurrently: {exc}") from exc
    log.info("%s: renamed column %s to %s", table_name(table), old, new)


def drop_column(table: Table, column: str) -> None:
    """Drop a column (metadata only; old snapshots still hold it for time travel).

    Raises:
        SchemaEvolutionError: if the column does not exist or partitions the table.
        CommitConflictError: if the schema changed concurrently.
    """
    field = _field(table, column)
    _refuse_partition_source(table, field, "drop")
    try:
        with table.update_schema() as update:
            update.delete_column(column)
    except CommitFailedException as exc:
        raise CommitConflictError(f"{table_name(table)}: the schema changed concurrently: {exc}") from exc
    except ValueError as exc:  # e.g. an identifier field
        raise SchemaEvolutionError(f"{table_name(table)}: cannot drop {column!r}: {exc}") from exc
    log.info("%s: dropped column %s", table_name(table), column)


def set_column_type(
    table: Table, column: str, new_type: IcebergType, *, properties: Mapping[str, str] = EMPTY_DICT
) -> int:
    """Change a column's type; returns the number of rows rewritten (0 for a widening).

    A widening is a metadata change. Any other change rewrites the table in one transaction: the
    column is replaced by a new one of ``new_type`` (same name and position) and every row is
    written again with its value cast, refusing values that do not fit. The rewrite holds the
    table in memory and is stamped with ``properties``.

    Raises:
        SchemaEvolutionError: if the column does not exist, already has the type, partitions the
            table (for a rewrite), is not a primitive, or holds values that do not fit.
        CommitConflictError: if the table changed during the rewrite (nothing changed).
    """
    name = table_name(table)
    field = _field(table, column)
    if field.field_type == new_type:
        raise SchemaEvolutionError(f"{name}: column {column!r} is already {new_type}")
    if not (field.field_type.is_primitive and new_type.is_primitive):
        raise SchemaEvolutionError(f"{name}: only primitive columns can change type ({field.field_type})")
    try:
        if widens(field.field_type, new_type):
            with table.update_schema() as update:
                update.update_column(column, field_type=new_type)
            log.info("%s: widened %s to %s", name, column, new_type)
            return 0
        _refuse_partition_source(table, field, "change the type of")
        return _rewrite_column(table, field, new_type, properties)
    except (CommitFailedException, ValidationException) as exc:
        raise CommitConflictError(f"{name}: the table changed during the migration: {exc}") from exc


def _rewrite_column(
    table: Table, field: NestedField, new_type: IcebergType, properties: Mapping[str, str]
) -> int:
    names = [f.name for f in table.schema().fields]
    position = names.index(field.name)
    snapshot = table.current_snapshot()
    data = table.scan().to_arrow() if snapshot is not None else None
    stamped = {**carried_properties(snapshot), **properties}
    with table.transaction() as tx:
        with tx.update_schema() as update:
            update.delete_column(field.name)
        with tx.update_schema() as update:
            update.add_column(field.name, new_type, doc=field.doc)
            if position == 0:
                update.move_first(field.name)
            else:
                update.move_after(field.name, names[position - 1])
        if data is not None:
            target = schema_to_pyarrow(tx.table_metadata.schema(), include_field_ids=False)
            try:
                column = pc.cast(data.column(field.name), target.field(field.name).type, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise SchemaEvolutionError(
                    f"{table_name(table)}: values of {field.name!r} do not fit {new_type}: {exc}"
                ) from exc
            rewritten = data.set_column(position, field.name, column).cast(target)
            tx.overwrite(rewritten, snapshot_properties=stamped)
    rows = data.num_rows if data is not None else 0
    log.info(
        "%s: changed %s from %s to %s, rewrote %d rows",
        table_name(table),
        field.name,
        field.field_type,
        new_type,
        rows,
    )
    return rows
