"""Fast tests of the reliability building blocks: fault points, stale branches, catalog locks, redaction."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.io.pyarrow import schema_to_pyarrow
from pyiceberg.table import Table

from lakehouse.catalog import (
    RetryingSqlCatalog,
    embedded_default,
    ensure_tables,
    open_catalog,
    redact,
    secret_values,
)
from lakehouse.errors import CatalogBusyError, CatalogUnavailableError, ConfigurationError
from lakehouse.faults import FAULT_POINT_ENV, FAULT_POINTS, fault_point, parse_fault_spec
from lakehouse.files import batch_filter
from lakehouse.maintenance import parse_duration
from lakehouse.publish import (
    AUDIT_BRANCH_PREFIX,
    DEFAULT_STALE_BRANCH_AGE,
    remove_stale_branches,
    stage,
    stale_branches,
)
from lakehouse.settings import Settings
from lakehouse.tables import PROP_BATCHES, bronze_table
from tests.declared import TABLES

ROOT = Path(__file__).resolve().parents[2]
D1 = date(1995, 1, 1)

# ------------------------------------------------------------------------------------ fault points


def test_fault_spec_parsing() -> None:
    assert parse_fault_spec("stage.committed") == ("stage.committed", 1)
    assert parse_fault_spec("wap.audited:3") == ("wap.audited", 3)
    for bad in ("nope", "stage.committed:0", "stage.committed:x"):
        with pytest.raises(ConfigurationError):
            parse_fault_spec(bad)


def test_fault_point_is_a_no_op_without_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FAULT_POINT_ENV, raising=False)
    for name in FAULT_POINTS:
        fault_point(name)  # still alive
    monkeypatch.setenv(FAULT_POINT_ENV, "publish.committed:5")
    fault_point("stage.committed")  # another point: alive


@pytest.mark.parametrize(("nth", "killed"), [(2, True), (3, False)])
def test_fault_point_kills_the_process_on_its_nth_hit(nth: int, killed: bool) -> None:
    code = (
        "from lakehouse.faults import fault_point\n"
        "for _ in range(2):\n"
        "    fault_point('stage.committed')\n"
        "print('survived')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", FAULT_POINT_ENV: f"stage.committed:{nth}"},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if killed:
        assert done.returncode == -9
        assert "survived" not in done.stdout
        assert "fault point stage.committed:2 hit" in done.stderr
    else:
        assert done.returncode == 0, done.stderr
        assert "survived" in done.stdout


# ----------------------------------------------------------------------------------- stale branches


@pytest.fixture
def table(tmp_path: Path) -> Table:
    catalog = RetryingSqlCatalog("t", **embedded_default(tmp_path))
    spec = bronze_table(TABLES["region"])
    ensure_tables(catalog, [spec])
    return catalog.load_table(spec.identifier)


def _stage(table: Table, branch: str) -> None:
    schema = schema_to_pyarrow(table.schema(), include_field_ids=False)
    rows = pa.Table.from_pylist([{"r_regionkey": "1", "_batch_date": D1}], schema=schema)
    stage(table, rows, replace=batch_filter([D1]), branch=branch, properties={PROP_BATCHES: D1.isoformat()})


def _ms(when: int) -> datetime:
    return datetime.fromtimestamp(when / 1000, UTC)


def test_stale_branches_are_told_from_in_flight_ones_by_their_creation(table: Table) -> None:
    main_ms = table.metadata.last_updated_ms
    time.sleep(0.05)
    # cut from main's snapshot (old) without a staged write yet: a run in flight, or one that died
    table.manage_snapshots().create_branch(table.metadata.current_snapshot_id, "audit-cut").commit()
    table.manage_snapshots().create_tag(table.metadata.current_snapshot_id, "audit-tag").commit()
    table.manage_snapshots().create_branch(table.metadata.current_snapshot_id, "other").commit()
    cut_ms = table.metadata.last_updated_ms
    time.sleep(0.05)
    _stage(table, "audit-staged")
    staged_ms = table.metadata.last_updated_ms
    assert main_ms < cut_ms < staged_ms

    between = _ms((main_ms + cut_ms) // 2)
    # the head of audit-cut is older than the cutoff, but the branch itself is younger: kept
    assert stale_branches(table, timedelta(0), now=between) == []
    assert stale_branches(table, timedelta(0), now=_ms(cut_ms + 1)) == ["audit-cut"]
    assert stale_branches(table, timedelta(hours=1)) == []
    # tags and other branches are never touched
    removed = remove_stale_branches(table, timedelta(0))
    assert removed == ["audit-cut", "audit-staged"]
    assert set(table.metadata.refs) == {"main", "audit-tag", "other"}
    assert remove_stale_branches(table, timedelta(0)) == []


def test_ensure_tables_removes_stale_branches_only(tmp_path: Path) -> None:
    catalog = RetryingSqlCatalog("t", **embedded_default(tmp_path))
    spec = bronze_table(TABLES["region"])
    ensure_tables(catalog, [spec])
    table = catalog.load_table(spec.identifier)
    _stage(table, f"{AUDIT_BRANCH_PREFIX}dead")
    ensure_tables(catalog, [spec])  # default age: the branch is seconds old, kept
    assert f"{AUDIT_BRANCH_PREFIX}dead" in catalog.load_table(spec.identifier).metadata.refs
    ensure_tables(catalog, [spec], stale_branch_age=timedelta(0))
    assert set(catalog.load_table(spec.identifier).metadata.refs) == {"main"}


def test_default_stale_branch_age_matches_the_setting() -> None:
    assert parse_duration(Settings().stale_branch_age) == DEFAULT_STALE_BRANCH_AGE


# ------------------------------------------------------------------------------------ catalog locks


def test_embedded_catalog_waits_for_locks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path))
    catalog = open_catalog(Settings())
    assert isinstance(catalog, RetryingSqlCatalog)
    with catalog.engine.connect() as con:  # SQLAlchemy handed the URI's timeout to sqlite3.connect
        assert con.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000


def _locked_catalog(tmp_path: Path) -> tuple[RetryingSqlCatalog, sqlite3.Connection]:
    props = embedded_default(tmp_path)
    catalog = RetryingSqlCatalog("t", **{**props, "uri": props["uri"].replace("timeout=30", "timeout=0.05")})
    catalog.create_namespace("bronze")
    holder = sqlite3.connect(tmp_path / "catalog.db", isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    return catalog, holder


def test_a_lock_held_too_long_is_a_transient_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("lakehouse.catalog.LOCK_BACKOFF_S", 0.01)
    catalog, holder = _locked_catalog(tmp_path)
    try:
        with pytest.raises(CatalogBusyError, match="stayed locked after 5 attempts"):
            catalog.list_namespaces()
    finally:
        holder.rollback()
        holder.close()


def test_a_lock_released_meanwhile_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("lakehouse.catalog.LOCK_BACKOFF_S", 0.1)
    catalog, holder = _locked_catalog(tmp_path)

    def release() -> None:
        time.sleep(0.3)
        holder.rollback()

    thread = threading.Thread(target=release)
    thread.start()
    try:
        catalog.create_namespace("silver")  # a write: fails on the lock, then succeeds
    finally:
        thread.join()
        holder.close()
    assert ("silver",) in catalog.list_namespaces()


# ---------------------------------------------------------------------------------------- redaction


def test_secret_values_and_redaction() -> None:
    props = {
        "uri": "postgresql+psycopg2://role:p%40ss-canary@127.0.0.1:5432/iceberg",
        "s3.secret-access-key": "sk-canary",
        "s3.access-key-id": "ak-canary",
        "warehouse": "s3://warehouse/",
    }
    found = secret_values(props)
    assert {"p%40ss-canary", "p@ss-canary", "sk-canary", "ak-canary"} <= found
    assert "s3://warehouse/" not in found
    assert redact("x p@ss-canary y sk-canary", found) == "x *** y ***"


def _configured(monkeypatch: pytest.MonkeyPatch, uri: str) -> Settings:
    monkeypatch.setenv("PYICEBERG_CATALOG__CANARY__URI", uri)
    return Settings(catalog="canary")


def test_a_bad_uri_is_a_configuration_error_without_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    # pyiceberg quotes the whole URI in "Could not infer the catalog type from the uri: ..."
    settings = _configured(monkeypatch, "postgres://role:canary-pw-1@127.0.0.1:5432/iceberg")
    with pytest.raises(ConfigurationError) as raised:
        open_catalog(settings)
    assert "canary-pw-1" not in str(raised.value)
    assert "***" in str(raised.value)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_an_unreachable_database_is_reported_without_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _configured(monkeypatch, "postgresql+psycopg2://role:canary-pw-2@127.0.0.1:1/iceberg")
    with pytest.raises(CatalogUnavailableError) as raised:
        open_catalog(settings)
    assert "canary-pw-2" not in str(raised.value)
    assert "127.0.0.1" in str(raised.value)
    assert raised.value.__suppress_context__
