from __future__ import annotations

import hashlib
import os
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.transforms import MonthTransform
from pyiceberg.types import DateType, DecimalType, LongType, NestedField, StringType

from lakehouse.errors import CommitConflictError, MaintenanceError
from lakehouse.maintenance import (
    compact,
    expire_snapshots,
    parse_duration,
    parse_size,
    partitions,
    referenced_files,
    remove_orphan_files,
    rollback_to_snapshot,
    rollback_to_time,
)
from lakehouse.tables import BATCH_DATE, PROP_PROMOTED, PROP_RUN_ID

SCHEMA = Schema(
    NestedField(1, "id", LongType(), required=False),
    NestedField(2, "name", StringType(), required=False),
    NestedField(3, "amount", DecimalType(15, 2), required=False),
    NestedField(4, BATCH_DATE, DateType(), required=False),
)
ARROW = pa.schema(
    [
        pa.field("id", pa.int64()),
        pa.field("name", pa.string()),
        pa.field("amount", pa.decimal128(15, 2)),
        pa.field(BATCH_DATE, pa.date32()),
    ]
)
BY_MONTH = PartitionSpec(PartitionField(4, 1000, MonthTransform(), "batch_month"))
MB = 1024 * 1024


@pytest.fixture
def catalog(any_catalog: Catalog) -> Catalog:
    any_catalog.create_namespace("silver")
    return any_catalog


def rows(start: int, n: int, day: date) -> pa.Table:
    ids = list(range(start, start + n))
    return pa.table(
        {
            "id": ids,
            "name": [f"name-{i}" for i in ids],
            "amount": [Decimal(i) / 100 for i in ids],
            BATCH_DATE: [day] * n,
        },
        schema=ARROW,
    )


def checksum(table: Table, snapshot_id: int | None = None) -> str:
    """Hash of the table's rows, sorted: equal iff the rows are the same multiset."""
    data = table.scan(snapshot_id=snapshot_id).to_arrow().sort_by([(c, "ascending") for c in ARROW.names])
    return hashlib.sha256(str(data.to_pylist()).encode()).hexdigest()


def data_files(table: Table) -> set[str]:
    return {t.file.file_path for t in table.scan().plan_files()}


def files_on_disk(table: Table) -> set[str]:
    root = Path(table.location().removeprefix("file://"))
    return {p.as_uri().replace("file:///", "file:/") for p in root.rglob("*") if p.is_file()}


def local(uri: str) -> Path:
    return Path(uri.removeprefix("file://"))


def age(path: Path, days: int) -> None:
    old = time.time() - days * 86400
    os.utime(path, (old, old))


def test_compaction_reduces_files_and_keeps_rows(catalog: Catalog) -> None:
    table = catalog.create_table("silver.t", SCHEMA)
    for i in range(5):
        props = {PROP_PROMOTED: "2024-01-01"} if i == 4 else {}
        table.append(rows(i * 10, 10, date(2024, 1, 1)), snapshot_properties=props)
    before, parent = checksum(table), table.current_snapshot()
    assert len(data_files(table)) == 5

    result = compact(table, target_file_bytes=MB, properties={PROP_RUN_ID: "r1"})

    table = catalog.load_table("silver.t")
    assert len(data_files(table)) == 1
    assert (result.files_removed, result.files_added, result.records) == (5, 1, 50)
    assert checksum(table) == before
    snapshot = table.current_snapshot()
    assert snapshot is not None and parent is not None and snapshot.summary is not None
    assert snapshot.snapshot_id == result.snapshot_id and snapshot.parent_snapshot_id == parent.snapshot_id
    assert snapshot.summary.operation.value == "replace"
    assert snapshot.summary[PROP_RUN_ID] == "r1"
    assert snapshot.summary[PROP_PROMOTED] == "2024-01-01"  # table state carried over
    assert snapshot.summary["total-records"] == "50"
    assert compact(table, target_file_bytes=MB).snapshot_id is None  # nothing left to do


def test_compaction_of_partitioned_table_with_files_of_both_engines(catalog: Catalog) -> None:
    table = catalog.create_table("silver.t", SCHEMA, partition_spec=BY_MONTH)
    for i in range(3):  # pyiceberg writes: each append adds one file per month
        table.append(
            pa.concat_tables([rows(i * 10, 5, date(2024, 1, 2 + i)), rows(500 + i * 10, 5, date(2024, 2, 1))])
        )
    # files written by another engine into the table location, then registered (as Spark's are)
    spark_dir = local(table.location()) / "data" / "spark"
    spark_dir.mkdir(parents=True)
    for month, day in ((1, date(2024, 1, 20)), (2, date(2024, 2, 20))):
        pq.write_table(rows(1000 * month, 7, day), spark_dir / f"part-{month}.parquet", compression="snappy")
    table.add_files([(spark_dir / f"part-{m}.parquet").as_uri() for m in (1, 2)])
    before = checksum(table)
    assert [(p.partition, p.files, p.records) for p in partitions(table)] == [
        ("batch_month=2024-01", 4, 22),
        ("batch_month=2024-02", 4, 22),
    ]

    result = compact(table, target_file_bytes=MB)

    table = catalog.load_table("silver.t")
    assert result.partitions == ("batch_month=2024-01", "batch_month=2024-02")
    assert [(p.partition, p.files, p.records) for p in partitions(table)] == [
        ("batch_month=2024-01", 1, 22),
        ("batch_month=2024-02", 1, 22),
    ]
    assert checksum(table) == before
    # each new file holds one partition (pruning still works)
    january = table.scan(row_filter=f"{BATCH_DATE} < '2024-02-01'").to_arrow()
    assert january.num_rows == 22


def test_compaction_of_selected_partition_only(catalog: Catalog) -> None:
    table = catalog.create_table("silver.t", SCHEMA, partition_spec=BY_MONTH)
    for i in range(3):
        table.append(
            pa.concat_tables([rows(i * 10, 5, date(2024, 1, 2)), rows(500 + i * 10, 5, date(2024, 2, 1))])
        )

    with pytest.raises(MaintenanceError, match="no partition 'batch_month=2023-01'"):
        compact(table, target_file_bytes=MB, partitions=["batch_month=2023-01"])
    compact(table, target_file_bytes=MB, partitions=["batch_month=2024-02"])

    assert [(p.partition, p.files) for p in partitions(catalog.load_table("silver.t"))] == [
        ("batch_month=2024-01", 3),
        ("batch_month=2024-02", 1),
    ]


def test_compaction_splits_into_target_sized_files(catalog: Catalog) -> None:
    table = catalog.create_table("silver.t", SCHEMA)
    for i in range(6):
        table.append(rows(i * 2000, 2000, date(2024, 1, 1)))
    sizes = [t.file.file_size_in_bytes for t in table.scan().plan_files()]
    target = sum(sizes) // 3

    compact(table, target_file_bytes=target)

    table = catalog.load_table("silver.t")
    assert 2 <= len(data_files(table)) <= 4
    assert table.scan().to_arrow().num_rows == 12000


def test_compaction_keeps_a_concurrent_append(catalog: Catalog) -> None:
    catalog.create_table("silver.t", SCHEMA)
    writer = catalog.load_table("silver.t")
    for i in range(4):
        writer.append(rows(i * 10, 10, date(2024, 1, 1)))
    compactor = catalog.load_table("silver.t")  # plans on this state
    writer.append(rows(100, 3, date(2024, 1, 2)))  # lands before the compaction commits
    appended = writer.current_snapshot()
    assert appended is not None

    result = compact(compactor, target_file_bytes=MB)

    table = catalog.load_table("silver.t")
    assert table.scan().to_arrow().num_rows == 43
    assert checksum(table) == checksum(table, appended.snapshot_id)
    snapshot = table.current_snapshot()
    assert snapshot is not None and snapshot.snapshot_id == result.snapshot_id
    assert snapshot.parent_snapshot_id == appended.snapshot_id  # rebuilt on the new head
    assert len(data_files(table)) == 2  # the compacted file and the concurrent append's


def test_compaction_conflicts_when_an_input_file_is_gone(catalog: Catalog) -> None:
    catalog.create_table("silver.t", SCHEMA)
    writer = catalog.load_table("silver.t")
    for i in range(3):
        writer.append(rows(i * 10, 10, date(2024, 1, 1)))
    compactor = catalog.load_table("silver.t")
    writer.overwrite(rows(900, 2, date(2024, 1, 3)))  # removes every input file

    with pytest.raises(CommitConflictError):
        compact(compactor, target_file_bytes=MB)

    table = catalog.load_table("silver.t")
    assert table.scan().to_arrow().num_rows == 2
    # the rewritten files of the failed attempt were removed
    data_on_disk = {f for f in files_on_disk(table) if f.endswith(".parquet")}
    assert len(data_on_disk) == 4  # 3 inputs (still in old snapshots) + the overwrite's


def test_orphan_removal_deletes_only_old_unreferenced_files(catalog: Catalog) -> None:
    table = catalog.create_table("silver.t", SCHEMA)
    for i in range(3):
        table.append(rows(i * 10, 10, date(2024, 1, 1)))
    root = local(table.location())
    for path in root.rglob("*"):
        age(path, 30)  # referenced files, however old, must stay
    old_orphan = root / "data" / "abandoned-commit.parquet"
    pq.write_table(rows(0, 1, date(2024, 1, 1)), old_orphan)
    age(old_orphan, 10)
    old_metadata_orphan = root / "metadata" / "stale-manifest.avro"
    old_metadata_orphan.write_bytes(b"x")
    age(old_metadata_orphan, 10)
    young_orphan = root / "data" / "in-flight.parquet"
    young_orphan.write_bytes(b"x")
    before = checksum(table)
    referenced_before = referenced_files(table)

    listed = remove_orphan_files(table, older_than=timedelta(days=3), dry_run=True)
    assert {local(f) for f in listed.orphan_files} == {old_orphan, old_metadata_orphan}
    assert old_orphan.exists() and listed.dry_run and listed.recent_skipped == 1

    result = remove_orphan_files(table, older_than=timedelta(days=3))

    assert {local(f) for f in result.orphan_files} == {old_orphan, old_metadata_orphan}
    assert not old_orphan.exists() and not old_metadata_orphan.exists() and young_orphan.exists()
    assert all(Path(p).exists() for p in referenced_before)
    assert checksum(catalog.load_table("silver.t")) == before


def test_expire_keeps_current_and_tagged_snapshots_and_reclaims_files(catalog: Catalog) -> None:
    table = catalog.create_table("silver.t", SCHEMA)
    table.append(rows(0, 10, date(2024, 1, 1)))
    tagged = table.current_snapshot()
    assert tagged is not None
    table.manage_snapshots().create_tag(tagged.snapshot_id, "v1").commit()
    (a_file,) = data_files(table)  # kept: the tagged snapshot reads it
    table.append(rows(100, 10, date(2024, 1, 2)))
    (b_file,) = data_files(table) - {a_file}  # only in snapshots to expire once overwritten
    table.overwrite(rows(200, 5, date(2024, 1, 3)))  # a delete and an append snapshot
    current = table.current_snapshot()
    assert current is not None
    keep = {tagged.snapshot_id, current.snapshot_id}
    expired_lists = [s.manifest_list for s in table.metadata.snapshots if s.snapshot_id not in keep]

    result = expire_snapshots(table, older_than=timedelta(0), retain_last=1)

    table = catalog.load_table("silver.t")
    assert {s.snapshot_id for s in table.metadata.snapshots} == keep
    assert len(result.expired_snapshot_ids) == 2 and not result.failed
    assert not local(b_file).exists() and b_file in result.deleted_files
    assert local(a_file).exists()
    assert all(not local(m).exists() for m in expired_lists)
    assert table.scan().to_arrow().num_rows == 5
    assert table.scan(snapshot_id=tagged.snapshot_id).to_arrow().num_rows == 10
    # nothing referenced is gone: every snapshot left still reads
    assert all(Path(p).exists() for p in referenced_files(table))


def test_expire_respects_age_and_retain_last(catalog: Catalog) -> None:
    table = catalog.create_table("silver.t", SCHEMA)
    for i in range(4):
        table.append(rows(i, 1, date(2024, 1, 1)))

    assert expire_snapshots(table, older_than=timedelta(days=1)).expired_snapshot_ids == ()
    result = expire_snapshots(table, older_than=timedelta(0), retain_last=3)

    assert len(result.expired_snapshot_ids) == 1
    assert len(catalog.load_table("silver.t").metadata.snapshots) == 3
    with pytest.raises(MaintenanceError, match="retain-last"):
        expire_snapshots(table, older_than=timedelta(0), retain_last=0)


def test_rollback_by_id_and_by_timestamp(catalog: Catalog) -> None:
    table = catalog.create_table("silver.t", SCHEMA)
    ids = []
    for i in range(3):
        table.append(rows(i * 10, 10, date(2024, 1, 1)))
        snapshot = table.current_snapshot()
        assert snapshot is not None
        ids.append(snapshot.snapshot_id)
        time.sleep(0.01)
    second = table.metadata.snapshot_by_id(ids[1])
    assert second is not None

    at = datetime.fromtimestamp(second.timestamp_ms / 1000, UTC) + timedelta(milliseconds=5)
    result = rollback_to_time(table, at)
    assert (result.from_snapshot_id, result.to_snapshot_id) == (ids[2], ids[1])
    assert catalog.load_table("silver.t").scan().to_arrow().num_rows == 20

    rollback_to_snapshot(table, ids[0])
    table = catalog.load_table("silver.t")
    assert table.scan().to_arrow().num_rows == 10
    assert len(table.metadata.snapshots) == 3  # no snapshot added

    with pytest.raises(MaintenanceError, match="not in the history of main"):
        rollback_to_snapshot(table, ids[2])
    with pytest.raises(MaintenanceError, match="no snapshot 42"):
        rollback_to_snapshot(table, 42)
    with pytest.raises(MaintenanceError, match="at or before"):
        rollback_to_time(table, datetime(2000, 1, 1))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", timedelta(days=7)),
        ("12h", timedelta(hours=12)),
        ("30m", timedelta(minutes=30)),
        ("45s", timedelta(seconds=45)),
        ("2w", timedelta(weeks=2)),
        ("1d12h", timedelta(days=1, hours=12)),
        (" 0s ", timedelta(0)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "7", "d", "7 days", "-1d", "1.5h", "7y"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(MaintenanceError, match="bad duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1000", 1000), ("512k", 512 * 1024), ("64MB", 64 * MB), ("1.5GiB", 3 * 512 * MB), ("2 mb", 2 * MB)],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "0", "MB", "-1MB", "12 parsecs"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(MaintenanceError, match="bad size"):
        parse_size(text)
