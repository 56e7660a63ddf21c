"""The daily flow on Postgres (catalog) + SeaweedFS (warehouse and landing) equals the embedded default."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Run in a child process: pyiceberg reads PYICEBERG_* once, at import.
_DIGEST = """
import json, sys
import polars as pl
from lakehouse.catalog import open_catalog
from lakehouse.settings import Settings
from tests.declared import LOAD_ORDER
catalog = open_catalog(Settings())
out = {}
for name in [f"silver.{t}" for t in LOAD_ORDER] + [f"quarantine.{t}" for t in LOAD_ORDER]:
    frame = pl.from_arrow(catalog.load_table(name).scan().to_arrow())
    keep = [c for c in frame.columns if not c.startswith("_") or c == "_rule"]
    frame = frame.select(keep)
    out[name] = [frame.height, int(frame.hash_rows().sum()) if frame.height else 0]
    warehouse = catalog.load_table(name).location()
print(json.dumps({"tables": out, "location": warehouse}))
"""


@pytest.fixture
def stack_root() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="lakehouse-s3pg-") as tmp:
        Path(tmp).chmod(0o711)
        yield Path(tmp)


def _run(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=900)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return done.stdout


def _clean_env(extra: dict[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PYICEBERG_", "LAKEHOUSE_", "AWS_"))}
    return {**base, "PREFECT_API_URL": "", **extra}


def test_daily_on_postgres_and_seaweedfs_equals_the_embedded_default(stack_root: Path) -> None:
    seed = [sys.executable, "-m", "flows.seed", "--scale", "0.01", "--start", "1995-03-01", "--days", "3"]
    daily = [sys.executable, "-m", "flows.daily"]
    digest = [sys.executable, "-c", _DIGEST]

    local = _clean_env({"LAKEHOUSE_HOME": str(stack_root / "local")})
    _run(seed, local)
    _run(daily, local)
    expected = json.loads(_run(digest, local))

    with Stack.start(stack_root / "stack", prefect=False, worker=False) as stack:
        remote = _clean_env({**stack.env, "LAKEHOUSE_HOME": str(stack_root / "remote")})
        remote.pop("PREFECT_API_URL", None)
        _run(seed, remote)
        _run(daily, remote)
        got = json.loads(_run(digest, remote))
    assert got["location"].startswith("s3://warehouse/")
    assert expected["location"].startswith("file://")
    assert got["tables"] == expected["tables"]
    assert expected["tables"]["silver.orders"][0] > 0
