"""Spark writes Parquet files, lakehouse commits them: every trap of that path, on a real SQLite catalog."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.table import Table

from lakehouse.engines import DataFiles, SchemaMismatchError, register_files
from lakehouse.engines.polars import PolarsEngine
from lakehouse.engines.spark import (
    PYTHON_CONF,
    SparkEngine,
    check_data_files,
    file_list_hazard,
    s3a_conf,
    session_conf,
)
from lakehouse.errors import ConfigurationError, LakehouseError
from lakehouse.files import batch_filter
from lakehouse.maintenance import remove_orphan_files
from lakehouse.tables import BATCH_DATE, LOADED_AT, RUN_ID, TableDef, silver_table
from tests.declared import TABLES

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

pytestmark = pytest.mark.spark

D1, D2, D3 = date(1995, 1, 30), date(1995, 1, 31), date(1995, 2, 1)
LOADED = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
CONSTANTS = {RUN_ID: "run-1", LOADED_AT: LOADED}
ORDERS = silver_table(TABLES["orders"])


def orders(keys: list[int], batches: list[date]) -> pl.DataFrame:
    """Silver orders rows (no _run_id/_loaded_at), with nulls, decimals and dates."""
    n = len(keys)
    return pl.DataFrame(
        {
            "o_orderkey": keys,
            "o_custkey": [None if k % 3 == 0 else k * 10 for k in keys],
            "o_orderstatus": ["O" if k % 2 else None for k in keys],
            "o_totalprice": [None if k % 4 == 0 else Decimal(k * 1001) / 100 for k in keys],
            "o_orderdate": batches,
            "o_orderpriority": ["1-URGENT"] * n,
            "o_clerk": [f"Clerk#{k}" for k in keys],
            "o_shippriority": [None if k % 5 == 0 else k for k in keys],
            "o_comment": ["é ü 漢"] * n,
            BATCH_DATE: batches,
            "_source_file": ["f.csv"] * n,
            "_row_number": list(range(1, n + 1)),
        },
        schema_overrides={
            "o_totalprice": pl.Decimal(15, 2),
            "o_shippriority": pl.Int32,
            "o_custkey": pl.Int64,
        },
    )


def to_spark(spark: SparkSession, frame: pl.DataFrame) -> DataFrame:
    return spark.createDataFrame(frame.to_arrow(compat_level=pl.CompatLevel.oldest()))


@pytest.fixture
def catalog(tmp_path: Path) -> SqlCatalog:
    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db", warehouse=f"file://{tmp_path}/wh")
    catalog.create_namespace("silver")
    return catalog


def create(catalog: SqlCatalog, definition: TableDef, name: str | None = None) -> Table:
    identifier = f"{definition.namespace}.{name or definition.name}"
    return catalog.create_table(identifier, definition.schema, partition_spec=definition.partition_spec())


@pytest.fixture
def engine(spark: SparkSession) -> Iterator[SparkEngine]:
    yield SparkEngine(spark)


def commit(table: Table, files: DataFiles, replace: object, branch: str = "main") -> None:
    with table.transaction() as tx:
        register_files(tx, files, replace=replace, branch=branch, properties={"lakehouse.engine": "spark"})  # type: ignore[arg-type]


def rows(table: Table, snapshot_id: int | None = None) -> list[dict[str, object]]:
    data = table.scan(snapshot_id=snapshot_id).to_arrow()
    return sorted(data.to_pylist(), key=lambda r: (r["o_orderkey"], str(r[BATCH_DATE])))


def test_spark_files_read_back_exactly_as_polars_writes(catalog: SqlCatalog, engine: SparkEngine) -> None:
    data = orders([1, 2, 3, 4, 5, 6], [D1, D1, D2, D2, D3, D3])
    spark_table, polars_table = create(catalog, ORDERS), create(catalog, ORDERS, "orders_polars")

    files = engine.write(spark_table, to_spark(engine.spark, data), constants=CONSTANTS)
    commit(spark_table, files, batch_filter([D1, D2, D3]))
    polars_table.append(PolarsEngine().write(polars_table, data.lazy(), constants=CONSTANTS))

    assert rows(spark_table) == rows(polars_table)
    back = rows(spark_table)
    assert {r[BATCH_DATE] for r in back} == {D1, D2, D3}  # the partition column survived
    assert {r[LOADED_AT] for r in back} == {LOADED}  # microseconds, UTC
    # one partition value and one batch per file, partitions as Iceberg computes them
    tasks = list(spark_table.scan().plan_files())
    assert len(tasks) == 3
    for task in tasks:
        meta = pq.read_metadata(task.file.file_path.removeprefix("file://"))
        column = meta.schema.to_arrow_schema().names.index(BATCH_DATE)
        stats = meta.row_group(0).column(column).statistics
        assert stats.min == stats.max
        month = stats.min.year * 12 + stats.min.month - 1 - 1970 * 12
        assert task.file.partition[0] == month
    # nothing but data files in the write directory (no checksums, no _SUCCESS)
    written = Path(files.paths[0].removeprefix("file://")).parents[2]
    assert sorted(p.suffix for p in written.rglob("*") if p.is_file()) == [".parquet"] * 3


def test_rerun_replaces_batches_by_dropping_whole_files(catalog: SqlCatalog, engine: SparkEngine) -> None:
    table = create(catalog, ORDERS)
    commit(
        table,
        engine.write(table, to_spark(engine.spark, orders([1, 2, 3], [D1, D2, D3])), constants=CONSTANTS),
        AlwaysTrue(),
    )
    again = orders([10, 20], [D2, D2])
    commit(table, engine.write(table, to_spark(engine.spark, again), constants=CONSTANTS), batch_filter([D2]))

    assert [(r["o_orderkey"], r[BATCH_DATE]) for r in rows(table)] == [(1, D1), (3, D3), (10, D2), (20, D2)]
    delete = table.snapshots()[-2]
    assert delete.summary is not None and delete.summary.operation.value == "delete"  # no rewrite


def test_files_are_staged_on_a_branch_only(catalog: SqlCatalog, engine: SparkEngine) -> None:
    table = create(catalog, ORDERS)
    table.append(PolarsEngine().write(table, orders([1], [D1]).lazy(), constants=CONSTANTS))
    main = table.current_snapshot()
    assert main is not None
    table.manage_snapshots().create_branch(main.snapshot_id, "audit-x").commit()

    files = engine.write(table, to_spark(engine.spark, orders([2], [D1])), constants=CONSTANTS)
    commit(table, files, batch_filter([D1]), branch="audit-x")

    table.refresh()
    assert [r["o_orderkey"] for r in rows(table)] == [1]
    assert [r["o_orderkey"] for r in rows(table, table.metadata.refs["audit-x"].snapshot_id)] == [2]


def test_partition_by_the_real_column_would_lose_it(
    catalog: SqlCatalog, engine: SparkEngine, tmp_path: Path
) -> None:
    """The trap itself: files without the column are accepted by add_files and read back null."""
    table = create(catalog, ORDERS)
    data = to_spark(engine.spark, orders([1, 2], [D1, D3]))
    naive = tmp_path / "wh" / "silver" / "orders" / "data" / "naive"
    from pyspark.sql import functions as F

    data.withColumns({RUN_ID: F.lit("r"), LOADED_AT: F.lit(LOADED)}).write.partitionBy(BATCH_DATE).parquet(
        f"file://{naive}"
    )
    paths = [f"file://{p}" for p in sorted(naive.rglob("*.parquet"))]

    with pytest.raises(SchemaMismatchError, match=f"missing column '{BATCH_DATE}'"):
        check_data_files(table, paths)
    table.add_files(paths)  # what would happen without the check: silent data loss
    assert {r[BATCH_DATE] for r in rows(table)} == {None}


def test_a_file_with_two_partition_values_is_rejected(
    catalog: SqlCatalog, engine: SparkEngine, tmp_path: Path
) -> None:
    """The trap itself: a plain Spark write mixes partition values in a file; add_files refuses it."""
    from pyspark.sql import functions as F

    table = create(catalog, ORDERS)
    naive = tmp_path / "wh" / "silver" / "orders" / "data" / "naive"
    data = to_spark(engine.spark, orders([1, 2], [D1, D3]))
    data.withColumns({RUN_ID: F.lit("r"), LOADED_AT: F.lit(LOADED)}).coalesce(1).write.parquet(
        f"file://{naive}"
    )
    paths = [f"file://{p}" for p in sorted(naive.rglob("*.parquet"))]

    check_data_files(table, paths)  # the schema is right ...
    with pytest.raises(ValueError, match="more than one partition value"):
        table.add_files(paths)  # ... but not the partitioning


def test_int96_timestamps_and_other_types_are_refused(
    catalog: SqlCatalog, engine: SparkEngine, tmp_path: Path
) -> None:
    table = create(catalog, ORDERS)
    data = orders([1], [D1])
    good = PolarsEngine().write(table, data.lazy(), constants=CONSTANTS)
    cases = {
        "int96": (good, {"use_deprecated_int96_timestamps": True}, "ns"),
        "long-for-int": (
            good.set_column(7, "o_shippriority", good["o_shippriority"].cast(pa.int64())),
            {},
            "o_shippriority",
        ),
        "wider-decimal": (
            good.set_column(3, "o_totalprice", good["o_totalprice"].cast(pa.decimal128(18, 2))),
            {},
            "o_totalprice",
        ),
    }
    for name, (arrow, options, message) in cases.items():
        path = tmp_path / f"{name}.parquet"
        pq.write_table(arrow, path, **options)
        with pytest.raises(SchemaMismatchError, match=message):
            check_data_files(table, [f"file://{path}"])

    engine.spark.conf.set("spark.sql.parquet.outputTimestampType", "INT96")
    try:
        with pytest.raises(ConfigurationError, match="TIMESTAMP_MICROS"):
            engine.write(table, to_spark(engine.spark, data), constants=CONSTANTS)
    finally:
        engine.spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")


def test_read_by_file_list_only_when_safe(
    catalog: SqlCatalog,
    engine: SparkEngine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    table = create(catalog, ORDERS)
    table.append(PolarsEngine().write(table, orders([1, 2, 3], [D1, D2, D3]).lazy(), constants=CONSTANTS))
    snapshot = table.current_snapshot()
    assert snapshot is not None

    def spark_rows(batches: list[date] | None = None) -> list[dict[str, object]]:
        frame = engine.read_table(table, batches=batches)
        return sorted((r.asDict() for r in frame.collect()), key=lambda r: r["o_orderkey"])

    assert file_list_hazard(table, snapshot) is None
    assert [r["o_orderkey"] for r in spark_rows([D2])] == [2]
    plain = spark_rows()
    assert [(r["o_totalprice"], r["o_shippriority"]) for r in plain] == [
        (Decimal("10.01"), 1),
        (Decimal("20.02"), 2),
        (Decimal("30.03"), 3),
    ]

    # delete files: Spark would ignore them
    import lakehouse.engines.spark as spark_module

    def has_deletes(*args: object, **kwargs: object) -> list[str]:
        raise LakehouseError("delete files")

    with monkeypatch.context() as patch:
        patch.setattr(spark_module, "snapshot_files", has_deletes)
        assert file_list_hazard(table, snapshot) == "the snapshot has delete files"
        with caplog.at_level("WARNING", logger="lakehouse.engines.spark"):
            assert spark_rows() == plain  # read through pyiceberg instead
        assert "reading through pyiceberg" in caplog.text

    # a renamed column: Spark would read the old files' column by its new name, i.e. null
    with table.update_schema() as update:
        update.rename_column("o_clerk", "o_clerk_name")
    assert file_list_hazard(table, snapshot) == "column 'o_clerk' was renamed to 'o_clerk_name'"
    assert [r["o_clerk_name"] for r in spark_rows()] == ["Clerk#1", "Clerk#2", "Clerk#3"]


def test_files_of_an_abandoned_commit_are_orphans_and_removed(
    catalog: SqlCatalog, engine: SparkEngine
) -> None:
    table = create(catalog, ORDERS)
    kept = engine.write(table, to_spark(engine.spark, orders([1], [D1])), constants=CONSTANTS)
    commit(table, kept, batch_filter([D1]))
    abandoned = engine.write(table, to_spark(engine.spark, orders([2, 3], [D2, D3])), constants=CONSTANTS)
    # e.g. the process died before the commit, or the audit failed before any file was registered

    result = remove_orphan_files(table, older_than=timedelta(0))

    assert sorted(result.orphan_files) == sorted(abandoned.paths)
    assert not any(Path(p.removeprefix("file://")).exists() for p in abandoned.paths)
    assert all(Path(p.removeprefix("file://")).exists() for p in kept.paths)
    assert [r["o_orderkey"] for r in rows(table)] == [1]


def test_missing_columns_and_empty_frames(catalog: SqlCatalog, engine: SparkEngine) -> None:
    table = create(catalog, ORDERS)
    data = to_spark(engine.spark, orders([1], [D1]))
    with pytest.raises(SchemaMismatchError, match="o_comment"):
        engine.write(table, data.drop("o_comment"), constants=CONSTANTS)

    commit(
        table,
        engine.write(table, to_spark(engine.spark, orders([1], [D1])), constants=CONSTANTS),
        AlwaysTrue(),
    )
    empty = engine.write(table, data.limit(0), constants=CONSTANTS)
    assert empty.paths == ()
    commit(table, empty, batch_filter([D1]))  # replaces the batch by nothing
    assert rows(table) == []


def test_python_workers_run_this_interpreter_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYSPARK_PYTHON", raising=False)
    assert session_conf("spark://127.0.0.1:7077", {})[PYTHON_CONF] == sys.executable
    assert session_conf("local[2]", {PYTHON_CONF: "/opt/lakehouse/bin/python"})[PYTHON_CONF] == (
        "/opt/lakehouse/bin/python"
    )
    monkeypatch.setenv("PYSPARK_PYTHON", "/usr/local/bin/python3.11")
    assert session_conf("local[2]", {})[PYTHON_CONF] == "/usr/local/bin/python3.11"
    assert PYTHON_CONF not in session_conf("sc://127.0.0.1:15002", {})  # the server's own


def test_s3a_settings_are_pyicebergs_s3_properties_per_bucket() -> None:
    properties = {
        "s3.endpoint": "http://127.0.0.1:8333",
        "s3.access-key-id": "key-id",
        "s3.secret-access-key": "secret",
        "s3.region": "us-east-1",
        "s3.path-style-access": "true",
        "py-io-impl": "pyiceberg.io.pyarrow.PyArrowFileIO",
    }
    b = "fs.s3a.bucket.warehouse."
    assert s3a_conf(properties, "warehouse") == {
        b + "endpoint": "http://127.0.0.1:8333",
        b + "endpoint.region": "us-east-1",
        b + "path.style.access": "true",
        b + "access.key": "key-id",
        b + "secret.key": "secret",
        b + "aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
        b + "connection.ssl.enabled": "false",
    }
    temporary = s3a_conf({**properties, "s3.session-token": "token"}, "warehouse")
    assert temporary[b + "aws.credentials.provider"].endswith(".TemporaryAWSCredentialsProvider")
    # no keys: S3A's default chain (instance profile, web identity); client.* as pyiceberg reads it
    assert s3a_conf({"client.region": "eu-west-1"}, "lake") == {
        "fs.s3a.bucket.lake.endpoint.region": "eu-west-1"
    }
