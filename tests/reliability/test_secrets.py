"""Secrets: canary credentials (Postgres password in the catalog URI, S3 keys) never leak.

A daily run on the stack (Postgres catalog, SeaweedFS warehouse) with canary credentials, and a run
with a wrong canary password, then every place a secret could end up is searched: the runs' output
(logs, tracebacks, error messages), everything the Prefect server holds (logs, artifacts, flow and
task run states and parameters), the gate reports and persisted task results, every table's
metadata (snapshot summaries, properties), and the stack's own logs.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.stack import Stack
from lakehouse.catalog import RetryingSqlCatalog
from lakehouse.landing import LandingZone
from tests.reliability.conftest import START, Canaries
from tests.reliability.harness import Home, table_ids

pytestmark = [pytest.mark.slow, pytest.mark.integration]

PREFIX = "PYICEBERG_CATALOG__LAKEHOUSE__"


def _post(api_url: str, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        f"{api_url}{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def _everything(api_url: str, path: str, page: int = 200) -> Iterator[Any]:
    offset = 0
    while True:
        items = _post(api_url, path, {"limit": page, "offset": offset})
        yield from items
        if len(items) < page:
            return
        offset += page


def _catalog_properties(env: dict[str, str]) -> dict[str, str]:
    # PYICEBERG_CATALOG__LAKEHOUSE__S3__ACCESS_KEY_ID -> s3.access-key-id (pyiceberg's mapping)
    return {
        k[len(PREFIX) :].lower().replace("__", ".").replace("_", "-"): v
        for k, v in env.items()
        if k.startswith(PREFIX)
    }


def _found(canaries: list[str], text: str) -> list[str]:
    return [c for c in canaries if c in text]


def test_no_canary_secret_leaks(
    stack: Stack, canaries: Canaries, reliability_root: Path, landing: LandingZone, api_url: str
) -> None:
    stack_env = {k: v for k, v in stack.env.items() if k.startswith(("PYICEBERG_", "AWS_"))}
    assert canaries.postgres_password in stack_env[f"{PREFIX}URI"]
    home = Home(reliability_root / "secrets", landing.uri, api_url, catalog_env=stack_env)
    ok = home.run_ok("flows.daily", "--date", START.isoformat())

    wrong = f"canaryWrong{canaries.postgres_password[-8:]}"
    bad_env = {
        **stack_env,
        f"{PREFIX}URI": stack_env[f"{PREFIX}URI"].replace(canaries.postgres_password, wrong),
    }
    failed = home.run("flows.daily", "--date", START.isoformat(), extra=bad_env)
    assert failed.returncode != 0, failed.tail()
    assert "CatalogUnavailableError" in failed.output, failed.tail()
    assert "password authentication failed" in failed.output, failed.tail()
    secrets_ = [*canaries.values(), wrong]

    # the runs' own output: log lines, tracebacks, error messages
    for run in (ok, failed):
        assert not _found(secrets_, run.output), f"secret in the output of {run.args}"

    # everything on the Prefect server (every run of the session, the other tests' included)
    places: dict[str, str] = {
        "logs": json.dumps([entry["message"] for entry in _everything(api_url, "/logs/filter")]),
        "artifacts": json.dumps(list(_everything(api_url, "/artifacts/filter"))),
        "flow runs": json.dumps(list(_everything(api_url, "/flow_runs/filter"))),
        "task runs": json.dumps(list(_everything(api_url, "/task_runs/filter"))),
    }
    assert "gate-" in places["artifacts"], "the run should have published gate artifacts"
    assert "password authentication failed" in places["logs"] + places["flow runs"]

    # reports, persisted task results and anything else the runs wrote in the home
    for path in home.path.rglob("*"):
        if path.is_file() and "warehouse" not in path.parts:
            places[str(path.relative_to(home.path))] = path.read_bytes().decode(errors="replace")
    assert any(p.startswith("reports/") for p in places), "the run should have written gate reports"

    # every table's metadata on S3: snapshot summaries, properties, refs
    catalog = RetryingSqlCatalog("lakehouse", **_catalog_properties(stack_env))
    try:
        for table_id in table_ids(catalog):
            table = catalog.load_table(table_id)
            assert table.location().startswith("s3://"), table_id
            places[f"metadata of {table_id}"] = table.metadata.model_dump_json()
    finally:
        catalog.engine.dispose()

    # the stack's own logs (Postgres logs the failed authentication)
    for path in (stack.root / "logs").glob("*.log"):
        places[f"stack {path.name}"] = path.read_text(errors="replace")

    leaks = {where: _found(secrets_, text) for where, text in places.items() if _found(secrets_, text)}
    assert not leaks, f"secrets found in {sorted(leaks)}"
