"""Prefect's settings come from the project's prefect.toml, and logs from worker threads reach the run."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.runtime import flow_run
from prefect.settings import PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW, temporary_settings

from lakehouse.landing import LandingZone
from lakehouse.readers import read_landed_files
from tests.conftest import ROOT
from tests.declared import TPCH as TPCH_SOURCE

SHOW = (
    "import json; from prefect.settings import get_current_settings as s; c = s(); "
    "print(json.dumps([c.server.analytics_enabled, c.server.ephemeral.startup_timeout_seconds, "
    "c.logging.extra_loggers]))"
)


def test_a_process_started_in_the_project_gets_its_prefect_settings(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(tmp_path)  # no profile of this machine's user
    out = subprocess.run(
        [sys.executable, "-c", SHOW],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    analytics, timeout, loggers = json.loads(out.stdout)
    assert analytics is False
    assert timeout == 90
    assert {"lakehouse", "checks"} <= set(loggers if isinstance(loggers, list) else loggers.split(","))


@flow
def _read_unreadable(zone_uri: str) -> str:
    zone = LandingZone(zone_uri, TPCH_SOURCE)
    read_landed_files(zone, zone.files("orders", [date(1995, 3, 1)]))
    return str(flow_run.get_id())


@pytest.mark.usefixtures("prefect_harness")
def test_logs_of_reader_threads_reach_the_flow_run_without_a_warning(tmp_path: Path) -> None:
    zone = LandingZone(str(tmp_path / "landing"), TPCH_SOURCE)
    zone.write("orders", date(1995, 3, 1), "a.csv", b"\x00\x01 not a csv \xff")
    zone.write("orders", date(1995, 3, 1), "b.csv", b"")
    logging.getLogger("lakehouse").setLevel(logging.INFO)
    # as in a run outside the tests, where a log record that names no run warns
    with temporary_settings({PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW: "warn"}):
        run_id = _read_unreadable(zone.uri)

    with get_client(sync_client=True) as client:
        for _ in range(50):
            logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
            rejected = [entry for entry in logs if "rejected as a whole" in entry.message]
            if len(rejected) == 2:
                break
            time.sleep(0.2)
    assert len(rejected) == 2, [entry.message for entry in logs]
    assert all(entry.name == "lakehouse.readers" for entry in rejected)


READ_IN_A_FLOW = """
import sys
from datetime import date
from tests.flows.test_prefect_settings import _read_unreadable
_read_unreadable(sys.argv[1])
"""


def test_a_run_outside_the_tests_prints_no_warning_for_reader_logs(tmp_path: Path) -> None:
    zone = LandingZone(str(tmp_path / "landing"), TPCH_SOURCE)
    zone.write("orders", date(1995, 3, 1), "a.csv", b"\x00 not a csv")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    run = subprocess.run(
        [sys.executable, "-c", READ_IN_A_FLOW, zone.uri],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "rejected as a whole" in run.stderr  # the reader thread's log line is printed
    assert "Warning" not in run.stderr, run.stderr[-2000:]
