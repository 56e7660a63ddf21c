"""The daily and backfill flows end to end on the real Prefect engine and a real SqlCatalog."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from flows.backfill import backfill
from flows.daily import daily
from flows.runner import RunFailed
from lakehouse.publish import promoted
from lakehouse.settings import Settings
from tests.declared import LOAD_ORDER, read_report
from tests.declared import TABLES as SPECS
from tests.flows.conftest import Landing, content, landed, negative_prices

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]
TABLES = [f"{ns}.{t}" for ns in ("bronze", "silver") for t in LOAD_ORDER] + [
    "gold.fct_sales",
    "gold.daily_revenue",
]


def test_daily_promotes_every_batch_then_reruns_change_nothing(clean_landing: Landing, use_home) -> None:  # type: ignore[no-untyped-def]
    catalog = use_home(clean_landing)
    summary = daily()
    assert summary.batches == clean_landing.dates
    for name in LOAD_ORDER:
        expected = landed(clean_landing, name).height
        assert len(catalog.load_table(f"bronze.{name}").scan().to_arrow()) == expected, name
        assert len(catalog.load_table(f"silver.{name}").scan().to_arrow()) == expected, name
    lineitems = landed(clean_landing, "lineitem").height
    assert len(catalog.load_table("gold.fct_sales").scan().to_arrow()) == lineitems
    orders = landed(clean_landing, "orders")
    revenue = catalog.load_table("gold.daily_revenue").scan().to_arrow()
    assert (
        sorted(set(revenue.column("o_orderdate").to_pylist()))
        == clean_landing.dates[: len(set(orders["o_orderdate"]))]
    )
    assert sum(revenue.column("orders").to_pylist()) == orders.height
    assert promoted(catalog.load_table("gold.daily_revenue")) == {d.isoformat() for d in clean_landing.dates}

    # a second run finds nothing pending and commits nothing
    snapshots = {t: catalog.load_table(t).current_snapshot() for t in TABLES}
    assert daily().batches == []
    assert {t: catalog.load_table(t).current_snapshot() for t in TABLES} == snapshots

    # re-running one date replaces exactly that date: same content, no duplicates
    before = {t: content(catalog, t) for t in TABLES}
    daily(date=clean_landing.dates[2])
    for table_id in TABLES:
        assert content(catalog, table_id).equals(before[table_id]), table_id
    snapshot = catalog.load_table("silver.orders").current_snapshot()
    assert snapshot is not None and snapshot.summary is not None
    props = snapshot.summary.additional_properties
    assert props["lakehouse.flow"] == "daily"
    assert props["lakehouse.batches"] == clean_landing.dates[2].isoformat()
    assert props["lakehouse.run-id"]


def test_backfill_in_chunks_equals_daily_runs(clean_landing: Landing, use_home) -> None:  # type: ignore[no-untyped-def]
    daily_catalog = use_home(clean_landing, "daily")
    for day in clean_landing.dates:
        daily(date=day)
    backfill_catalog = use_home(clean_landing, "backfill")
    backfill(start=clean_landing.dates[0], end=clean_landing.dates[-1], chunk_days=2)
    for table_id in TABLES:
        assert content(backfill_catalog, table_id).equals(content(daily_catalog, table_id)), table_id


def test_backfill_rejects_an_empty_range(clean_landing: Landing, use_home) -> None:  # type: ignore[no-untyped-def]
    use_home(clean_landing)
    first = clean_landing.dates[0]
    with pytest.raises(Exception, match="no landed batches"):
        backfill(start=first - timedelta(days=30), end=first - timedelta(days=20))


def test_silver_query_equals_the_same_query_on_landed_files(clean_landing: Landing, use_home) -> None:  # type: ignore[no-untyped-def]
    catalog = use_home(clean_landing)
    daily()
    query = """
        select o_orderpriority, count(*) as orders, sum(l_extendedprice * (1 - l_discount)) as revenue
        from lineitem join orders on l_orderkey = o_orderkey
        where l_returnflag = 'N'
        group by o_orderpriority order by o_orderpriority
    """
    silver = duckdb.connect()
    for name in ("orders", "lineitem"):
        silver.register(name, catalog.load_table(f"silver.{name}").scan().to_arrow())
    files = duckdb.connect()
    for name in ("orders", "lineitem"):
        raw = landed(clean_landing, name)
        casts = [
            pl.col(c.name).cast(pl.Decimal(15, 2)) if c.kind == "decimal" else pl.col(c.name)
            for c in SPECS[name].columns
        ]
        files.register(name, raw.with_columns(casts).to_arrow())
    assert silver.sql(query).fetchall() == files.sql(query).fetchall()
    assert silver.sql(query).fetchall()  # the query returns rows


def test_seeded_anomalies_are_quarantined_and_every_row_is_accounted_for(
    dirty_landing: Landing,
    use_home,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # six days of SF0.01 are ~40 orders: a few anomalies are far above 5%, so allow them here
    monkeypatch.setenv("LAKEHOUSE_QUARANTINE_MAX_SHARE", "0.5")
    catalog = use_home(dirty_landing)
    daily()
    anomalies = read_report(dirty_landing.zone).anomalies
    for name in ("orders", "lineitem", "customer"):
        quarantine = pl.from_arrow(catalog.load_table(f"quarantine.{name}").scan().to_arrow())
        assert isinstance(quarantine, pl.DataFrame)
        got = {
            (row["_batch_date"], row["_source_file"].rsplit("/", 1)[-1], row["_row_number"], row["_rule"])
            for row in quarantine.iter_rows(named=True)
        }
        expected = {(a.batch, a.file, a.row, a.rule) for a in anomalies if a.table == name}
        assert got == expected, name
        if name != "customer":  # facts: every landed row is in silver or in quarantine
            silver = len(catalog.load_table(f"silver.{name}").scan().to_arrow())
            assert silver + quarantine.height == landed(dirty_landing, name).height, name
    assert any(a.table == "orders" for a in anomalies) and any(a.table == "lineitem" for a in anomalies)


def test_a_batch_breaking_its_contract_publishes_nothing_downstream(
    clean_landing: Landing,
    use_home,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    catalog = use_home(clean_landing)
    first, bad_day = clean_landing.dates[0], clean_landing.dates[1]
    daily(date=first)
    # the next day lands with most lineitem prices negative
    catalog = use_home(negative_prices(clean_landing, tmp_path, first, bad_day), "home")
    downstream = ["silver.lineitem", "gold.fct_sales", "gold.daily_revenue"]
    before = {t: catalog.load_table(t).current_snapshot() for t in [*downstream, "quarantine.lineitem"]}
    with pytest.raises(RunFailed, match=r"silver\.lineitem"):
        daily(date=bad_day)
    after = {t: catalog.load_table(t).current_snapshot() for t in before}
    assert after == before
    for table_id in before:
        refs = catalog.load_table(table_id).metadata.refs
        assert list(refs) == ["main"], table_id
    # orders of that day passed their own gate and were published
    assert bad_day.isoformat() in promoted(catalog.load_table("silver.orders"))
    reports = [
        json.loads(p.read_text(encoding="utf-8"))
        for p in Path(Settings().reports_dir).glob("runs/*/gates/silver.lineitem.*.json")
    ]
    assert [r["passed"] for r in reports].count(False) == 1
    report = next(r for r in reports if not r["passed"])
    failed = [c for c in report["checks"] if c["outcome"] == "failed"]
    assert any("quarantine" in c["name"].lower() and c["measured"] > 0.5 for c in failed), failed


def test_backfill_with_concurrent_chunks_equals_a_sequential_one(clean_landing: Landing, use_home) -> None:  # type: ignore[no-untyped-def]
    sequential = use_home(clean_landing, "sequential")
    backfill(start=clean_landing.dates[0], end=clean_landing.dates[-1], chunk_days=2)
    concurrent = use_home(clean_landing, "concurrent")
    backfill(start=clean_landing.dates[0], end=clean_landing.dates[-1], chunk_days=2, concurrency=3)
    for table_id in TABLES:
        assert content(concurrent, table_id).equals(content(sequential, table_id)), table_id


def test_every_snapshot_names_its_task_and_the_input_snapshots_it_read(
    clean_landing: Landing,
    use_home,  # type: ignore[no-untyped-def]
) -> None:
    catalog = use_home(clean_landing)
    daily()
    silver = catalog.load_table("silver.orders").current_snapshot()
    assert silver is not None and silver.summary is not None
    props = silver.summary.additional_properties
    assert props["lakehouse.task"] == "silver.orders"
    inputs = dict(part.split("@") for part in props["lakehouse.inputs"].split(","))
    assert set(inputs) == {"bronze.orders", "silver.customer"}
    assert inputs["bronze.orders"] == str(catalog.load_table("bronze.orders").current_snapshot().snapshot_id)  # type: ignore[union-attr]
    bronze = catalog.load_table("bronze.orders").current_snapshot()
    assert bronze.summary.additional_properties["lakehouse.inputs"] == "tpch.orders"  # type: ignore[union-attr]
