"""Session fixtures of the reliability tests: one local stack, one landing zone, one reference lakehouse.

Every flow runs in a child process (``python -m flows.<name>``) reporting to one Prefect server (the
stack's): concurrent temporary servers on two cores are slow. The stack's generated credentials are
canaries, so any test using the stack also feeds the secrets test.

The landing zone holds 31 days of TPC-H SF0.01 from 1995-02-04: the reference snapshot on the first
day, anomalies on a few days, a customer change set on the last. The *pre-run state* is a lakehouse
with the first 28 days loaded (one backfill); the *post-run state* is that lakehouse after an
uninterrupted ``python -m flows.daily`` promoted the last 3 days (``PENDING``). Tests that write
run in the same home path, restored from a copy of the pre-run state (the warehouse locations are
absolute), so the pipeline runs behind them only once per session.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from infra.stack import PREFECT_SERVER, SECRETS_FILE, Stack, prefect_api_url
from lakehouse.landing import LandingZone
from lakehouse.publish import promoted
from tests.declared import TPCH as TPCH_SOURCE
from tests.declared import seed
from tests.reliability.harness import Home, contents, dates, snapshot_ids

START = date(1995, 2, 4)
DAYS = 31
PRE = dates(START, 28)
PENDING = dates(START, DAYS)[len(PRE) :]
"""Promoted by the run under test; the last one holds the customer change set."""


@dataclass(frozen=True)
class Canaries:
    """Credentials of the stack, recognisable anywhere they would leak."""

    postgres_password: str
    s3_access_key_id: str
    s3_secret_access_key: str

    def values(self) -> list[str]:
        """Every canary value."""
        return [self.postgres_password, self.s3_access_key_id, self.s3_secret_access_key]


@dataclass
class Baseline:
    """The pre-run and post-run states of the reference lakehouse, and where to run tests on it."""

    home: Home
    pristine: Path  # a copy of the pre-run state, see Home.restore
    finished: Path  # a copy of the post-run state
    pre: dict[str, pl.DataFrame]
    post: dict[str, pl.DataFrame]
    pre_snapshots: dict[str, int | None]
    run_seconds: float  # the uninterrupted run from the pre-run state

    def restore(self) -> Home:
        """Put the home back in the pre-run state and return it."""
        self.home.restore(self.pristine)
        return self.home

    def restore_post(self) -> Home:
        """Put the home in the post-run state of the reference run and return it."""
        self.home.restore(self.finished)
        return self.home


@pytest.fixture(scope="session")
def reliability_root() -> Iterator[Path]:
    """A session directory the unprivileged Postgres user can traverse (pytest's tmp dirs are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="lakehouse-reliability-"))
    path.chmod(0o711)
    yield path
    if not os.environ.get("RELIABILITY_KEEP_DIRS"):
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def canaries() -> Canaries:
    """Fresh canary credentials for the stack."""
    tag = secrets.token_hex(6)
    return Canaries(f"canaryPg{tag}", f"canaryak{tag}", f"canarySk{tag}{secrets.token_hex(8)}")


@pytest.fixture(scope="session")
def stack(reliability_root: Path, canaries: Canaries) -> Iterator[Stack]:
    """Postgres, SeaweedFS and a Prefect server (on Postgres), with the canaries as their credentials."""
    root = reliability_root / "stack"
    root.mkdir()
    text = (
        f"LAKEHOUSE_STACK_POSTGRES_PASSWORD={canaries.postgres_password}\n"
        f"LAKEHOUSE_STACK_S3_ACCESS_KEY_ID={canaries.s3_access_key_id}\n"
        f"LAKEHOUSE_STACK_S3_SECRET_ACCESS_KEY={canaries.s3_secret_access_key}\n"
    )
    fd = os.open(root / SECRETS_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    with Stack.start(root, prefect=True, worker=False, ui=False) as started:
        yield started


@pytest.fixture(scope="session")
def api_url(stack: Stack) -> str:
    """``PREFECT_API_URL`` of the one Prefect server every run of the session reports to."""
    return prefect_api_url(stack.service(PREFECT_SERVER))


@pytest.fixture(scope="session")
def landing(reliability_root: Path) -> LandingZone:
    """The seeded landing zone (see the module docstring)."""
    zone = LandingZone(str(reliability_root / "landing"), TPCH_SOURCE)
    seed(zone, scale=0.01, start=START, days=DAYS, workdir=reliability_root / "tpchgen")
    assert zone.batches("customer")[-1] == PENDING[-1], "the change set must land on the last day"
    return zone


@pytest.fixture(scope="session")
def baseline(reliability_root: Path, landing: LandingZone, api_url: str) -> Baseline:
    """Build the pre-run state, save it, then run the reference (uninterrupted) run from it."""
    home = Home(reliability_root / "lh", landing.uri, api_url)
    home.run_ok("flows.backfill", "--start", PRE[0].isoformat(), "--end", PRE[-1].isoformat())
    with home.catalog() as catalog:
        pre, pre_snapshots = contents(catalog), snapshot_ids(catalog)
    pristine = reliability_root / "lh.pre"
    home.save(pristine)
    began = time.monotonic()
    home.run_ok("flows.daily")
    seconds = time.monotonic() - began
    with home.catalog() as catalog:
        post = contents(catalog)
        assert {d.isoformat() for d in PENDING} <= promoted(catalog.load_table("silver.orders"))
    finished = reliability_root / "lh.post"
    home.save(finished)
    for table in ("silver.orders", "silver.lineitem", "silver.customer", "gold.fct_sales"):
        assert not post[table].equals(pre[table]), f"the run under test must change {table}"
    return Baseline(home, pristine, finished, pre, post, pre_snapshots, seconds)
