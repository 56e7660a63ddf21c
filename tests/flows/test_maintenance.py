"""The maintenance flow on the real Prefect engine and a real SqlCatalog."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.client.schemas.objects import Artifact, State
from pyiceberg.catalog import Catalog

from flows.daily import daily
from flows.maintenance import main, maintenance, writes_in_flight
from flows.runner import RunFailed
from lakehouse.catalog import open_catalog
from lakehouse.settings import Settings
from tasks.maintenance import TableState
from tests.declared import REGISTRY
from tests.flows.conftest import Landing

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]
AUDIT = "audit-in-flight"


def rows(catalog: Catalog, table_id: str, snapshot_id: int | None = None) -> pl.DataFrame:
    """Every row of a table (load metadata included), sorted: equal iff the same multiset of rows."""
    frame = pl.from_arrow(catalog.load_table(table_id).scan(snapshot_id=snapshot_id).to_arrow())
    assert isinstance(frame, pl.DataFrame)
    return frame.sort(frame.columns, nulls_last=True)


def data_files(catalog: Catalog, table_id: str, snapshot_id: int | None = None) -> set[str]:
    table = catalog.load_table(table_id)
    return {t.file.file_path for t in table.scan(snapshot_id=snapshot_id).plan_files()}


def local(location: str) -> Path:
    return Path(location.removeprefix("file://").removeprefix("file:"))


def artifacts_of(state: State[Any]) -> list[Artifact]:
    flow_run_id = state.state_details.flow_run_id
    assert isinstance(flow_run_id, UUID)
    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )


def test_maintenance_compacts_expires_and_removes_orphans_without_changing_content(
    clean_landing: Landing,
    use_home: Callable[[Landing], Catalog],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LAKEHOUSE_CHUNK_DAYS", "3")  # two commits per table after the empty one
    catalog = use_home(clean_landing)
    daily()
    tables = [t.identifier for t in REGISTRY.definitions()]

    # an abandoned write (e.g. Spark files whose commit never happened) left a data file behind
    orders = catalog.load_table("silver.orders")
    abandoned = local(orders.location()) / "data" / "abandoned-write-00000.parquet"
    pq.write_table(orders.scan().to_arrow().slice(0, 3), abandoned)
    abandoned_bytes = abandoned.stat().st_size
    # a write still between audit and publish: its branch must keep its snapshot and files
    lineitem = catalog.load_table("silver.lineitem")
    base = lineitem.current_snapshot()
    assert base is not None
    lineitem.manage_snapshots().create_branch(base.snapshot_id, AUDIT).commit()
    lineitem.append(lineitem.scan().to_arrow().slice(0, 5), branch=AUDIT)
    audit_head = catalog.load_table("silver.lineitem").metadata.refs[AUDIT].snapshot_id
    audit_rows = rows(catalog, "silver.lineitem", audit_head)
    audit_files = data_files(catalog, "silver.lineitem", audit_head)

    before = {t: rows(catalog, t) for t in tables}
    files_before = {t: len(data_files(catalog, t)) for t in tables}
    assert max(files_before.values()) >= 2

    state = maintenance(expire_older_than="0s", retain_last=1, orphan_older_than="0s", return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()

    for table_id in tables:
        assert rows(catalog, table_id).equals(before[table_id]), table_id
        files_after = len(data_files(catalog, table_id))
        if files_before[table_id] > 1:
            assert files_after < files_before[table_id], table_id
        table = catalog.load_table(table_id)
        current = table.current_snapshot()
        assert current is not None
        kept = {s.snapshot_id for s in table.metadata.snapshots}
        assert kept == {current.snapshot_id} | ({audit_head} if table_id == "silver.lineitem" else set())
    assert sum(len(data_files(catalog, t)) for t in tables) < sum(files_before.values())
    assert not abandoned.exists()
    # the open audit branch is untouched: same head, same rows, files still on disk
    assert catalog.load_table("silver.lineitem").metadata.refs[AUDIT].snapshot_id == audit_head
    assert rows(catalog, "silver.lineitem", audit_head).equals(audit_rows)
    assert all(local(f).exists() for f in audit_files)

    by_op = {(r.table, r.operation): r for r in summary.operations}
    assert by_op["silver.orders", "compact"].data_files_after == 1
    assert (by_op["silver.orders", "expire"].snapshots_expired or 0) >= 2
    orphans = by_op["silver.orders", "remove-orphans"]
    assert (orphans.files_deleted, orphans.bytes_reclaimed) == (1, abandoned_bytes)
    assert sum(r.bytes_reclaimed or 0 for r in summary.operations) > 0

    [artifact] = artifacts_of(state)
    assert artifact.key == "maintenance" and artifact.type == "markdown"
    assert isinstance(artifact.data, str)
    assert "| silver.orders | compact |" in artifact.data and "snapshot(s) expired" in artifact.data

    # the promoted-batch watermark survived compaction: nothing is pending
    snapshots = {t: catalog.load_table(t).current_snapshot() for t in tables}
    assert daily().batches == []
    assert {t: catalog.load_table(t).current_snapshot() for t in tables} == snapshots


SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("name", pa.string())])


def small_table(catalog: Catalog, table_id: str, commits: int) -> None:
    table = catalog.create_table(table_id, SCHEMA)
    for i in range(commits):
        table.append(pa.table({"id": [i], "name": [f"n{i}"]}, schema=SCHEMA))


def test_a_failing_table_fails_the_run_but_not_the_others_and_dry_run_changes_nothing() -> None:
    catalog = open_catalog(Settings())
    catalog.create_namespace("silver")
    small_table(catalog, "silver.healthy", 3)
    small_table(catalog, "silver.broken", 3)
    broken = catalog.load_table("silver.broken")
    local(next(iter(data_files(catalog, "silver.broken")))).unlink()  # a data file went missing
    stray = local(broken.location()) / "data" / "stray.parquet"
    pq.write_table(pa.table({"id": [1]}), stray)
    tables = ["silver.healthy", "silver.broken"]
    snapshots = {t: catalog.load_table(t).current_snapshot() for t in tables}

    dry = maintenance(tables=tables, dry_run=True, orphan_older_than="0s", return_state=True)
    assert dry.is_completed(), dry.message
    assert {t: catalog.load_table(t).current_snapshot() for t in tables} == snapshots
    assert stray.exists()
    [report] = artifacts_of(dry)
    assert isinstance(report.data, str) and "would delete 1 file(s)" in report.data

    with pytest.raises(RunFailed, match=r"silver\.broken compact") as failure:
        maintenance(tables=tables, orphan_older_than="0s")
    assert "silver.healthy" not in str(failure.value)
    assert len(data_files(catalog, "silver.healthy")) == 1  # the other table was compacted
    assert not stray.exists()  # later operations on the failing table still ran


def test_command_line_rejects_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--expire-older-than", "a week"])
    assert exit_.value.code == 2 and "bad duration" in capsys.readouterr().err
    assert main(["--tables", "silver.nope"]) == 1


def test_only_recent_audit_branches_count_as_writes_in_flight() -> None:
    now = datetime(2024, 1, 31, 12, tzinfo=UTC)

    def ms(age: timedelta) -> int:
        return int((now - age).timestamp() * 1000)

    state = TableState(
        "silver.orders",
        data_files=3,
        snapshots=4,
        audit_branches={"audit-new": ms(timedelta(minutes=5)), "audit-stale": ms(timedelta(days=4))},
        file_sizes={},
    )
    assert writes_in_flight(state, timedelta(days=3), now) == ["audit-new"]
    assert writes_in_flight(state, timedelta(0), now) == []
