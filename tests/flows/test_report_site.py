"""The report site of real runs: a backfill in chunks with a bad early batch and quarantined rows.

One backfill (three chunks of two days; every line item price of the second day negative, so the
first chunk's ``silver.lineitem`` gate fails) and one daily run feed every test here. Pages are
loaded in headless Chromium. ``REPORT_SCREENSHOTS=DIR`` also saves screenshots there (the README's).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import polars as pl
import pytest
from prefect.client.orchestration import get_client
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

from flows.backfill import backfill
from flows.daily import daily
from flows.runner import RunFailed, lineage
from lakehouse.catalog import open_catalog
from lakehouse.landing import LandingZone
from lakehouse.settings import Settings
from tests.browser import Browser, browser, chromium
from tests.declared import LOAD_ORDER, REGISTRY
from tests.declared import TPCH as TPCH_SOURCE
from tests.flows.conftest import Landing

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

PROBE = """JSON.stringify({
  charts: document.querySelectorAll('svg.chart polyline, svg.chart circle').length,
  timelines: document.querySelectorAll('svg.timeline rect').length,
  links: [...document.querySelectorAll('a[href]')]
    .map(a => new URL(a.getAttribute('href'), document.baseURI).href),
  text: document.body.innerText
})"""


@dataclass(frozen=True)
class Runs:
    """The two runs' reports and what they printed."""

    reports: Path
    landing: Landing
    backfill_console: str
    daily_console: str
    quarantine_rules: frozenset[str]


def bad_second_day(landing: Landing, root: Path) -> Landing:
    """A copy of ``landing`` in which every line item of its second day has a negative price."""
    zone = LandingZone(str(root / "landing"), TPCH_SOURCE)
    bad_day = landing.dates[1]
    for name in LOAD_ORDER:
        for f in landing.zone.files(name, landing.dates):
            data = Path(f.path).read_bytes()
            if name == "lineitem" and f.batch == bad_day:
                frame = pl.read_csv(data, infer_schema=False)
                negative = pl.when(pl.int_range(pl.len()) % 4 != 0).then("-" + pl.col("l_extendedprice"))
                frame = frame.with_columns(
                    negative.otherwise(pl.col("l_extendedprice")).alias("l_extendedprice")
                )
                data = frame.write_csv().encode()
            zone.write(name, f.batch, Path(f.path).name, data)
    return Landing(zone.uri, zone, zone.batches())


@pytest.fixture(scope="module")
def runs(
    dirty_landing: Landing, tmp_path_factory: pytest.TempPathFactory, prefect_harness: None
) -> Iterator[Runs]:
    root = tmp_path_factory.mktemp("site")
    landing = bad_second_day(dirty_landing, root)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LAKEHOUSE_HOME", str(root / "home"))
        env.setenv("LAKEHOUSE_LANDING_URI", landing.uri)
        # two days of SF0.01 are ~20 orders: the seeded anomalies alone are above 5%; the bad day
        # is about half of its chunk
        env.setenv("LAKEHOUSE_QUARANTINE_MAX_SHARE", "0.3")
        first = io.StringIO()
        with contextlib.redirect_stdout(first), pytest.raises(RunFailed, match=r"silver\.lineitem"):
            backfill(start=landing.dates[0], end=landing.dates[-1], chunk_days=2)
        second = io.StringIO()
        with contextlib.redirect_stdout(second):
            daily(date=landing.dates[-1])
        held = open_catalog(Settings()).load_table("quarantine.lineitem").scan().to_arrow()
    rules = frozenset(r.split(": ")[0] for r in held.column("_rule").to_pylist())
    yield Runs(root / "home" / "reports", landing, first.getvalue(), second.getvalue(), rules)


def gates(reports: Path, table: str) -> list[dict[str, object]]:
    files = reports.glob(f"runs/*/gates/{table}.*.json")
    return sorted((json.loads(p.read_text(encoding="utf-8")) for p in files), key=lambda g: str(g["started"]))


def test_a_backfill_keeps_the_early_failure_and_every_chunks_verification(runs: Runs) -> None:
    days = [d.isoformat() for d in runs.landing.dates]
    chunks = [days[0:2], days[2:4], days[4:6]]
    lineitem = gates(runs.reports, "silver.lineitem")
    assert [(g["batches"], g["passed"]) for g in lineitem] == [
        (chunks[0], False),
        (chunks[1], True),
        (chunks[2], True),
        ([days[-1]], True),  # the daily run
    ]
    failed = [c for c in lineitem[0]["checks"] if c["outcome"] == "failed"]  # type: ignore[union-attr]
    assert any("quarantine" in c["name"].lower() and c["measured"] > 0.3 for c in failed), failed
    # every chunk's verification of every table is kept, not the last chunk's alone
    orders = gates(runs.reports, "silver.orders")
    assert [g["batches"] for g in orders] == [*chunks, [days[-1]]]
    counted = [c["measured"] for g in orders[:3] for c in g["checks"] if c["type"] == "row_count"]  # type: ignore[attr-defined]
    assert len(counted) == 3 and all(n > 0 for n in counted)
    # downstream of the failed chunk nothing was verified: fct_sales has the two good chunks
    assert [g["batches"] for g in gates(runs.reports, "gold.fct_sales")][:2] == chunks[1:]


def test_the_console_summary_lists_steps_failures_and_the_report(runs: Runs) -> None:
    lines = runs.backfill_console.splitlines()
    row = next(line for line in lines if " silver.lineitem " in line)
    assert "FAILED 1 of 3" in row and "polars" in row
    orders = next(line for line in lines if " silver.orders " in line)
    assert "passed 3" in orders and re.search(r"│\s+3\s+│", orders)  # three chunks
    assert any(line.startswith("  silver.lineitem ") and "quality gate failed" in line for line in lines)
    assert any(
        line.startswith("  gold.fct_sales ") and "skipped: silver.lineitem failed" in line for line in lines
    )
    report = lines[-1].removeprefix("Report: ")
    assert Path(report) == (runs.reports / "index.html").resolve()
    assert "failed:" not in runs.daily_console and "Report: " in runs.daily_console


def _page(url: str) -> Path:
    return Path(unquote(urlparse(url).path))


def test_every_page_loads_in_chromium_with_charts_and_resolving_links(runs: Runs) -> None:
    if chromium() is None:
        pytest.skip("chromium is not installed (make browser installs Debian's chromium)")
    screenshots = os.environ.get("REPORT_SCREENSHOTS")
    pages = sorted(runs.reports.rglob("*.html"))
    assert {p.relative_to(runs.reports).parts[0] for p in pages} == {
        "index.html",
        "lineage.html",
        "tables",
        "quarantine",
        "runs",
        "sources",
    }
    run_pages = [p for p in pages if p.parts[-3] == "runs"]
    assert len(run_pages) == 2
    visited: dict[Path, dict[str, object]] = {}
    with browser() as tab:
        for page in pages:
            loaded = tab.load(page.as_uri(), PROBE)
            assert loaded.errors == [], (page, loaded.errors)
            visited[page] = json.loads(loaded.probe)
        if screenshots:
            _screenshots(tab, runs.reports, Path(screenshots))
    for page, probe in visited.items():
        for link in probe["links"]:  # type: ignore[attr-defined]
            assert link.startswith("file://"), (page, link)  # nothing from a network
            assert _page(link).is_file(), (page, link)
            anchor = urlparse(link).fragment
            assert not anchor or f'id="{anchor}"' in _page(link).read_text(encoding="utf-8"), (page, link)
    # charts are drawn: every table page has a trend chart with points and a pass/fail timeline
    for page, probe in visited.items():
        if page.parent.name == "tables":
            assert probe["charts"] > 0 and probe["timelines"] > 0, page
    lineitem = visited[runs.reports / "tables" / "silver.lineitem.html"]
    text = str(lineitem["text"])
    days = runs.landing.dates
    assert f"{days[0]}..{days[1]}" in text  # batches as ranges
    assert "Latest failed verification" in text and "l_extendedprice" in text
    quarantine = str(visited[runs.reports / "quarantine" / "quarantine.lineitem.html"]["text"])
    assert "_source_file" in quarantine and "_row_number" in quarantine
    assert runs.quarantine_rules and all(rule in quarantine for rule in runs.quarantine_rules)
    # the source's page: its declarations, and the latest verdicts of its tables (the daily run passed)
    source = str(visited[runs.reports / "sources" / "tpch.html"]["text"])
    assert "range ≥ 0 out_of_range:l_extendedprice" in source and "SCD2 by c_custkey" in source
    assert re.search(r"silver\.lineitem\s+passed", source)
    assert "tables/silver.lineitem.html" in str(visited[runs.reports / "sources" / "tpch.html"]["links"])
    overview = str(visited[runs.reports / "index.html"]["text"])
    assert "Source tpch" in overview and "Source citybike" in overview
    assert "backfill" in overview and "daily" in overview and "FAILED" not in overview.split("Runs")[0]


def _screenshots(tab: Browser, reports: Path, out: Path) -> None:
    run = next(p for p in sorted(reports.glob("runs/*/index.html")) if "backfill" in p.read_text())
    for name, page in (
        ("report-overview.png", reports / "index.html"),
        ("report-table.png", reports / "tables" / "silver.lineitem.html"),
        ("report-quarantine.png", reports / "quarantine" / "quarantine.lineitem.html"),
        ("report-run.png", run),
        ("report-lineage.png", reports / "lineage.html"),
        ("report-source.png", reports / "sources" / "tpch.html"),
    ):
        tab.screenshot(page.as_uri(), out / name, width=1800 if name == "report-lineage.png" else 1280)


def test_the_lineage_page_draws_every_table_and_edge(runs: Runs) -> None:
    graph = lineage(REGISTRY)
    page = (runs.reports / "lineage.html").read_text(encoding="utf-8")
    edges = re.findall(r"<title>([a-z_.]+) → ([a-z_.]+)</title>", page)
    assert sorted(edges) == sorted((up, table) for table, ups in graph.items() for up in ups)
    assert {"silver.orders", "gold.fct_sales", "quarantine.lineitem"} <= set(graph)


def test_steps_materialize_their_tables_as_prefect_assets(runs: Runs) -> None:
    wanted = [f"iceberg://lakehouse/{t}" for t in ("silver/orders", "quarantine/orders", "gold/fct_sales")]
    events = EventFilter(
        event=EventNameFilter(name=["prefect.asset.materialization.succeeded"]),
        resource=EventResourceFilter(id=wanted),
    )
    with get_client(sync_client=True) as client:
        for _ in range(50):  # events reach the server asynchronously
            keys = {e.resource.id: e for e in client.read_events(events, limit=50).events}
            if set(keys) == set(wanted):
                break
            time.sleep(0.2)
    assert set(keys) == set(wanted)
    silver = keys[wanted[0]]
    upstream = {r.id for r in silver.related if r.role == "asset"}
    assert upstream == {"iceberg://lakehouse/bronze/orders", "iceberg://lakehouse/silver/customer"}
    assert silver.payload["rows_out"] > 0 and silver.payload["snapshot_id"]
    fct_upstream = {r.id for r in keys[wanted[2]].related if r.role == "asset"}
    assert "iceberg://lakehouse/silver/lineitem" in fct_upstream
