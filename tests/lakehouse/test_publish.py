"""Write-audit-publish against real catalogs: a SqlCatalog on SQLite and an Iceberg REST catalog."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.io.pyarrow import schema_to_pyarrow
from pyiceberg.table import Table, TableProperties

from lakehouse.catalog import ensure_tables
from lakehouse.errors import AuditFailedError, CommitConflictError
from lakehouse.files import batch_filter
from lakehouse.publish import AUDIT_BRANCH_PREFIX, Staged, promoted, write_audited
from lakehouse.tables import PROP_BATCHES, PROP_RUN_ID, bronze_table
from tests.declared import TABLES

D1, D2 = date(1995, 1, 1), date(1995, 1, 2)


@pytest.fixture
def table(any_catalog: Catalog) -> Table:
    spec = bronze_table(TABLES["region"])
    ensure_tables(any_catalog, [spec])
    return any_catalog.load_table(spec.identifier)


def _rows(table: Table, batch: date, keys: list[str]) -> pa.Table:
    schema = schema_to_pyarrow(table.schema(), include_field_ids=False)
    return pa.Table.from_pylist([{"r_regionkey": k, "_batch_date": batch} for k in keys], schema=schema)


def _write(table: Table, batch: date, keys: list[str], audit=None, run: str = "r1") -> Staged:  # type: ignore[no-untyped-def]
    return write_audited(
        table,
        _rows(table, batch, keys),
        replace=batch_filter([batch]),
        branch=AUDIT_BRANCH_PREFIX + run,
        properties={PROP_RUN_ID: run, PROP_BATCHES: batch.isoformat()},
        audit=audit,
    )


def _keys(table: Table) -> list[str]:
    table.refresh()
    return sorted(table.scan().to_arrow().column("r_regionkey").to_pylist())


def test_publish_moves_main_and_stamps_cumulative_watermark(table: Table) -> None:
    staged = _write(table, D1, ["1", "2"])
    _write(table, D2, ["3"], run="r2")
    assert _keys(table) == ["1", "2", "3"]
    assert promoted(table) == {"1995-01-01", "1995-01-02"}
    assert table.snapshot_by_id(staged.snapshot_id) is not None
    assert not [r for r in table.metadata.refs if r.startswith(AUDIT_BRANCH_PREFIX)]
    # rerunning a batch replaces it: no duplicates
    _write(table, D1, ["1", "2"], run="r3")
    assert _keys(table) == ["1", "2", "3"]


def test_failed_audit_leaves_main_untouched_and_removes_branch(table: Table) -> None:
    _write(table, D1, ["1"])
    before = table.current_snapshot()

    def reject(t: Table, s: Staged) -> None:
        # the audit sees the branch snapshot, not main
        assert s.snapshot_id != before.snapshot_id  # type: ignore[union-attr]
        raise AuditFailedError("bronze.region", "bad data")

    with pytest.raises(AuditFailedError):
        _write(table, D2, ["9"], audit=reject, run="r2")
    table.refresh()
    assert table.current_snapshot() == before
    assert list(table.metadata.refs) == ["main"]
    assert _keys(table) == ["1"]


def test_concurrent_commit_during_audit_is_retried_without_losing_either_write(table: Table) -> None:
    _write(table, D1, ["1"])
    calls = []

    def concurrent_writer(t: Table, s: Staged) -> None:
        calls.append(s.base_snapshot_id)
        if len(calls) == 1:  # another run publishes to main while we audit
            _write(table, date(1995, 2, 1), ["5"], run="other")

    _write(table, D2, ["2"], audit=concurrent_writer, run="r2")
    assert len(calls) == 2 and calls[0] != calls[1]
    assert _keys(table) == ["1", "2", "5"]
    assert promoted(table) == {"1995-01-01", "1995-01-02", "1995-02-01"}


def test_conflicts_that_never_stop_raise_a_clear_error(table: Table) -> None:
    def always_conflict(t: Table, s: Staged) -> None:
        _write(table, date(1995, 3, 1), ["7"], run=f"other-{s.base_snapshot_id}")

    with pytest.raises(CommitConflictError, match="still conflicting after 4 attempts"):
        _write(table, D2, ["2"], audit=always_conflict, run="r2")
    assert "2" not in _keys(table)


def test_derived_data_is_recomputed_on_the_new_main_after_a_conflict(table: Table) -> None:
    """A merge computed from main must be redone when another run published meanwhile (no lost update)."""
    _write(table, D1, ["1"])
    bases: list[int] = []

    def merged(base: int) -> pa.Table:
        bases.append(base)
        current = table.scan(snapshot_id=base).to_arrow().column("r_regionkey").to_pylist()
        return _rows(table, D1, sorted({*current, "2"}))

    def concurrent_writer(t: Table, s: Staged) -> None:
        if len(bases) == 1:
            _write(table, D1, ["1", "9"], run="other")

    write_audited(
        table,
        merged,
        replace=batch_filter([D1]),
        branch=AUDIT_BRANCH_PREFIX + "r2",
        properties={PROP_RUN_ID: "r2", PROP_BATCHES: D1.isoformat()},
        audit=concurrent_writer,
    )
    assert len(bases) == 2 and bases[0] != bases[1]
    assert _keys(table) == ["1", "2", "9"]


def _dictionary_page_bytes(table: Table) -> int:
    """Bytes of the largest dictionary page of ``r_comment`` in the data files of ``main``."""
    import pyarrow.parquet as pq

    largest = 0
    for task in table.refresh().scan().plan_files():
        with table.io.new_input(task.file.file_path).open() as data:
            meta = pq.ParquetFile(data).metadata
        column = meta.schema.names.index("r_comment")
        for group in range(meta.num_row_groups):
            chunk = meta.row_group(group).column(column)
            if chunk.has_dictionary_page:
                largest = max(largest, chunk.data_page_offset - chunk.dictionary_page_offset)
    return largest


def test_data_files_are_encoded_by_the_tables_parquet_properties(table: Table) -> None:
    # 200,000 distinct 24-character comments: a 4.8 MB dictionary if nothing bounded it
    schema = schema_to_pyarrow(table.schema(), include_field_ids=False)
    rows = pa.Table.from_pylist(
        [{"r_regionkey": "1", "r_comment": f"{n:08d} {'x' * 15}", "_batch_date": D1} for n in range(200_000)],
        schema=schema,
    )

    def write(run: str, **properties: str) -> int:
        with table.transaction() as tx:  # the user's to change
            tx.set_properties(properties)
        write_audited(
            table,
            rows,
            replace=batch_filter([D1]),
            branch=AUDIT_BRANCH_PREFIX + run,
            properties={PROP_RUN_ID: run, PROP_BATCHES: D1.isoformat()},
            audit=None,
        )
        return _dictionary_page_bytes(table)

    # ensure_tables' default
    assert table.properties[TableProperties.PARQUET_DICT_SIZE_BYTES] == str(64 * 1024)
    # uncompressed (Iceberg's name, not pyarrow's): page offsets measure the dictionary itself. The
    # bound is checked after each batch of 20,000 values (480 KB here), so it is overshot by one.
    assert write("r1", **{TableProperties.PARQUET_COMPRESSION: "uncompressed"}) < 1024 * 1024
    assert write("r2", **{TableProperties.PARQUET_DICT_SIZE_BYTES: str(8 * 1024 * 1024)}) > 4 * 1024 * 1024
