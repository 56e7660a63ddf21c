from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.transforms import MonthTransform
from pyiceberg.types import (
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    NestedField,
    StringType,
)

from lakehouse.errors import SchemaEvolutionError
from lakehouse.schema import (
    SchemaChange,
    drop_column,
    evolve,
    parse_type,
    plan_evolution,
    rename_column,
    set_column_type,
)
from lakehouse.tables import PROP_PROMOTED, PROP_RUN_ID
from tests.declared import TABLES

SCHEMA = Schema(
    NestedField(1, "o_orderkey", LongType(), required=False),
    NestedField(2, "o_qty", IntegerType(), required=False),
    NestedField(3, "o_ratio", FloatType(), required=False),
    NestedField(4, "o_price", DecimalType(12, 2), required=False),
    NestedField(5, "_batch_date", DateType(), required=False),
)


def fields(*extra: NestedField, **types: object) -> Schema:
    out = []
    for f in SCHEMA.fields:
        kind = types.get(f.name, f.field_type)
        if kind is not None:
            out.append(NestedField(f.field_id, f.name, kind, required=False))  # type: ignore[arg-type]
    return Schema(*out, *extra)


@pytest.fixture
def table(tmp_path: Path) -> Table:
    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db", warehouse=f"file://{tmp_path}/wh")
    catalog.create_namespace("silver")
    spec = PartitionSpec(PartitionField(5, 1000, MonthTransform(), "batch_month"))
    table = catalog.create_table("silver.orders", SCHEMA, partition_spec=spec)
    data = pa.table(
        {
            "o_orderkey": pa.array([1, 2, 3], pa.int64()),
            "o_qty": pa.array([10, 20, 30], pa.int32()),
            "o_ratio": pa.array([0.5, 1.5, 2.5], pa.float32()),
            "o_price": pa.array([Decimal("1.10"), Decimal("2.20"), Decimal("3.30")], pa.decimal128(12, 2)),
            "_batch_date": pa.array([date(2024, 1, 1)] * 3, pa.date32()),
        }
    )
    table.append(data, snapshot_properties={PROP_PROMOTED: "2024-01-01"})
    return table


def test_additive_changes_are_applied(table: Table) -> None:
    target = fields(
        NestedField(10, "o_comment", StringType(), required=False),
        o_qty=LongType(),
        o_ratio=DoubleType(),
        o_price=DecimalType(15, 2),
    )

    changes = evolve(table, target)

    assert {(c.kind, c.column) for c in changes} == {
        ("add", "o_comment"),
        ("widen", "o_qty"),
        ("widen", "o_ratio"),
        ("widen", "o_price"),
    }
    schema = table.schema()
    assert schema.find_field("o_qty").field_type == LongType()
    assert schema.find_field("o_price").field_type == DecimalType(15, 2)
    assert table.scan().to_arrow().column("o_comment").null_count == 3  # old rows read as null
    assert table.scan().to_arrow().column("o_qty").to_pylist() == [10, 20, 30]
    assert evolve(table, target) == []  # idempotent


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (fields(o_qty=None), r"'o_qty' is missing from the target.*--drop o_qty"),
        (
            fields(o_orderkey=IntegerType()),
            r"'o_orderkey' changes type long -> int.*--set-type o_orderkey=int",
        ),
        (fields(o_price=DecimalType(10, 2)), r"'o_price' changes type decimal\(12, 2\) -> decimal\(10, 2\)"),
        (fields(o_qty=StringType()), r"'o_qty' changes type int -> string"),
        (fields(NestedField(10, "o_new", StringType(), required=True)), r"'o_new' is required"),
    ],
)
def test_breaking_changes_raise_and_change_nothing(table: Table, target: Schema, message: str) -> None:
    before = table.schema()
    with pytest.raises(SchemaEvolutionError, match=message) as excinfo:
        evolve(table, target)
    assert "lakehouse migrate silver.orders" in str(excinfo.value) or "required" in message
    assert table.schema() == before


def test_rename_of_a_key_column_is_breaking() -> None:
    current = Schema(NestedField(1, "o_orderkey", LongType(), required=True), identifier_field_ids=[1])
    target = Schema(NestedField(1, "orderkey", LongType(), required=True), identifier_field_ids=[1])
    with pytest.raises(SchemaEvolutionError, match=r"'o_orderkey' \(a key column\).*--rename o_orderkey=NEW"):
        plan_evolution(current, target, table="silver.orders")


def test_required_column_may_become_optional() -> None:
    current = Schema(NestedField(1, "k", LongType(), required=True))
    target = Schema(NestedField(1, "k", LongType(), required=False))
    assert plan_evolution(current, target, table="t") == [
        SchemaChange("make-optional", "k", "required -> optional")
    ]


def test_migrate_rename_and_drop(table: Table) -> None:
    rename_column(table, "o_qty", "o_quantity")
    assert table.scan().to_arrow().column("o_quantity").to_pylist() == [10, 20, 30]
    with pytest.raises(SchemaEvolutionError, match="already has a column 'o_ratio'"):
        rename_column(table, "o_quantity", "o_ratio")
    with pytest.raises(SchemaEvolutionError, match="no column 'nope'"):
        rename_column(table, "nope", "x")

    drop_column(table, "o_ratio")
    assert "o_ratio" not in table.scan().to_arrow().column_names
    with pytest.raises(SchemaEvolutionError, match="partitioned by it"):
        drop_column(table, "_batch_date")


def test_set_type_narrowing_rewrites_the_table(table: Table) -> None:
    rows = set_column_type(table, "o_orderkey", IntegerType(), properties={PROP_RUN_ID: "m1"})

    assert rows == 3
    assert table.schema().find_field("o_orderkey").field_type == IntegerType()
    assert table.schema().fields[0].name == "o_orderkey"  # position kept
    data = table.scan().to_arrow()
    assert data.schema.field("o_orderkey").type == pa.int32()
    assert data.column("o_orderkey").to_pylist() == [1, 2, 3]
    snapshot = table.current_snapshot()
    assert snapshot is not None and snapshot.summary is not None
    assert snapshot.summary[PROP_RUN_ID] == "m1" and snapshot.summary[PROP_PROMOTED] == "2024-01-01"


def test_set_type_widening_is_metadata_only(table: Table) -> None:
    before = table.current_snapshot()
    assert set_column_type(table, "o_qty", LongType()) == 0
    assert table.current_snapshot() == before


def test_set_type_refuses_values_that_do_not_fit(table: Table) -> None:
    set_column_type(table, "o_price", DecimalType(15, 2))  # widen first
    with pytest.raises(SchemaEvolutionError, match="do not fit"):
        set_column_type(table, "o_price", DecimalType(2, 2))  # at most 0.99
    assert table.schema().find_field("o_price").field_type == DecimalType(15, 2)
    assert table.scan().to_arrow().num_rows == 3


def test_parse_type() -> None:
    assert parse_type("decimal(18, 4)") == DecimalType(18, 4)
    assert parse_type(" long ") == LongType()
    with pytest.raises(SchemaEvolutionError, match="unknown type 'bigint'"):
        parse_type("bigint")


def test_ensure_tables_applies_additive_changes_to_existing_tables(tmp_path: Path) -> None:
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.schema import Schema

    from lakehouse.catalog import ensure_tables
    from lakehouse.tables import ERROR, bronze_table

    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db", warehouse=f"file://{tmp_path}/wh")
    catalog.create_namespace("bronze")
    spec = bronze_table(TABLES["region"])
    older = Schema(*[f for f in spec.schema.fields if f.name != ERROR])
    catalog.create_table(spec.identifier, older, partition_spec=spec.partition_spec())
    ensure_tables(catalog, [spec])
    assert catalog.load_table(spec.identifier).schema().column_names[-1] == ERROR
