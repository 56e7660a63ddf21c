"""MERGE by key against a real SqlCatalog on SQLite: rows, pruned files, one audited snapshot."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.io.pyarrow import schema_to_pyarrow
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.types import DateType, LongType, NestedField, StringType

from lakehouse.catalog import ensure_tables
from lakehouse.errors import AuditFailedError
from lakehouse.merge import MergeResult, merge
from lakehouse.publish import AUDIT_BRANCH_PREFIX, Audit, Staged, promoted
from lakehouse.tables import BATCH_DATE, GOLD, PROP_BATCHES, PROP_RUN_ID, TableDef

JAN, MAR = date(1995, 1, 10), date(1995, 3, 10)
SPEC = TableDef(
    GOLD,
    "merged",
    Schema(
        NestedField(1, "k", LongType(), required=False),
        NestedField(2, "v", StringType(), required=False),
        NestedField(3, BATCH_DATE, DateType(), required=False),
    ),
    partition="batch_month",
)


@pytest.fixture
def table(tmp_path: Path) -> Table:
    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db", warehouse=f"file://{tmp_path}/wh")
    ensure_tables(catalog, [SPEC])
    return catalog.load_table(SPEC.identifier)


def arrow(table: Table, rows: list[tuple[int, str, date]]) -> pa.Table:
    schema = schema_to_pyarrow(table.schema(), include_field_ids=False)
    return pa.Table.from_pylist([{"k": k, "v": v, BATCH_DATE: d} for k, v, d in rows], schema=schema)


def upsert(table: Table, rows: list[tuple[int, str, date]], audit: Audit | None = None) -> MergeResult:
    batches = ",".join(sorted({d.isoformat() for _, _, d in rows}))
    return merge(
        table,
        arrow(table, rows),
        ["k"],
        branch=AUDIT_BRANCH_PREFIX + "r1",
        properties={PROP_RUN_ID: "r1", PROP_BATCHES: batches},
        audit=audit,
    )


def content(table: Table) -> list[tuple[int, str, date]]:
    table.refresh()
    return sorted((r["k"], r["v"], r[BATCH_DATE]) for r in table.scan().to_arrow().to_pylist())


def files(table: Table) -> set[str]:
    table.refresh()
    return {t.file.file_path for t in table.scan().plan_files()}


def test_inserts_updates_and_no_delete_by_absence(table: Table) -> None:
    first = upsert(table, [(k, "a", JAN) for k in range(1, 7)])
    assert (first.stats.keys_inserted, first.stats.keys_updated) == (6, 0)
    result = upsert(table, [(2, "b", JAN), (7, "b", JAN)])
    assert content(table) == sorted([(k, "a", JAN) for k in (1, 3, 4, 5, 6)] + [(2, "b", JAN), (7, "b", JAN)])
    stats = result.stats
    assert (stats.rows_in, stats.keys_updated, stats.keys_inserted, stats.rows_replaced) == (2, 1, 1, 1)


def test_a_key_moves_across_partitions_without_a_duplicate(table: Table) -> None:
    upsert(table, [(1, "a", JAN), (2, "a", JAN), (3, "a", MAR)])
    upsert(table, [(1, "moved", MAR), (3, "moved back", JAN)])
    assert content(table) == [(1, "moved", MAR), (2, "a", JAN), (3, "moved back", JAN)]
    partitions = table.inspect.partitions().to_pylist()
    assert sorted(p["record_count"] for p in partitions) == [1, 2]


def test_a_key_can_replace_several_rows(table: Table) -> None:
    # e.g. an SCD2 chain merged by its business key: the new chain replaces the old one whole
    table.append(arrow(table, [(1, "v1", JAN), (1, "v2", MAR), (2, "x", JAN)]))
    upsert(table, [(1, "v1", JAN), (1, "v1.5", date(1995, 2, 1)), (1, "v2", MAR)])
    assert content(table) == [(1, "v1", JAN), (1, "v1.5", date(1995, 2, 1)), (1, "v2", MAR), (2, "x", JAN)]


def test_only_files_that_can_hold_the_keys_are_read_and_only_matching_ones_rewritten(table: Table) -> None:
    evens = [(k, "a", JAN) for k in range(0, 1000, 2)]
    table.append(arrow(table, evens))
    table.append(arrow(table, [(k, "b", JAN) for k in range(1000, 2000)]))
    table.append(arrow(table, [(k, "c", JAN) for k in range(2000, 3000)]))
    before = files(table)
    assert len(before) == 3

    # within the even file's key range but not in it: read, not rewritten; the others pruned
    miss = upsert(table, [(1, "new", JAN), (3, "new", JAN)]).stats
    assert (miss.files_read, miss.files_rewritten, miss.files_pruned) == (1, 0, 2)
    assert before < files(table)

    # more keys than pyiceberg's In-filter limit (200) still prune by bounds
    unchanged = files(table)
    many = upsert(table, [(k, "new", JAN) for k in range(1001, 1601, 2)]).stats
    assert (many.rows_in, many.files_read, many.files_rewritten) == (300, 1, 1)
    survivors = files(table)
    assert len(unchanged - survivors) == 1 and len(survivors - unchanged) == 2  # rewritten + incoming

    # 500 and 2500 span the rewritten middle file's range, yet no key falls in it: pruned by bounds
    skip = upsert(table, [(500, "new", JAN), (2500, "new", JAN)]).stats
    assert (skip.files_read, skip.files_rewritten) == (2, 2)
    rows = content(table)
    assert len(rows) == 500 + 1000 + 1000 + 2
    assert sum(v == "new" for _, v, _ in rows) == 2 + 2 + 300


def test_a_merge_is_one_snapshot_on_main_stamped_and_audited_on_its_branch(table: Table) -> None:
    upsert(table, [(1, "a", JAN)])
    table.refresh()
    base, count = table.current_snapshot(), len(table.snapshots())
    assert base is not None
    audited: list[Staged] = []
    result = upsert(table, [(1, "b", MAR), (2, "b", MAR)], audit=lambda t, s: audited.append(s))
    table.refresh()
    head = table.current_snapshot()
    assert head is not None and head.summary is not None
    assert head.snapshot_id == result.staged.snapshot_id == audited[0].snapshot_id
    assert head.parent_snapshot_id == base.snapshot_id
    assert len(table.snapshots()) == count + 1
    assert head.summary.additional_properties[PROP_RUN_ID] == "r1"
    assert promoted(table) == {JAN.isoformat(), MAR.isoformat()}
    assert list(table.metadata.refs) == ["main"]


def test_a_rejected_merge_leaves_main_untouched(table: Table) -> None:
    upsert(table, [(1, "a", JAN)])
    table.refresh()
    before = table.current_snapshot()

    def reject(t: Table, s: Staged) -> None:
        raise AuditFailedError(s.table, "bad")

    with pytest.raises(AuditFailedError):
        upsert(table, [(1, "b", JAN)], audit=reject)
    table.refresh()
    assert table.current_snapshot() == before
    assert list(table.metadata.refs) == ["main"]
    assert content(table) == [(1, "a", JAN)]


def test_a_concurrent_commit_replans_on_the_new_main(table: Table) -> None:
    upsert(table, [(1, "a", JAN), (2, "a", JAN)])
    attempts: list[Staged] = []

    def meanwhile(t: Table, s: Staged) -> None:
        if not attempts:  # another writer updates key 2 while the first attempt is audited
            merge(t, arrow(t, [(2, "other", JAN)]), ["k"], branch="audit-other", properties={}, audit=None)
        attempts.append(s)

    upsert(table, [(1, "b", JAN)], audit=meanwhile)
    assert len(attempts) == 2
    assert content(table) == [(1, "b", JAN), (2, "other", JAN)]


def test_bad_keys_are_refused(table: Table) -> None:
    with pytest.raises(ValueError, match="null"):
        upsert(table, [(None, "a", JAN)])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="not columns"):
        merge(table, arrow(table, []), ["nope"], branch="audit-x", properties={}, audit=None)


def test_rows_computed_from_the_planned_snapshot_are_recomputed_on_a_retry(table: Table) -> None:
    upsert(table, [(1, "a", JAN)])
    bases: list[int] = []

    def appended(base: int) -> pa.Table:  # e.g. an SCD2 chain derived from the table itself
        bases.append(base)
        (current,) = table.scan(snapshot_id=base).to_arrow().column("v").to_pylist()
        return arrow(table, [(1, current + "+", JAN)])

    def meanwhile(t: Table, s: Staged) -> None:
        if len(bases) == 1:
            merge(t, arrow(t, [(1, "b", JAN)]), ["k"], branch="audit-other", properties={}, audit=None)

    merge(table, appended, ["k"], branch="audit-r1", properties={}, audit=meanwhile)
    assert content(table) == [(1, "b+", JAN)]
    assert len(set(bases)) == 2
