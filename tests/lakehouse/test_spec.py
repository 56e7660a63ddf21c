"""Source specs and models: what they declare, what follows, and bad ones stopped with file, key and fix."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from lakehouse.registry import load_registry
from lakehouse.spec import SpecError, load_source
from tests.declared import REGISTRY, TABLES

GOOD = """
name: shop
landing: {format: jsonl, null_values: ["", NA]}
tables:
  customers:
    kind: reference
    key: [customer_id]
    columns:
      customer_id: {type: bigint, not_null: true}
      name: string
      tier: {type: string, accepted_values: [gold, silver]}
  orders:
    kind: fact
    key: [order_id]
    partition: batch_day
    columns:
      order_id: {type: bigint, not_null: true}
      customer_id: bigint
      amount: {type: 'decimal(10,2)', range: {min: 0}}
      placed_at: timestamptz
    references:
      - {columns: [customer_id], table: customers, on_orphan: warn}
"""


def write_source(root: Path, text: str, name: str = "shop", models: str | None = None) -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "source.yml").write_text(textwrap.dedent(text).lstrip())
    if models is not None:
        (folder / "models.py").write_text(textwrap.dedent(models).lstrip())
    return folder


def problems(root: Path) -> str:
    with pytest.raises(SpecError) as caught:
        load_registry(root)
    return str(caught.value)


def test_a_good_spec_loads_with_its_defaults(tmp_path: Path) -> None:
    source = load_source(write_source(tmp_path, GOOD))
    assert list(source.tables) == ["customers", "orders"]  # parents first
    orders = source.tables["orders"]
    assert orders.partition == "batch_day" and source.tables["customers"].partition == "none"
    assert orders.references[0].key == ("customer_id",)  # the parent's key by default
    assert orders.column("amount").type.scale == 2
    assert source.landing.null_values == ("", "NA")


def test_tpch_declares_every_table_once_in_load_order() -> None:
    assert list(TABLES) == [
        "region",
        "nation",
        "part",
        "supplier",
        "partsupp",
        "customer",
        "orders",
        "lineitem",
    ]
    assert [r.label for r in TABLES["lineitem"].references][-1] == "l_partkey+l_suppkey"
    assert REGISTRY.upstream("silver.lineitem") == [
        "bronze.lineitem",
        "silver.orders",
        "silver.part",
        "silver.supplier",
        "silver.partsupp",
    ]
    assert REGISTRY.upstream("gold.dim_customer") == [
        "bronze.customer",
        "silver.customer",
        "silver.nation",
        "silver.region",
    ]
    built = {m.name for m in REGISTRY.models_for([TABLES["customer"]])}
    assert built == {"dim_customer"}
    assert [m.name for m in REGISTRY.models_for([TABLES["orders"]])] == [
        "dim_date",
        "fct_sales",
        "daily_revenue",
        "pricing_summary",
    ]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("landing: {format: jsonl", "landing: {encoding: latin-1, format: jsonl"),
            r"landing.encoding: Value error, files are read as UTF-8 only, not latin-1",
        ),
        (
            ("placed_at: timestamptz", "placed_at: datetime"),
            r"tables.orders.columns.placed_at.type: unknown type 'datetime' \(use one of bigint",
        ),
        (
            ("key: [order_id]", "key: [order_no]"),
            r"tables.orders.key: key column 'order_no' is not a column of orders \(declare it",
        ),
        (
            ("table: customers, on_orphan", "table: clients, on_orphan"),
            r"tables.orders.references.0.table: no table 'clients' in this source \(use one of customers",
        ),
        (
            ("amount: {type: 'decimal(10,2)', range: {min: 0}}", "amount: {type: string, range: {min: 0}}"),
            r"tables.orders.columns.amount.range: a range does not fit type string",
        ),
        (
            ("tier: {type: string, accepted_values: [gold, silver]}", "tier: {type: bigint, pattern: '^x'}"),
            r"tables.customers.columns.tier.pattern: a pattern rule does not fit type bigint \(declare",
        ),
        (
            ("partition: batch_day", "partitoin: batch_day"),
            r"tables.orders.partitoin: Extra inputs are not permitted \(remove it or check its spelling",
        ),
        (
            ("kind: fact", "kind: event"),
            r"tables.orders.kind: Input should be 'fact' or 'reference' \(use one of the values listed\)",
        ),
    ],
    ids=[
        "encoding",
        "unknown type",
        "key column",
        "unknown reference",
        "range on string",
        "pattern on int",
        "typo",
        "kind",
    ],
)
def test_a_bad_spec_names_its_file_key_and_fix(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    old, new = change
    assert old in GOOD
    write_source(tmp_path, GOOD.replace(old, new))
    message = problems(tmp_path)
    assert str(tmp_path / "shop" / "source.yml") in message
    assert re.search(expected, message), message


def test_a_cycle_among_foreign_keys_is_refused(tmp_path: Path) -> None:
    cyclic = GOOD.replace(
        "      tier: {type: string, accepted_values: [gold, silver]}",
        "      tier: {type: string, accepted_values: [gold, silver]}\n      last_order: bigint\n"
        "    references:\n      - {columns: [last_order], table: orders}",
    )
    assert "foreign keys form a cycle: customers -> orders -> customers" in problems(
        write_source(tmp_path, cyclic).parent
    )


def test_two_sources_with_one_table_name_collide_unless_renamed(tmp_path: Path) -> None:
    write_source(tmp_path, GOOD)
    write_source(tmp_path, GOOD.replace("name: shop", "name: store"), name="store")
    message = problems(tmp_path)
    assert "silver.orders is also shop.orders's (give one of them another name under names.silver)" in message
    renamed = (
        GOOD.replace("name: shop", "name: store")
        .replace(
            "    kind: fact\n",
            "    kind: fact\n    names: {bronze: s_orders, silver: s_orders, quarantine: s_orders}\n",
        )
        .replace(
            "    kind: reference\n",
            "    kind: reference\n    names: {bronze: s_cust, silver: s_cust, quarantine: s_cust}\n",
        )
    )
    write_source(tmp_path, renamed, name="store")
    registry = load_registry(tmp_path)
    assert registry.table("silver.s_orders").source == "store"


MODELS = """
from lakehouse.models import batches, merge, model, replace


@model("spend", inputs={"orders": batches("silver.orders")}, materialization=replace(),
       columns={"customer_id": "bigint", "amount": "decimal(18,2)"})
def spend(orders):
    return orders
"""


def test_models_are_checked_with_the_sources(tmp_path: Path) -> None:
    write_source(tmp_path, GOOD, models=MODELS)
    registry = load_registry(tmp_path)
    assert list(registry.models) == ["gold.spend"]
    assert registry.upstream("gold.spend") == ["silver.orders"]

    write_source(tmp_path, GOOD, models=MODELS.replace('batches("silver.orders")', 'batches("silver.order")'))
    assert "model spend: input orders reads unknown table 'silver.order'" in problems(tmp_path)

    looped = (
        MODELS
        + """

@model("again", inputs={"spend": "gold.spend"}, materialization=merge("customer_id"),
       columns={"customer_id": "bigint"})
def again(spend):
    return spend
"""
    )
    looped = looped.replace(
        'inputs={"orders": batches("silver.orders")}', 'inputs={"orders": batches("gold.again")}'
    )
    write_source(tmp_path, GOOD, models=looped)
    assert "models form a cycle: gold.spend -> gold.again -> gold.spend" in problems(tmp_path)

    write_source(tmp_path, GOOD, models=MODELS.replace("def spend(orders)", "def spend(rows)"))
    assert "do not match the function's parameters" in problems(tmp_path)

    write_source(tmp_path, GOOD, models="import nowhere\n")
    assert "models.py: importing it raised ModuleNotFoundError" in problems(tmp_path)
