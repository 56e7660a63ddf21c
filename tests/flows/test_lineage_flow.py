"""Lineage events and run metrics of real flow runs: Prefect, SqlCatalog, OpenLineage file transport."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from pyiceberg.expressions import AlwaysTrue

from flows.daily import daily
from flows.metrics import metrics_file, record_run, render_markdown
from flows.runner import RunFailed, RunSummary, open_lakehouse, process
from lakehouse.catalog import ensure_tables, open_catalog
from lakehouse.pipeline import Lakehouse, RunInfo, StepResult
from lakehouse.publish import audit_branch, write_audited
from lakehouse.settings import Settings
from lakehouse.tables import bronze_table, quarantine_table, silver_table
from tasks import lineage
from tests.declared import LOAD_ORDER, REGISTRY, TABLES
from tests.flows.conftest import Landing, landed, negative_prices

Events = Callable[[], list[dict[str, Any]]]


@pytest.fixture(autouse=True)
def _no_lineage_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No OpenLineage configuration from the user's environment, working directory or home."""
    for name in [k for k in os.environ if k.startswith("OPENLINEAGE")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))
    lineage.reset()
    yield
    lineage.reset()


@pytest.fixture
def file_lineage(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[[], Events]:
    """Turn OpenLineage on (file transport, one appended file); returns a reader of the events."""

    def configure() -> Events:
        path = tmp_path / "events.jsonl"
        monkeypatch.setenv("OPENLINEAGE__TRANSPORT__TYPE", "file")
        monkeypatch.setenv("OPENLINEAGE__TRANSPORT__LOG_FILE_PATH", str(path))
        monkeypatch.setenv("OPENLINEAGE__TRANSPORT__APPEND", "true")
        return lambda: [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]

    return configure


@flow(name="daily")
def daily_with_metrics(day: date | None = None) -> Path:
    """The daily flow's body as it records its metrics (what flows/daily.py does with record_run)."""
    settings = Settings()
    started = datetime.now(UTC)
    lh = open_lakehouse(settings, "daily")
    summary = RunSummary()
    try:
        process(lh, settings, [day] if day else lh.zone.batches(), summary)
    finally:
        record_run(settings, lh, summary, started, datetime.now(UTC))
    if summary.failures:
        raise RunFailed("; ".join(summary.failures))
    return metrics_file(settings)


def _by_job(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        out.setdefault(event["job"]["name"], []).append(event)
    return out


def _names(datasets: list[dict[str, Any]]) -> list[str]:
    return [d["name"] for d in datasets]


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_a_daily_run_emits_start_and_complete_for_every_write(
    clean_landing: Landing,
    use_home,  # type: ignore[no-untyped-def]
    file_lineage: Callable[[], Events],
) -> None:
    catalog = use_home(clean_landing)
    events = file_lineage()
    started = datetime.now(UTC)
    summary = daily()
    finished = datetime.now(UTC)

    jobs = _by_job(events())
    results = {s.table: s for s in summary.steps}
    tables = list(results)
    assert {t.split(".")[0] for t in tables} == {"bronze", "silver", "gold"}
    assert sorted(jobs) == sorted(f"daily.{t}" for t in tables)
    run_id = (
        catalog.load_table("silver.orders")
        .current_snapshot()
        .summary.additional_properties["lakehouse.run-id"]
    )
    gated = {g.table for g in summary.gates}
    assert {t for t in tables if not t.startswith("gold.")} <= gated
    complete: dict[str, dict[str, Any]] = {}
    for table, result in results.items():
        start, end = jobs[f"daily.{table}"]
        assert (start["eventType"], end["eventType"]) == ("START", "COMPLETE"), table
        assert start["run"]["runId"] == end["run"]["runId"]
        assert end["run"]["facets"]["parent"]["run"]["runId"] == run_id
        assert end["run"]["facets"]["parent"]["job"]["name"] == "daily"
        assert end["run"]["facets"]["lakehouse_run"]["engine"] == "polars"
        output = end["outputs"][0]
        assert output["name"] == table
        complete[table] = end
        if result.skipped:
            assert "version" not in output["facets"], table
            assert end["run"]["facets"]["lakehouse_run"]["skipped"] == result.skipped
            continue
        assert output["facets"]["version"]["datasetVersion"] == str(result.snapshot_id), table
        assert output["facets"]["lakehouse_snapshot"]["snapshotId"] == result.snapshot_id, table
        assert output["facets"]["lakehouse_snapshot"]["properties"]["lakehouse.flow"] == "daily"
        assert output["outputFacets"]["outputStatistics"]["size"] > 0, table
        if table in gated:
            assertions = output["outputFacets"]["dataQualityAssertions"]["assertions"]
            assert assertions and all(a["success"] for a in assertions), table

    lineitem = complete["silver.lineitem"]
    parents = REGISTRY.parents(TABLES["lineitem"])
    assert _names(lineitem["inputs"]) == ["bronze.lineitem", *parents]
    assert _names(lineitem["outputs"]) == ["silver.lineitem", "quarantine.lineitem"]
    bronze = complete["bronze.lineitem"]
    assert _names(bronze["inputs"]) == ["tpch.lineitem"]
    assert bronze["inputs"][0]["namespace"] == Path(clean_landing.uri).resolve().as_uri()
    lineitems = landed(clean_landing, "lineitem").height
    assert bronze["inputs"][0]["inputFacets"]["inputStatistics"]["rowCount"] == lineitems
    # gold reads what silver and gold wrote in the same run: the versions chain
    revenue = complete["gold.daily_revenue"]
    assert _names(revenue["inputs"]) == REGISTRY.upstream("gold.daily_revenue")
    versions = {d["name"]: d["facets"]["version"]["datasetVersion"] for d in revenue["inputs"]}
    for name, version in versions.items():
        assert version == str(results[name].snapshot_id), name

    # the run's metrics, recorded by flows/daily.py at its end
    (line,) = metrics_file(Settings()).read_text(encoding="utf-8").splitlines()
    record = json.loads(line)
    assert started.isoformat() <= record["started"] <= record["finished"] <= finished.isoformat()
    assert record["run_id"] == run_id and record["status"] == "completed"
    assert record["batches"] == f"{clean_landing.dates[0]}..{clean_landing.dates[-1]}"
    landed_rows = sum(landed(clean_landing, n).height for n in LOAD_ORDER)
    assert record["rows_landed"] == record["layers"]["bronze"]["rows_in"] == landed_rows
    assert record["layers"]["silver"]["rows_out"] == landed_rows and record["quarantined_rows"] == 0
    sizes = 0
    for table, result in results.items():
        if result.snapshot_id is not None:
            snapshot = catalog.load_table(table).snapshot_by_id(result.snapshot_id)
            sizes += int(snapshot.summary.additional_properties["added-files-size"])
    assert sizes <= record["bytes_written"]  # plus the quarantine tables' (empty) files
    assert [s["task"] for s in record["steps"]] == tables
    assert all(s["status"] == "completed" and s["seconds"] > 0 for s in record["steps"])
    assert record["gates"]["passed"] == len(summary.gates) and record["gates"]["failed"] == 0
    assert lineage.take_timings(run_id) == []  # consumed


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_a_failing_gate_emits_fail_with_the_failing_checks(
    clean_landing: Landing,
    use_home,  # type: ignore[no-untyped-def]
    file_lineage: Callable[[], Events],
    tmp_path: Path,
) -> None:
    use_home(clean_landing)
    first, bad_day = clean_landing.dates[0], clean_landing.dates[1]
    daily(date=first)  # lineage not configured yet: emits nothing
    # the next day lands with most lineitem prices negative (as in test_daily)
    use_home(negative_prices(clean_landing, tmp_path, first, bad_day), "home")
    events = file_lineage()
    with pytest.raises(RunFailed, match=r"silver\.lineitem"):
        daily_with_metrics(bad_day)

    jobs = _by_job(events())
    start, fail = jobs["daily.silver.lineitem"]
    assert (start["eventType"], fail["eventType"]) == ("START", "FAIL")
    assert "quality gate failed on silver.lineitem" in fail["run"]["facets"]["errorMessage"]["message"]
    (output, quarantine) = fail["outputs"]
    assert (output["name"], quarantine["name"]) == ("silver.lineitem", "quarantine.lineitem")
    assert output["facets"]["lakehouse_snapshot"]["published"] is False
    assertions = output["outputFacets"]["dataQualityAssertions"]["assertions"]
    failed = [a for a in assertions if not a["success"]]
    assert failed and any("quarantine" in a["name"].lower() and float(a["actual"]) > 0.5 for a in failed)
    assert "version" not in output["facets"]  # nothing was published
    # what depends on silver.lineitem did not run; silver.orders of that day was published
    blocked = {"silver.lineitem"}
    for model in REGISTRY.models:  # in build order
        if blocked.intersection(REGISTRY.upstream(model)):
            blocked.add(model)
    assert blocked - {"silver.lineitem"}, "some gold table reads silver.lineitem"
    assert not [t for t in blocked if f"daily.{t}" in jobs and t != "silver.lineitem"]
    assert [e["eventType"] for e in jobs["daily.silver.orders"]] == ["START", "COMPLETE"]

    record = json.loads(metrics_file(Settings()).read_text(encoding="utf-8").splitlines()[-1])
    assert record["status"] == "failed" and record["batches"] == bad_day.isoformat()
    assert any(k.startswith("silver.lineitem") for k in record["failures"])
    assert {s["task"]: s["status"] for s in record["steps"]}["silver.lineitem"] == "failed"
    (gate,) = [g for g in record["gates"]["results"] if not g["passed"]]
    assert gate["table"] == "silver.lineitem" and gate["failed"]
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["daily-run-metrics"]))
        )
    assert any(a.data and "silver.lineitem" in str(a.data) for a in artifacts)


def test_the_metrics_line_of_a_run(tmp_path: Path) -> None:
    """Bytes come from the published snapshots' summaries; durations from the timed steps."""
    settings = Settings()
    catalog = open_catalog(settings)
    ensure_tables(
        catalog,
        [bronze_table(TABLES["orders"]), silver_table(TABLES["orders"]), quarantine_table(TABLES["orders"])],
    )
    lh = Lakehouse(
        catalog, REGISTRY, str(tmp_path / "landing"), RunInfo(str(uuid.uuid4()), "backfill", "abc123")
    )
    day = date(1995, 3, 1)
    started = datetime.now(UTC)
    table = lh.table("bronze.orders")
    rows = pa.Table.from_pylist([{"o_orderkey": "1", "_batch_date": day}], schema=table.schema().as_arrow())
    with lineage.step(lh, "bronze.orders", [day], inputs=["tpch.orders"]) as step:
        staged = write_audited(
            table,
            rows,
            replace=AlwaysTrue(),
            branch=audit_branch(lh.run.run_id),
            properties=lh.properties([day]),
            audit=None,
        )
        step.complete(StepResult("bronze.orders", (day,), 1, 1, 0, staged.snapshot_id))
    with pytest.raises(RuntimeError), lineage.step(lh, "silver.orders", [day], inputs=["bronze.orders"]):
        raise RuntimeError("boom")
    summary = RunSummary(
        batches=[day],
        steps=[StepResult("bronze.orders", (day,), 1, 1, 0, staged.snapshot_id)],
        failures={"silver.orders 1995-03-01..1995-03-01": "boom"},
    )
    returned = record_run(settings, lh, summary, started, datetime.now(UTC))

    path = metrics_file(settings)
    assert path == settings.home / "metrics" / "runs.jsonl"
    (record,) = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert record == json.loads(json.dumps(returned, default=str))
    size = int(
        table.refresh().snapshot_by_id(staged.snapshot_id).summary.additional_properties["added-files-size"]
    )
    assert record["run_id"] == lh.run.run_id and record["flow"] == "backfill"
    assert record["status"] == "failed" and record["failures"] == summary.failures
    assert record["batches"] == "1995-03-01" and record["code_version"] == "abc123"
    assert record["duration_seconds"] >= 0 and record["started"] == started.isoformat()
    assert record["bytes_written"] == record["layers"]["bronze"]["bytes_written"] == size > 0
    assert record["layers"]["bronze"] | {"bytes_written": 0} == {
        "steps": 1,
        "skipped": 0,
        "rows_in": 1,
        "rows_out": 1,
        "quarantined": 0,
        "snapshots": 1,
        "files_written": 1,
        "bytes_written": 0,
    }
    bronze, silver = record["steps"]
    assert bronze["task"] == "bronze.orders" and bronze["status"] == "completed"
    assert bronze["bytes_written"] == size and bronze["snapshot_id"] == staged.snapshot_id
    assert bronze["engine"] == "polars"
    assert silver["task"] == "silver.orders" and silver["status"] == "failed" and silver["error"] == "boom"
    assert "| bronze | 1 | 0 | 1 | 1 | 0 | 1 | 1 |" in render_markdown(record)
    record_run(settings, lh, summary, started, datetime.now(UTC))
    assert len(path.read_text(encoding="utf-8").splitlines()) == 2  # one line per run, appended
