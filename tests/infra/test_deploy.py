"""Deploy from prefect.yaml to a real Prefect server and run the daily deployment with a real worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from infra.stack import Service, prefect_server, prefect_worker

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def stack_root() -> Iterator[Path]:
    # a world-traversable temp dir, like tests/infra/test_stack.py (services may run as another user)
    with tempfile.TemporaryDirectory(prefix="lakehouse-deploy-") as tmp:
        Path(tmp).chmod(0o711)
        yield Path(tmp)


def _prefect(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "prefect"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
    )


def test_daily_deployment_runs_to_completed_on_a_real_server_and_worker(stack_root: Path) -> None:
    landing = stack_root / "landing"
    seeded = subprocess.run(
        [sys.executable, "-m", "flows.seed", "--scale", "0.01", "--start", "1995-03-01", "--days", "2"],
        cwd=ROOT,
        env={**os.environ, "LAKEHOUSE_HOME": str(stack_root / "home"), "LAKEHOUSE_LANDING_URI": str(landing)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert seeded.returncode == 0, seeded.stderr
    lakehouse_env = {"LAKEHOUSE_HOME": str(stack_root / "home"), "LAKEHOUSE_LANDING_URI": str(landing)}
    server: Service
    with prefect_server(stack_root, ui=False) as server:
        api_url = f"http://127.0.0.1:{server.port}/api"
        env = {
            **os.environ,
            "PREFECT_API_URL": api_url,
            "PREFECT_HOME": str(stack_root / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "SODA_CORE_TELEMETRY_ENABLED": "false",
        }
        with prefect_worker(stack_root, api_url=api_url, env=lakehouse_env, cwd=ROOT):
            deployed = _prefect(["--no-prompt", "deploy", "--all"], env)
            assert deployed.returncode == 0, deployed.stdout + deployed.stderr
            listed = _prefect(["deployment", "ls"], env)
            for name in ("daily/daily", "backfill/backfill", "maintenance/maintenance"):
                assert name in listed.stdout, listed.stdout
            run = _prefect(
                ["deployment", "run", "daily/daily", "--watch", "--watch-timeout", "600"], env, 700
            )
            assert run.returncode == 0, run.stdout + run.stderr
            assert "Completed" in run.stdout, run.stdout
    # the worker's flow run wrote the lakehouse: every landed batch is promoted
    check = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json; from lakehouse.settings import Settings;"
            "from lakehouse.catalog import open_catalog; from lakehouse.publish import promoted;"
            "print(json.dumps(sorted(promoted(open_catalog(Settings()).load_table('gold.daily_revenue')))))",
        ],
        cwd=ROOT,
        env={**os.environ, **lakehouse_env},
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(check.stdout) == [date(1995, 3, 1).isoformat(), date(1995, 3, 2).isoformat()]
