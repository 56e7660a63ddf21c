"""A private Prefect server for the benchmark's flow runs, and the run timings read from its API.

The measured flows talk to this server (``PREFECT_API_URL``) as they would to a deployed one, so
their wall time does not include the temporary server Prefect starts for an unconfigured ad hoc
run (8–18 s here), and their task runs can be read back over REST afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

PAGE = 200  # the server's default (and maximum) page size


class ServerError(RuntimeError):
    """The Prefect server did not start, or its API answered with an error."""


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _parse_time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _epoch(text: str | None) -> float | None:
    moment = _parse_time(text)
    return moment.timestamp() if moment else None


@dataclass(frozen=True)
class FlowRunTimes:
    """A flow run's wall time and the time its tasks spent working, from the Prefect API.

    The work is that of the *leaf* task runs (those no other task run names as its parent): a task
    that only runs other tasks (a chunk) is orchestration, and counting it too would count its
    children twice. Leaf task runs may overlap (chunks may run concurrently), so besides their
    summed running time the time covered by at least one of them is kept: wall time minus that
    coverage is time in which no task was working.
    """

    flow_run_id: str
    name: str
    state: str
    created: float  # epoch seconds
    start: float
    end: float
    flow_run_seconds: float  # start → end
    task_runs: int
    leaf_task_runs: int
    task_seconds: float  # summed running time of the leaf task runs
    task_covered_seconds: float  # time in which at least one leaf task run was running
    slowest_tasks: list[tuple[str, float]]


def covered(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of ``(start, end)`` intervals."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end <= reach:
            continue
        total += end - max(start, reach)
        reach = end
    return total


def leaves(task_runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The task runs that are no other task run's parent."""
    parents = {
        p.get("id")
        for t in task_runs
        for p in (t.get("task_inputs") or {}).get("__parents__", [])
        if p.get("input_type") == "task_run"
    }
    return [t for t in task_runs if t["id"] not in parents]


class PrefectServer:
    """``prefect server start`` on a free loopback port, with its own ``PREFECT_HOME``."""

    def __init__(self, home: Path, log_path: Path, env: dict[str, str]) -> None:
        """Prepare a server keeping its database under ``home``; nothing starts yet."""
        self.home = home
        self.log_path = log_path
        self.port = free_port()
        self.env = {**env, "PREFECT_HOME": str(home)}
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_seconds = 0.0

    @property
    def api_url(self) -> str:
        """The API URL clients set as ``PREFECT_API_URL``."""
        return f"http://127.0.0.1:{self.port}/api"

    def start(self, timeout: float = 180) -> None:
        """Start the server and wait until ``/api/health`` answers.

        Raises:
            ServerError: if it exits or is not healthy within ``timeout`` seconds.

        """
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = [
            *(sys.executable, "-m", "prefect", "server", "start"),
            *("--host", "127.0.0.1", "--port", str(self.port), "--no-ui", "--analytics-off"),
        ]
        began = time.perf_counter()
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                command, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        while time.perf_counter() - began < timeout:
            if self.proc.poll() is not None:
                raise ServerError(f"prefect server exited with {self.proc.returncode}; see {self.log_path}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as answer,
            ):
                if answer.status == 200:
                    self.startup_seconds = round(time.perf_counter() - began, 3)
                    return
            time.sleep(0.5)
        self.stop()
        raise ServerError(f"prefect server not healthy after {timeout:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        """Stop the server (its whole process group) if it runs."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def __enter__(self) -> PrefectServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(
            f"{self.api_url}{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return json.load(answer)
        except (OSError, urllib.error.HTTPError) as exc:
            raise ServerError(f"POST {path} failed: {exc}") from exc

    def flow_runs_between(self, since: float, until: float) -> list[dict[str, Any]]:
        """Flow runs created between two moments (epoch seconds), oldest first."""
        runs = self._post("/flow_runs/filter", {"sort": "EXPECTED_START_TIME_ASC", "limit": PAGE})
        return [r for r in runs if since <= (_epoch(r.get("created")) or 0) <= until]

    def flow_run_times(self, flow_run: dict[str, Any]) -> FlowRunTimes:
        """The flow run's wall time and the working time of its leaf task runs.

        Raises:
            ServerError: if the API fails, or the run has no start or end time.

        """
        tasks: list[dict[str, Any]] = []
        while True:
            page = self._post(
                "/task_runs/filter",
                {"flow_runs": {"id": {"any_": [flow_run["id"]]}}, "limit": PAGE, "offset": len(tasks)},
            )
            tasks.extend(page)
            if len(page) < PAGE:
                break
        created, start, end = (_epoch(flow_run.get(k)) for k in ("created", "start_time", "end_time"))
        if created is None or start is None or end is None:
            raise ServerError(
                f"flow run {flow_run['id']} has no start or end time (state {flow_run.get('state')})"
            )
        work = leaves(tasks)
        intervals = [
            (a, b)
            for a, b in ((_epoch(t.get("start_time")), _epoch(t.get("end_time"))) for t in work)
            if a is not None and b is not None
        ]
        durations = sorted(
            ((t["name"], float(t.get("total_run_time") or 0)) for t in work), key=lambda t: -t[1]
        )
        return FlowRunTimes(
            flow_run_id=flow_run["id"],
            name=flow_run.get("name", ""),
            state=(flow_run.get("state") or {}).get("type", "UNKNOWN"),
            created=created,
            start=start,
            end=end,
            flow_run_seconds=round(end - start, 3),
            task_runs=len(tasks),
            leaf_task_runs=len(work),
            task_seconds=round(sum(d for _, d in durations), 3),
            task_covered_seconds=round(covered(intervals), 3),
            slowest_tasks=[(n, round(d, 3)) for n, d in durations[:5]],
        )
