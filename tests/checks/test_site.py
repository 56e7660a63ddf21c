"""The report site from real gate results: pages, batch ranges, failed rows, sources, retention of runs."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog

from checks.contracts import write_contracts
from checks.gate import audit
from checks.report import write_run
from checks.site import QuarantineStats, build_site, load_runs, quarantine_stats
from lakehouse.catalog import ensure_tables
from lakehouse.registry import Registry
from lakehouse.tables import quarantine_table
from tests.checks.conftest import Lakehouse
from tests.checks.test_gate import NEW_DAY, batch_of, on_branch
from tests.declared import REGISTRY, TABLES

LINEAGE = {"silver.orders": ["bronze.orders", "silver.customer"], "quarantine.orders": ["bronze.orders"]}


def _verify_orders(lakehouse: Lakehouse, reports: Path, run_id: str, day: date, bad: bool) -> None:
    """One real verification of the busiest day's orders landed again as batch ``day`` (on a branch).

    With ``bad``, every price is negative.
    """
    where = f"o_orderdate = DATE '{lakehouse.busy_day}'"
    prices = {"o_totalprice": "-o_totalprice"} if bad else {}
    rows = batch_of(lakehouse, "orders", where, day=day, **prices)
    snapshot = on_branch(lakehouse, "silver.orders", rows)
    audit(
        lakehouse.catalog,
        "silver.orders",
        snapshot,
        [day],
        contract=write_contracts(REGISTRY, reports.parent / "contracts")["silver.orders"],
        reports_dir=reports,
        run_id=run_id,
    )


def assert_self_contained(reports: Path) -> None:
    """No page loads anything (script, stylesheet, network); every link reaches a page and its anchor."""
    for page in reports.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        assert not re.search(r"<script|<link|src=|https?://(?!www\.w3\.org/2000/svg)", html), page
        for href in re.findall(r'href="([^"]+)"', html):
            path, _, anchor = href.partition("#")
            target = (page.parent / path).resolve() if path else page
            assert target.is_file(), (page, href)
            assert not anchor or f'id="{anchor}"' in target.read_text(encoding="utf-8"), (page, href)


def test_pages_show_ranges_failed_rows_and_links(lakehouse: Lakehouse, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    first = NEW_DAY
    _verify_orders(lakehouse, reports, "run-a", first, bad=True)
    _verify_orders(lakehouse, reports, "run-a", first + timedelta(days=1), bad=False)
    write_run(
        {"run_id": "run-a", "flow": "backfill", "status": "failed", "started": "2026-01-01T00:00:00"}, reports
    )
    stats = {
        "quarantine.orders": QuarantineStats(
            {(first, "null_key"): 2, (first + timedelta(days=1), "null_key"): 1}
        )
    }

    index = build_site(reports, REGISTRY, LINEAGE, stats)

    assert index == reports / "index.html"
    table = (reports / "tables" / "silver.orders.html").read_text(encoding="utf-8")
    assert "Latest failed verification" in table and "o_totalprice is at least 0" in table
    assert table.count('class="timeline"') >= 2  # the verdict and every check
    assert '<span class="id">bronze.orders</span>' in table  # no page of its own: not a link
    quarantine = (reports / "quarantine" / "quarantine.orders.html").read_text(encoding="utf-8")
    assert f"{first}..{first + timedelta(days=1)}" in quarantine  # batches as a range
    run = (reports / "runs" / "run-a" / "index.html").read_text(encoding="utf-8")
    assert "backfill" in run and run.count('class="failed"') >= 1
    assert_self_contained(reports)


def test_a_source_page_shows_its_declarations_and_latest_verdicts(
    lakehouse: Lakehouse, tmp_path: Path
) -> None:
    reports = tmp_path / "reports"
    _verify_orders(lakehouse, reports, "run-a", NEW_DAY, bad=True)
    stats = {"quarantine.orders": QuarantineStats({(NEW_DAY, "null_key"): 2})}

    build_site(reports, REGISTRY, LINEAGE, stats)

    tpch = (reports / "sources" / "tpch.html").read_text(encoding="utf-8")
    orders = tpch.split('id="table-orders"')[1].split("<section>")[0]
    assert "fact: a batch replaces" in orders and "batch_month" in orders
    assert "range ≥ 0" in orders and "out_of_range:o_totalprice" in orders  # a rule and its reason
    assert "one of F, O, P" in orders and "not_accepted:o_orderstatus" in orders
    assert 'href="#table-customer"' in orders and "orphan_key:o_custkey" in orders  # its foreign key
    # its layers, linked to their pages, with the latest verdict (the bad batch failed)
    silver = orders.split('href="../tables/silver.orders.html"')[1].split("</tr>")[0]
    assert 'class="failed"' in silver
    assert 'href="../quarantine/quarantine.orders.html"' in orders
    assert '<span class="id">bronze.orders</span>' in orders and "not verified" in orders
    lineitem = tpch.split('id="table-lineitem"')[1].split("<section>")[0]
    assert "orphan_key:l_partkey+l_suppkey" in lineitem and "tpch/checks/silver/lineitem.yml" in lineitem
    customer = tpch.split('id="model-dim_customer"')[1].split("<section>")[0]
    assert "SCD2 by" in customer and "customer_key" in customer and "c_mktsegment" in customer
    assert "every version landed in the processed batches" in customer  # versions("silver.customer")
    assert 'merge by <span class="id">p_partkey</span>' in tpch
    citybike = (reports / "sources" / "citybike.html").read_text(encoding="utf-8")
    assert '"NA"' in citybike and "jsonl" in citybike and "Delimiter" not in citybike
    assert "length 1..80" in citybike and "kept, reported as a warning" in citybike
    assert "orphan_key:start_station_id" not in citybike  # a warned foreign key quarantines nothing
    # the table's page and the overview point at the source; the overview groups by source
    page = (reports / "tables" / "silver.orders.html").read_text(encoding="utf-8")
    assert 'href="../sources/tpch.html#table-orders"' in page
    overview = (reports / "index.html").read_text(encoding="utf-8")
    sections = {re.findall(r'href="sources/(\w+)\.html"', s)[0]: s for s in overview.split("<section>")[2:-1]}
    assert sorted(sections) == ["citybike", "tpch"]
    assert "tables/silver.orders.html" in sections["tpch"] and "quarantine.orders" in sections["tpch"]
    assert "No verification kept" in sections["citybike"]
    assert_self_contained(reports)
    # a source no longer declared loses its page
    tpch_only = Registry(
        [REGISTRY.sources["tpch"]], [m for m in REGISTRY.models.values() if m.source == "tpch"]
    )
    build_site(reports, tpch_only, LINEAGE, stats)
    assert sorted(p.name for p in (reports / "sources").iterdir()) == ["tpch.html"]


def test_many_batch_dates_show_as_a_summary_not_a_list(lakehouse: Lakehouse, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    _verify_orders(lakehouse, reports, "run-a", NEW_DAY, bad=False)
    (gate,) = reports.glob("runs/run-a/gates/*.json")
    data = json.loads(gate.read_text(encoding="utf-8"))
    data["batches"] = [(date(1995, 1, 1) + timedelta(days=2 * n)).isoformat() for n in range(200)]
    gate.write_text(json.dumps(data), encoding="utf-8")
    build_site(reports, REGISTRY, LINEAGE, {})
    page = (reports / "tables" / "silver.orders.html").read_text(encoding="utf-8")
    assert f"1995-01-01..{date(1995, 1, 1) + timedelta(days=398)} (200 dates in 200 ranges)" in page
    assert "1995-01-03" not in page


def test_retention_keeps_the_newest_runs(lakehouse: Lakehouse, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    for n in range(3):
        _verify_orders(lakehouse, reports, f"run-{n}", NEW_DAY + timedelta(days=n), bad=n == 0)
    build_site(reports, REGISTRY, LINEAGE, {}, keep_runs=2)
    assert [r.name for r in load_runs(reports)] == ["run-1", "run-2"]
    assert not (reports / "runs" / "run-0").exists()
    overview = (reports / "index.html").read_text(encoding="utf-8")
    assert "run-1" in overview and "run-0" not in overview
    # the failed verification was in the pruned run: the table's history no longer has it
    assert "Latest failed verification" not in (reports / "tables" / "silver.orders.html").read_text()


def test_quarantine_stats_count_rows_by_batch_and_rule(tmp_path: Path) -> None:
    catalog = SqlCatalog("q", uri=f"sqlite:///{tmp_path}/c.db", warehouse=f"file://{tmp_path}")
    ensure_tables(catalog, [quarantine_table(TABLES["orders"])])
    table = catalog.load_table("quarantine.orders")
    rows = [
        {
            "o_orderkey": str(k),
            "_rule": rule,
            "_batch_date": day,
            "_source_file": "tpch/orders/x.csv",
            "_row_number": k,
        }
        for k, rule, day in [
            (1, "null_key", date(2030, 1, 1)),
            (2, "null_key", date(2030, 1, 1)),
            (3, "unreadable_file: not UTF-8", date(2030, 1, 2)),
        ]
    ]
    table.append(pa.Table.from_pylist(rows, schema=table.schema().as_arrow()))

    stats = quarantine_stats(catalog, ["quarantine.orders", "quarantine.missing"])

    (held,) = stats.values()
    assert held.counts == {(date(2030, 1, 1), "null_key"): 2, (date(2030, 1, 2), "unreadable_file"): 1}
    assert held.columns[:4] == ("_rule", "_batch_date", "_source_file", "_row_number")
    assert {row[0] for row in held.samples} == {"null_key", "unreadable_file: not UTF-8"}
