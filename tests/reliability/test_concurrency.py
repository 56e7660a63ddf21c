"""Concurrency: runs for different dates, and twice the same date, at once, on SQLite and Postgres.

Every run must succeed (conflicts retried: write-audit-publish restages on the new ``main``; SQLite
waits for locks and retries ``database is locked``), and the lakehouse must hold exactly the
content of one uninterrupted run: no lost rows, no duplicated rows. A write that keeps conflicting
fails with a clear error and leaves ``main`` untouched.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import BadRequestError
from pyiceberg.io.pyarrow import schema_to_pyarrow
from pyiceberg.table import Table

from infra.stack import CATALOG_DATABASE, POSTGRES, Stack, database_url
from lakehouse.catalog import RetryingRestCatalog, RetryingSqlCatalog, embedded_default, ensure_tables
from lakehouse.errors import CommitConflictError
from lakehouse.files import batch_filter
from lakehouse.publish import AUDIT_BRANCH_PREFIX, write_audited
from lakehouse.tables import NAMESPACES, PROP_BATCHES, bronze_table
from tests.declared import TABLES
from tests.reliability.conftest import PENDING, Baseline
from tests.reliability.harness import (
    SOAK,
    Home,
    Run,
    assert_succeeded,
    contents,
    duplicated_keys,
    table_ids,
)

log = logging.getLogger(__name__)

P0, P1, P2 = (d.isoformat() for d in PENDING)
# Different dates at once, and the last date twice (the backfill races the daily run on every table).
RUNS: list[tuple[str, ...]] = [
    ("flows.daily", "--date", P0),
    ("flows.backfill", "--start", P1, "--end", P2),
    ("flows.daily", "--date", P2),
]
if SOAK:
    RUNS += [("flows.daily", "--date", P1), ("flows.daily", "--date", P2), ("flows.daily", "--date", P0)]
RETRY_MARKERS = {
    "wap": "concurrent commit, retrying",
    "pyiceberg": "Commit failed due to a concurrent update",
    "sqlite-lock": "catalog database locked",
    "task-retry": "Retry",
}


def run_at_once(home: Home, runs: list[tuple[str, ...]]) -> list[Run]:
    """Start ``python -m <run>`` for every run together; wait for all."""
    began = time.monotonic()
    started = [home.start(*run) for run in runs]
    return [home.wait(proc, path, began) for proc, path in started]


def _audit_branches(table: Table) -> dict[str, dict[str, str]]:
    """Audit branches of ``table`` and the summary of their head snapshot (to tell whose they are)."""
    out = {}
    for name, ref in table.metadata.refs.items():
        if name.startswith(AUDIT_BRANCH_PREFIX):
            head = table.metadata.snapshot_by_id(ref.snapshot_id)
            summary = head.summary.additional_properties if head and head.summary else {}
            out[name] = {"snapshot": str(ref.snapshot_id), **summary}
    return out


def _assert_all_rows_once(home: Home, baseline: Baseline, runs: list[Run]) -> None:
    for run in runs:
        assert_succeeded(run)
    retries = {name: sum(len(re.findall(m, run.output)) for run in runs) for name, m in RETRY_MARKERS.items()}
    log.info("retries seen across %d concurrent runs: %s", len(runs), retries)
    with home.catalog() as catalog:
        got = contents(catalog)
        left = {t: _audit_branches(catalog.load_table(t)) for t in table_ids(catalog)}
    left = {t: branches for t, branches in left.items() if branches}
    assert not left, f"finished runs left audit branches: {left}"
    duplicated = {t: n for t, frame in got.items() if (n := duplicated_keys(t, frame))}
    assert not duplicated, f"duplicated keys: {duplicated}"
    differ = {
        t: (got[t].height, frame.height) for t, frame in baseline.post.items() if not got[t].equals(frame)
    }
    assert not differ, f"content differs from one uninterrupted run (rows got, expected): {differ}"


@pytest.mark.slow
@pytest.mark.integration
def test_concurrent_runs_on_the_embedded_sqlite_catalog(baseline: Baseline) -> None:
    home = baseline.restore()
    _assert_all_rows_once(home, baseline, run_at_once(home, RUNS))


def _registered(home: Home, name: str, props: dict[str, str], catalog: Catalog) -> Home:
    """The pre-run state of ``home`` registered in ``catalog`` (same warehouse, same metadata files)."""
    with home.catalog() as sqlite:
        locations = {t: sqlite.load_table(t).metadata_location for t in table_ids(sqlite)}
    for namespace in NAMESPACES:
        catalog.create_namespace(namespace)
    for table_id, location in locations.items():
        catalog.register_table(table_id, location)
    (home.path / "catalog.db").unlink()  # so nothing can silently use the embedded catalog
    return Home(
        home.path,
        home.landing,
        home.api_url,
        catalog_env={f"PYICEBERG_CATALOG__{name.upper()}__{k.upper()}": v for k, v in props.items()},
        catalog_name=name,
        catalog_properties=props,
    )


@pytest.mark.slow
@pytest.mark.integration
def test_concurrent_runs_on_a_postgres_catalog(baseline: Baseline, stack: Stack) -> None:
    home = baseline.restore()
    name = "concurrency"
    props = {
        "uri": database_url(stack.service(POSTGRES), CATALOG_DATABASE),
        "warehouse": embedded_default(home.path)["warehouse"],
    }
    postgres = RetryingSqlCatalog(name, **props)
    try:
        on_postgres = _registered(home, name, props, postgres)
    finally:
        postgres.engine.dispose()
    _assert_all_rows_once(on_postgres, baseline, run_at_once(on_postgres, RUNS))


@pytest.mark.slow
@pytest.mark.integration
def test_concurrent_runs_on_a_rest_catalog(baseline: Baseline, rest_catalog: Catalog) -> None:
    # The REST server checks each commit's requirements against the table's current metadata and
    # answers a lost race with 409 (CommitFailedException), which write-audit-publish retries.
    home = baseline.restore()
    name = "concurrency"
    props = {"type": "rest", "uri": rest_catalog.properties["uri"]}
    on_rest = _registered(home, name, props, rest_catalog)
    _assert_all_rows_once(on_rest, baseline, run_at_once(on_rest, RUNS))


# ------------------------------------------------------------------------------ retries running out


@pytest.fixture
def table(tmp_path: Path) -> Table:
    catalog = RetryingSqlCatalog("t", **embedded_default(tmp_path))
    spec = bronze_table(TABLES["region"])
    ensure_tables(catalog, [spec])
    return catalog.load_table(spec.identifier)


def _rows(table: Table, keys: list[str]) -> pa.Table:
    schema = schema_to_pyarrow(table.schema(), include_field_ids=False)
    return pa.Table.from_pylist([{"r_regionkey": k, "_batch_date": PENDING[0]} for k in keys], schema=schema)


def test_a_write_that_keeps_conflicting_fails_clearly_and_leaves_main_alone(table: Table) -> None:
    competitor = RetryingSqlCatalog("t", **{**table.catalog.properties}).load_table(table.name())
    wins = 0

    def concurrent_writer_wins() -> None:  # another run publishes just before each of our publishes
        nonlocal wins
        wins += 1
        competitor.refresh()
        competitor.append(_rows(competitor, [f"other-{wins}"]))

    with pytest.raises(CommitConflictError, match=r"bronze\.region: still conflicting after 4 attempts"):
        write_audited(
            table,
            _rows(table, ["mine"]),
            replace=batch_filter([PENDING[0]]),
            branch=f"{AUDIT_BRANCH_PREFIX}loser",
            properties={PROP_BATCHES: PENDING[0].isoformat()},
            audit=None,
            before_publish=concurrent_writer_wins,
        )
    table.refresh()
    keys = sorted(table.scan().to_arrow().column("r_regionkey").to_pylist())
    assert keys == [f"other-{i}" for i in range(1, 5)]
    assert set(table.metadata.refs) == {"main"}


def _branch_behind(catalog: Catalog) -> tuple[Table, Table, int]:
    """Our audit branch cut from ``main``, then another run's commit to ``main`` of the same table."""
    spec = bronze_table(TABLES["region"])
    ensure_tables(catalog, [spec])
    mine, theirs = catalog.load_table(spec.identifier), catalog.load_table(spec.identifier)
    base = mine.metadata.current_snapshot_id
    assert base is not None
    mine.manage_snapshots().create_branch(base, "audit-mine").commit()
    theirs.append(_rows(theirs, ["theirs"]))  # takes the next sequence number
    return mine, theirs, base


def _assert_rebuilt(mine: Table, theirs: Table, base: int) -> None:
    mine.append(_rows(mine, ["mine"]), branch="audit-mine")  # rebuilt on the new metadata
    head = mine.metadata.snapshot_by_id(mine.metadata.refs["audit-mine"].snapshot_id)
    assert head is not None and head.parent_snapshot_id == base
    assert mine.scan(snapshot_id=head.snapshot_id).to_arrow().column("r_regionkey").to_pylist() == ["mine"]
    assert theirs.scan().to_arrow().column("r_regionkey").to_pylist() == ["theirs"]


def test_a_snapshot_built_on_metadata_another_run_advanced_is_rebuilt(tmp_path: Path) -> None:
    # pyiceberg's SqlCatalog applies a commit to the current metadata: a snapshot staged on our
    # branch after another run committed to the table (another branch, or main) carries a stale
    # sequence number, and pyiceberg raises ValueError instead of a retryable conflict.
    (tmp_path / "plain" / "warehouse").mkdir(parents=True)
    mine, _, _ = _branch_behind(SqlCatalog("t", **embedded_default(tmp_path / "plain")))
    with pytest.raises(ValueError, match="Cannot add snapshot with sequence number"):
        mine.append(_rows(mine, ["mine"]), branch="audit-mine")
    (tmp_path / "retrying" / "warehouse").mkdir(parents=True)
    _assert_rebuilt(*_branch_behind(RetryingSqlCatalog("t", **embedded_default(tmp_path / "retrying"))))


@pytest.mark.integration
def test_a_snapshot_built_on_metadata_another_run_advanced_is_rebuilt_on_rest(rest_catalog: Catalog) -> None:
    # A REST server applies the commit to the current metadata too, and refuses the stale sequence
    # number as a bad request (400), not as a conflict (409).
    mine, _, _ = _branch_behind(rest_catalog)
    with pytest.raises(BadRequestError, match="Cannot add snapshot with sequence number"):
        mine.append(_rows(mine, ["mine"]), branch="audit-mine")
    rest_catalog.drop_table("bronze.region")
    _assert_rebuilt(*_branch_behind(RetryingRestCatalog("t", **rest_catalog.properties)))
