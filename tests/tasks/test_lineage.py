"""OpenLineage events of pipeline steps, through the real client's file transport and a real catalog."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from pyiceberg.expressions import AlwaysTrue

from checks.errors import QualityGateFailed
from checks.result import CheckOutcome, GateResult
from lakehouse import pipeline
from lakehouse.catalog import ensure_tables, open_catalog
from lakehouse.landing import LandingZone
from lakehouse.pipeline import Lakehouse, RunInfo, StepResult
from lakehouse.publish import audit_branch, write_audited
from lakehouse.settings import Settings
from lakehouse.tables import bronze_table, silver_table
from tasks import lineage
from tests.declared import REGISTRY, TABLES
from tests.declared import TPCH as TPCH_SOURCE

ROOT = Path(__file__).resolve().parents[2]
DAY = date(1995, 3, 1)
ORDERS_CSV = (
    b"o_orderkey,o_custkey,o_orderstatus,o_totalprice,o_orderdate,o_orderpriority,o_clerk,o_shippriority,o_comment\n"
    b"1,10,O,100.50,1995-03-01,1-URGENT,Clerk#1,0,first\n"
    b"2,11,F,200.25,1995-03-01,2-HIGH,Clerk#2,0,second\n"
)

Events = Callable[[], list[dict[str, Any]]]


@pytest.fixture(autouse=True)
def _no_lineage_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No OpenLineage configuration from the user's environment, working directory or home."""
    before = {k: v for k, v in os.environ.items() if k.startswith("OPENLINEAGE")}
    for name in before:
        monkeypatch.delenv(name)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))
    lineage.reset()
    yield
    lineage.reset()
    # The client itself aliases OPENLINEAGE_URL into OPENLINEAGE__TRANSPORT__* variables: undo that.
    for name in [k for k in os.environ if k.startswith("OPENLINEAGE") and k not in before]:
        del os.environ[name]


def read_events(path: Path) -> list[dict[str, Any]]:
    """The events the file transport appended to ``path``, in order."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture
def file_lineage(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Events:
    """OpenLineage configured by environment variables to append events to one file."""
    path = tmp_path / "events.jsonl"
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__TYPE", "file")
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__LOG_FILE_PATH", str(path))
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__APPEND", "true")
    return lambda: read_events(path)


@pytest.fixture
def lh(tmp_path: Path) -> Lakehouse:
    """A real embedded catalog with bronze/silver orders and one landed batch of two orders."""
    catalog = open_catalog(Settings())
    ensure_tables(catalog, [bronze_table(TABLES["orders"]), silver_table(TABLES["orders"])])
    zone = LandingZone(str(tmp_path / "landing"), TPCH_SOURCE)
    zone.write("orders", DAY, "orders.csv", ORDERS_CSV)
    return Lakehouse(catalog, REGISTRY, zone.uri, RunInfo(str(uuid.uuid4()), "daily", "abc123", "polars"))


def gate_result(table: str, snapshot_id: int, *, passed: bool) -> GateResult:
    now = datetime.now(UTC)
    checks = (
        CheckOutcome("row count", "row_count", None, "passed", "> 0", 2),
        CheckOutcome(
            "no negative price",
            "invalid",
            "o_totalprice",
            "passed" if passed else "failed",
            "= 0",
            0 if passed else 1,
        ),
    )
    return GateResult(
        table, Path(f"contracts/{table}.yml"), snapshot_id, (DAY,), passed, checks, (), now, now
    )


def test_unconfigured_lineage_builds_no_client_and_emits_nothing(lh: Lakehouse, tmp_path: Path) -> None:
    assert not lineage.configured()
    assert lineage.client() is None
    with lineage.step(lh, "bronze.orders", [DAY], inputs=["tpch.orders"]) as step:
        step.complete(pipeline.load_bronze(lh, "bronze.orders", [DAY], None))
    (timing,) = lineage.take_timings(lh.run.run_id)
    assert timing.task == "bronze.orders" and timing.status == "completed" and timing.seconds > 0
    assert timing.result is not None and timing.result.rows_out == 2
    assert not list(tmp_path.rglob("*events*"))


@pytest.mark.slow  # a fresh interpreter: a few seconds of imports
def test_unconfigured_lineage_does_not_even_import_openlineage(tmp_path: Path) -> None:
    script = """
import sys, uuid
from datetime import date
from unittest.mock import MagicMock
from lakehouse.pipeline import RunInfo
from tasks import lineage
lh = MagicMock(run=RunInfo(str(uuid.uuid4()), "daily", "abc"))
with lineage.step(lh, "gold.fct_sales", [date(1995, 3, 1)], inputs=["silver.orders"]):
    pass
assert lineage.take_timings(lh.run.run_id)[0].status == "completed"
assert not [m for m in sys.modules if m.startswith("openlineage")], "openlineage was imported"
assert not lh.catalog.mock_calls, "the catalog was read"
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENLINEAGE")}
    env["HOME"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({}, False),
        ({"OPENLINEAGE_URL": "http://127.0.0.1:5000"}, True),
        ({"OPENLINEAGE__TRANSPORT__TYPE": "console"}, True),
        ({"OPENLINEAGE_URL": "http://127.0.0.1:5000", "OPENLINEAGE_DISABLED": "true"}, False),
    ],
)
def test_configured_the_openlineage_way(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], expected: bool
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert lineage.configured() is expected


def test_an_openlineage_yml_in_the_working_directory_configures_lineage(
    lh: Lakehouse, tmp_path: Path
) -> None:
    events = tmp_path / "from-yaml.jsonl"
    Path("openlineage.yml").write_text(
        f"transport:\n  type: file\n  log_file_path: {events}\n  append: true\n", encoding="utf-8"
    )
    assert lineage.configured()
    with lineage.step(lh, "bronze.orders", [DAY], inputs=["tpch.orders"]) as step:
        step.complete(pipeline.load_bronze(lh, "bronze.orders", [DAY], None))
    assert [e["eventType"] for e in read_events(events)] == ["START", "COMPLETE"]


def test_a_step_emits_start_and_complete_naming_its_datasets_and_snapshot(
    lh: Lakehouse, file_lineage: Events, tmp_path: Path
) -> None:
    with lineage.step(lh, "bronze.orders", [DAY], inputs=["tpch.orders"]) as step:
        result = step.complete(pipeline.load_bronze(lh, "bronze.orders", [DAY], None))
    start, complete = file_lineage()
    assert (start["eventType"], complete["eventType"]) == ("START", "COMPLETE")
    assert start["run"]["runId"] == complete["run"]["runId"]
    assert complete["job"] == start["job"] | {"name": "daily.bronze.orders"}
    assert complete["job"]["namespace"] == "lakehouse"
    assert complete["job"]["facets"]["jobType"]["integration"] == "PREFECT"

    (source,) = complete["inputs"]
    assert source["namespace"] == (tmp_path / "landing").as_uri()
    assert source["name"] == "tpch.orders"
    assert source["inputFacets"]["inputStatistics"]["rowCount"] == 2
    (output,) = complete["outputs"]
    warehouse = Settings().home.resolve() / "warehouse"
    assert (output["namespace"], output["name"]) == (warehouse.as_uri(), "bronze.orders")
    assert output["facets"]["version"]["datasetVersion"] == str(result.snapshot_id)
    snapshot = output["facets"]["lakehouse_snapshot"]
    assert snapshot["snapshotId"] == result.snapshot_id and snapshot["published"] is True
    assert snapshot["properties"]["lakehouse.run-id"] == lh.run.run_id
    assert output["outputFacets"]["outputStatistics"]["rowCount"] == 2
    assert output["outputFacets"]["outputStatistics"]["size"] > 0
    assert [f["name"] for f in output["facets"]["schema"]["fields"]][:2] == ["o_orderkey", "o_custkey"]
    assert output["facets"]["catalog"]["framework"] == "iceberg"
    assert "version" not in start["outputs"][0]["facets"]  # nothing written yet

    facets = complete["run"]["facets"]
    assert facets["parent"]["run"]["runId"] == lh.run.run_id
    assert facets["parent"]["job"]["name"] == "daily" and facets["parent"]["job"]["namespace"] == "lakehouse"
    assert facets["lakehouse_run"]["engine"] == "polars"
    assert facets["lakehouse_run"]["rowsOut"] == 2 and facets["lakehouse_run"]["durationSeconds"] > 0
    assert facets["lakehouse_run"]["batches"] == "1995-03-01"
    assert facets["processing_engine"]["name"] == "polars"


def test_complete_reports_the_input_snapshots_stamped_on_the_written_snapshot(
    lh: Lakehouse, file_lineage: Events
) -> None:
    bronze = pipeline.load_bronze(lh, "bronze.orders", [DAY], None)
    stamped = {**lh.properties([DAY]), lineage.PROP_INPUTS: "bronze.orders@42"}
    table = lh.table("silver.orders")
    with lineage.step(lh, "silver.orders", [DAY], inputs=["bronze.orders"]) as step:
        data = table.scan().to_arrow()  # an empty write is enough: only the snapshot's summary matters
        staged = write_audited(
            table,
            data,
            replace=AlwaysTrue(),
            branch=audit_branch(lh.run.run_id),
            properties=stamped,
            audit=None,
        )
        step.complete(StepResult("silver.orders", (DAY,), 0, 0, 0, staged.snapshot_id))
    start, complete = file_lineage()
    assert start["inputs"][0]["facets"]["version"]["datasetVersion"] == str(bronze.snapshot_id)
    assert complete["inputs"][0]["facets"]["version"]["datasetVersion"] == "42"


def test_a_failing_gate_emits_fail_with_the_error_and_the_failing_checks(
    lh: Lakehouse, file_lineage: Events
) -> None:
    with (
        pytest.raises(QualityGateFailed),
        lineage.step(lh, "silver.orders", [DAY], inputs=["bronze.orders"]),
    ):
        lineage.record_gate(gate_result("silver.orders", 123, passed=False))
        raise QualityGateFailed("quality gate failed on silver.orders snapshot 123")
    start, fail = file_lineage()
    assert (start["eventType"], fail["eventType"]) == ("START", "FAIL")
    assert fail["run"]["facets"]["errorMessage"]["message"].startswith("quality gate failed")
    assert fail["run"]["facets"]["errorMessage"]["programmingLanguage"] == "python"
    (output,) = fail["outputs"]
    assertions = output["outputFacets"]["dataQualityAssertions"]["assertions"]
    assert [(a["name"], a["success"]) for a in assertions] == [
        ("row count", True),
        ("no negative price", False),
    ]
    assert assertions[1]["column"] == "o_totalprice" and assertions[1]["actual"] == "1"
    assert output["facets"]["lakehouse_snapshot"] == output["facets"]["lakehouse_snapshot"] | {
        "snapshotId": 123,
        "published": False,
    }
    (timing,) = lineage.take_timings(lh.run.run_id)
    assert timing.status == "failed" and timing.error is not None


def test_an_unwritable_backend_never_fails_the_step(
    lh: Lakehouse, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__TYPE", "file")
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__LOG_FILE_PATH", str(tmp_path / "missing" / "dir" / "events"))
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__APPEND", "true")
    with (
        caplog.at_level(logging.WARNING, logger="tasks.lineage"),
        lineage.step(lh, "bronze.orders", [DAY], inputs=["tpch.orders"]) as step,
    ):
        result = step.complete(pipeline.load_bronze(lh, "bronze.orders", [DAY], None))
    assert result.rows_out == 2
    assert [r.getMessage() for r in caplog.records if r.name == "tasks.lineage"] == [
        "OpenLineage START event of daily.bronze.orders not emitted",
        "OpenLineage completed event of daily.bronze.orders not emitted",
    ]


def test_a_run_outside_prefect_has_no_parent_run(lh: Lakehouse, file_lineage: Events) -> None:
    local = Lakehouse(lh.catalog, REGISTRY, lh.landing, RunInfo("local", "daily", "abc123"))
    with lineage.step(local, "bronze.orders", [DAY], inputs=["tpch.orders"]):
        pass
    assert all("parent" not in e["run"]["facets"] for e in file_lineage())


def test_names_of_datasets() -> None:
    assert lineage.parse_inputs("silver.orders@123, tpch.orders,") == {
        "silver.orders": 123,
        "tpch.orders": None,
    }
    assert lineage.landing_namespace("s3://bucket/landing/") == "s3://bucket/landing"
    assert lineage.landing_namespace("/data/landing") == "file:///data/landing"


class Cancelled(BaseException):
    """Stands for a cancellation (not an error of the step)."""


def test_an_interrupted_step_emits_abort(lh: Lakehouse, file_lineage: Events) -> None:
    with pytest.raises(Cancelled), lineage.step(lh, "silver.orders", [DAY], inputs=["bronze.orders"]):
        raise Cancelled
    assert [e["eventType"] for e in file_lineage()] == ["START", "ABORT"]
    assert [t.status for t in lineage.take_timings(lh.run.run_id)] == ["aborted"]


def test_steps_in_parallel_threads_keep_their_own_gate_results(lh: Lakehouse) -> None:
    def run(table: str) -> lineage.Step:
        with lineage.step(lh, table, [DAY], inputs=[]) as step:
            lineage.record_gate(gate_result(table, 1, passed=True))
            return step

    with ThreadPoolExecutor(max_workers=2) as pool:
        steps = list(pool.map(run, ["bronze.orders", "silver.orders"]))
    assert [list(s.gates) for s in steps] == [["bronze.orders"], ["silver.orders"]]
    lineage.record_gate(gate_result("gold.fct_sales", 1, passed=True))  # no step here: ignored
    assert sorted(t.task for t in lineage.take_timings(lh.run.run_id)) == ["bronze.orders", "silver.orders"]


def test_a_table_that_cannot_be_read_still_gets_its_events(
    lh: Lakehouse, file_lineage: Events, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="tasks.lineage"),
        lineage.step(lh, "gold.fct_sales", [DAY], inputs=["silver.orders"]) as step,
    ):
        step.complete(StepResult("gold.fct_sales", (DAY,), skipped="no input rows"))
    start, complete = file_lineage()
    assert (start["eventType"], complete["eventType"]) == ("START", "COMPLETE")
    assert complete["outputs"][0]["name"] == "gold.fct_sales" and complete["outputs"][0]["facets"] == {}
    assert "version" in complete["inputs"][0]["facets"]
    assert complete["run"]["facets"]["lakehouse_run"]["skipped"] == "no input rows"
    assert any("cannot read gold.fct_sales" in r.getMessage() for r in caplog.records)
