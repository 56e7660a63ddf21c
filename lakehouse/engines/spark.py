"""The Spark engine: Spark computes and writes Parquet data files, lakehouse commits them.

pyspark 4 cannot load an Iceberg Spark runtime here, and the cluster may be remote, so Spark reads
a snapshot by its data-file list and writes plain Parquet files into the table's location; the
files are then registered in one pyiceberg transaction (:func:`lakehouse.engines.register_files`).
The traps of that path, each handled here:

- Spark's ``partitionBy`` drops the partition columns from the files (``add_files`` would then read
  them back null): files are split by *copies* of the partition values, the real columns stay.
- ``add_files`` needs one partition value per file: the split columns give exactly that, and a
  repartition by them keeps one file per value and task. Files are also split by ``_batch_date``,
  so replacing a batch later drops whole files instead of rewriting them.
- Timestamps must be INT64 microseconds (INT96 is rejected) in UTC: required session settings,
  checked before every write, and every written file's schema is compared with the table's.
- Reading by file list ignores delete files and reads columns by their physical names: only done
  when the snapshot has no delete files and no column was renamed, retyped or reused; otherwise
  the snapshot is read by pyiceberg into Arrow and handed to Spark (it then fits in the driver).
- Files of a write that is never committed are orphans: ``lakehouse.maintenance.remove_orphan_files``
  deletes them (each write goes to its own ``data/spark-<uuid>/`` directory).

Tables on S3 are read and written through Hadoop's ``s3a://`` (``hadoop-aws`` and its AWS SDK bundle
on Spark's classpath). Spark reaches each bucket with the settings pyiceberg uses for that table (its
file IO's ``s3.*`` properties: endpoint, region, path style, credentials), set per bucket on the
session's Hadoop configuration when the table is first touched: they never pass through a command
line, the Spark conf or a log.

pyspark is imported inside functions only, so importing this module is cheap without it.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow.fs import FileSelector, FileType
from pyiceberg.io.pyarrow import PyArrowFileIO, UnsupportedPyArrowTypeException, pyarrow_to_schema
from pyiceberg.schema import Schema
from pyiceberg.table import Table, TableProperties
from pyiceberg.table.snapshots import Snapshot
from pyiceberg.transforms import DayTransform, HourTransform, IdentityTransform, MonthTransform, YearTransform
from pyiceberg.types import (
    BinaryType,
    BooleanType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IcebergType,
    IntegerType,
    LongType,
    NestedField,
    StringType,
    TimestampType,
    TimestamptzType,
)

from lakehouse.engines import (
    DataFiles,
    EngineUnavailableError,
    SchemaMismatchError,
    data_directory,
    filesystem,
)
from lakehouse.errors import ConfigurationError, LakehouseError
from lakehouse.files import batch_filter, snapshot_files
from lakehouse.tables import BATCH_DATE
from lakehouse.transforms.frames import EngineName

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

log = logging.getLogger(__name__)

JAVA_MIN_VERSION = 17
REQUIRED_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
}
"""Settings every lakehouse Spark session must have (the writer checks them)."""
DEFAULT_CONF: dict[str, str] = {
    "spark.app.name": "lakehouse",
    "spark.sql.shuffle.partitions": "4",
    "spark.driver.memory": "2g",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.log.level": "WARN",
    # no _SUCCESS marker files in table locations
    "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
}
"""Defaults for a JVM session started here, overridden by settings (``LAKEHOUSE_SPARK_CONF``)."""
PYTHON_CONF = "spark.pyspark.python"
"""The interpreter of the executors' Python workers: ``PYSPARK_PYTHON``, else the driver's own."""
LOCAL_CONF: dict[str, str] = {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"}
"""For ``local[...]`` masters: stay on loopback."""

_CONNECT_PREFIX = "sc://"
_SPLIT_PREFIX = "__lh_"  # marks the split columns' directories in data paths
_session_lock = threading.Lock()
_session: SparkSession | None = None
_session_master: str | None = None


# ---------------------------------------------------------------------------------------------------
# Session


@functools.cache
def _java_major(java: str) -> int | None:
    out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major  # "1.8" is Java 8


def _java_version() -> int | None:
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not os.access(java, os.X_OK):
        return None
    return _java_major(java)


def spark_unavailable(master: str = "local[*]") -> str | None:
    """Why a Spark session for ``master`` cannot start here, or ``None`` if it can.

    Checks that pyspark is installed and, unless ``master`` is Spark Connect (``sc://``), that a
    Java runtime of at least version 17 is on ``JAVA_HOME`` or ``PATH``. Nothing is started.
    """
    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed: install the spark extra (pip install -e '.[spark]')"
    if master.startswith(_CONNECT_PREFIX):
        return None
    version = _java_version()
    if version is None:
        return "Spark needs Java 17 or later: no java on JAVA_HOME or PATH (install openjdk-17-jre-headless)"
    if version < JAVA_MIN_VERSION:
        return f"Spark needs Java {JAVA_MIN_VERSION} or later, found Java {version}"
    return None


def session_conf(master: str, conf: Mapping[str, str]) -> dict[str, str]:
    """The settings a session for ``master`` is built with: defaults, then ``conf``, then the required ones.

    The defaults include :data:`PYTHON_CONF`: ``PYSPARK_PYTHON`` if set, else this interpreter. A
    Spark Connect session gets ``conf`` and the required settings only (the server owns the rest).

    Raises:
        ConfigurationError: if ``conf`` sets a required setting to another value.

    """
    for key, value in conf.items():
        if key in REQUIRED_CONF and value != REQUIRED_CONF[key]:
            raise ConfigurationError(
                f"Spark setting {key} must be {REQUIRED_CONF[key]!r} here, got {value!r}"
            )
    if master.startswith(_CONNECT_PREFIX):
        return {**conf, **REQUIRED_CONF}
    local = LOCAL_CONF if master.startswith("local") else {}
    # Python workers run this interpreter (the project's venv), not whatever python3 is on PATH.
    python = {PYTHON_CONF: os.environ.get("PYSPARK_PYTHON") or sys.executable}
    return {**DEFAULT_CONF, **python, **local, **conf, **REQUIRED_CONF}


def spark_session(master: str = "local[*]", conf: Mapping[str, str] | None = None) -> SparkSession:
    """The process's SparkSession, built on first call (a JVM for ``local``/cluster masters, a client for ``sc://``).

    Later calls return the same session; ``conf`` is only read on the first call. ``PYSPARK_PYTHON``
    is set to the session's :data:`PYTHON_CONF`, which pyspark gives its Python workers.

    Raises:
        EngineUnavailableError: if pyspark or Java is missing.
        ConfigurationError: if a session for another master exists already, or ``conf`` overrides a
            required setting.

    """
    global _session, _session_master
    with _session_lock:
        if _session is not None:
            if master != _session_master:
                raise ConfigurationError(
                    f"a SparkSession for {_session_master} exists; cannot start one for {master}"
                )
            return _session
        reason = spark_unavailable(master)
        if reason is not None:
            raise EngineUnavailableError(reason)
        settings = session_conf(master, conf or {})
        if PYTHON_CONF in settings:
            # A SparkContext started from Python takes its workers' interpreter from this variable
            # only (spark.pyspark.python is read by spark-submit), and reads it when it starts.
            os.environ["PYSPARK_PYTHON"] = settings[PYTHON_CONF]
        from pyspark.sql import SparkSession

        builder = SparkSession.builder
        builder = builder.remote(master) if master.startswith(_CONNECT_PREFIX) else builder.master(master)
        for key, value in settings.items():
            builder = builder.config(key, value)
        _session, _session_master = builder.getOrCreate(), master
        log.info("started a Spark session on %s", master)
        return _session


def spark_session_running() -> bool:
    """Whether :func:`spark_session` has started a session that is not stopped yet."""
    return _session is not None


def stop_spark_session() -> None:
    """Stop the process's SparkSession if one was started (a later :func:`spark_session` starts anew).

    The JVM this process launched for it exits too, so its memory (the driver's heap, 2.5 GiB
    resident with the default settings) is returned.
    """
    global _session, _session_master
    with _session_lock:
        if _session is not None:
            _session.stop()
            _end_gateway()
            log.info("stopped the Spark session on %s", _session_master)
        _session, _session_master = None, None


def _end_gateway() -> None:
    """End the py4j gateway JVM of a local or cluster session (Spark Connect has none)."""
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    if gateway is None:
        return
    gateway.shutdown()
    process = getattr(gateway, "proc", None)  # None if the JVM was not launched by this process
    if process is not None:
        process.stdin.close()  # the gateway server exits when its stdin closes
        process.wait(timeout=60)
    SparkContext._gateway = None
    SparkContext._jvm = None


# ---------------------------------------------------------------------------------------------------
# Types, paths and metadata checks (no Spark needed)


def spark_type(kind: IcebergType) -> str:
    """The Spark SQL type of an Iceberg primitive type.

    Raises:
        SchemaMismatchError: for types the Spark path does not handle (nested, uuid, fixed, time).

    """
    simple: dict[type[IcebergType], str] = {
        BooleanType: "boolean",
        IntegerType: "int",
        LongType: "bigint",
        FloatType: "float",
        DoubleType: "double",
        DateType: "date",
        StringType: "string",
        BinaryType: "binary",
        TimestamptzType: "timestamp",
        TimestampType: "timestamp_ntz",
    }
    if isinstance(kind, DecimalType):
        return f"decimal({kind.precision},{kind.scale})"
    if type(kind) in simple:
        return simple[type(kind)]
    raise SchemaMismatchError(f"the Spark engine does not handle Iceberg type {kind}")


def spark_schema(schema: Schema) -> str:
    """``schema`` as a Spark DDL string (``a bigint, b decimal(15,2), ...``).

    Raises:
        SchemaMismatchError: if a column has a type :func:`spark_type` does not handle.

    """
    return ", ".join(f"`{f.name}` {spark_type(f.field_type)}" for f in schema.columns)


def spark_uri(location: str) -> str:
    """A storage location as Spark's Hadoop file systems name it (``s3://`` is ``s3a://`` there)."""
    return "s3a://" + location[len("s3://") :] if location.startswith("s3://") else location


S3A_FILESYSTEM = "org.apache.hadoop.fs.s3a.S3AFileSystem"
_S3A_OPTIONS = {
    "endpoint": "endpoint",
    "region": "endpoint.region",
    "path-style-access": "path.style.access",
    "access-key-id": "access.key",
    "secret-access-key": "secret.key",
    "session-token": "session.token",
}
"""pyiceberg's ``s3.<key>`` (or ``client.<key>``) file IO property -> Hadoop's ``fs.s3a.<option>``."""


def s3a_conf(properties: Mapping[str, str], bucket: str) -> dict[str, str]:
    """Hadoop settings for Spark to reach ``bucket`` as pyiceberg's file IO ``properties`` do.

    Per-bucket keys (``fs.s3a.bucket.<bucket>.*``), so tables in buckets of different stores or
    accounts coexist. Static keys select the simple (or, with a session token, temporary)
    credentials provider; without keys S3A's default chain applies (environment, instance profile,
    web identity). An ``http://`` endpoint turns TLS off. Holds the credentials: never log it.
    """
    prefix = f"fs.s3a.bucket.{bucket}."
    conf: dict[str, str] = {}
    for key, option in _S3A_OPTIONS.items():
        value = properties.get(f"s3.{key}") or properties.get(f"client.{key}")
        if value:
            conf[prefix + option] = str(value)
    if prefix + "access.key" in conf:
        provider = (
            "TemporaryAWSCredentialsProvider"
            if prefix + "session.token" in conf
            else "SimpleAWSCredentialsProvider"
        )
        conf[prefix + "aws.credentials.provider"] = f"org.apache.hadoop.fs.s3a.{provider}"
    if conf.get(prefix + "endpoint", "").startswith("http://"):
        conf[prefix + "connection.ssl.enabled"] = "false"
    return conf


def _find(schema: Schema, key: str | int) -> NestedField | None:
    try:
        return schema.find_field(key)
    except ValueError:
        return None


def file_list_hazard(table: Table, snapshot: Snapshot) -> str | None:
    """Why reading ``snapshot`` by its data-file list would be wrong, or ``None`` if it is safe.

    Spark reads the files' columns by physical name and knows nothing of Iceberg deletes, so the
    list is unsafe if the snapshot has delete files, or if any column of the table ever changed
    name or type, or a name passed to another column (dropped and re-added). Reads metadata only
    (manifests for the delete files).
    """
    schemas = sorted(table.schemas().values(), key=lambda s: s.schema_id)
    for i, older in enumerate(schemas):
        for newer in schemas[i + 1 :]:
            for field in newer.columns:
                old = _find(older, field.field_id)
                if old is not None and old.name != field.name:
                    return f"column {old.name!r} was renamed to {field.name!r}"
                if old is not None and old.field_type != field.field_type:
                    return f"column {field.name!r} changed type from {old.field_type} to {field.field_type}"
                same_name = _find(older, field.name)
                if same_name is not None and same_name.field_id != field.field_id:
                    return f"column name {field.name!r} belonged to another column before"
    try:
        snapshot_files(table, snapshot.snapshot_id)
    except LakehouseError:
        return "the snapshot has delete files"
    return None


def _table_name(table: Table) -> str:
    return ".".join(table.name())


def check_data_files(table: Table, paths: Sequence[str]) -> None:
    """Check that every file's columns are exactly the table's, with exactly its Iceberg types.

    Reads the Parquet footers only. ``add_files`` would accept a missing column (read back null) or
    a promotable type (int for long): both are errors here.

    Raises:
        SchemaMismatchError: naming the file and the first differences.

    """
    expected = {f.name: f.field_type for f in table.schema().columns}
    for path in paths:
        fs, _, key = filesystem(table, path)
        with fs.open_input_file(key) as f:
            arrow = pq.read_schema(f)
        problems = [f"missing column {n!r}" for n in expected if n not in arrow.names]
        problems += [f"unexpected column {n!r}" for n in arrow.names if n not in expected]
        try:
            found = pyarrow_to_schema(arrow, name_mapping=table.schema().name_mapping)
        except (ValueError, TypeError, UnsupportedPyArrowTypeException) as exc:  # e.g. INT96 timestamps
            problems.append(str(exc))
        else:
            problems += [
                f"column {f.name!r} is {f.field_type}, the table has {expected[f.name]}"
                for f in found.columns
                if f.name in expected and f.field_type != expected[f.name]
            ]
        if problems:
            raise SchemaMismatchError(f"{_table_name(table)}: {path}: {'; '.join(problems[:5])}")


# ---------------------------------------------------------------------------------------------------
# Engine


class SparkEngine:
    """Runs transforms on Spark DataFrames; writes Parquet data files for lakehouse to commit."""

    def __init__(self, spark: SparkSession) -> None:
        """Use ``spark`` (see :func:`spark_session`) for every read and write."""
        self.spark = spark

    def _reach(self, table: Table) -> None:
        """Let Spark reach ``table``'s storage: for S3, the bucket's S3A settings (:func:`s3a_conf`).

        They go to the session's Hadoop configuration, which every later read and write ships to the
        executors. A Spark Connect session is left as it is: its server owns that configuration.

        Raises:
            EngineUnavailableError: if the table is on S3 and ``hadoop-aws`` is not on Spark's classpath.

        """
        scheme, bucket, _ = PyArrowFileIO.parse_location(table.location())
        context = getattr(self.spark, "sparkContext", None) if scheme in ("s3", "s3a") else None
        jsc = getattr(context, "_jsc", None)
        if jsc is None:
            return
        from py4j.protocol import Py4JJavaError

        hadoop = jsc.hadoopConfiguration()
        try:
            hadoop.getClassByName(S3A_FILESYSTEM)
        except Py4JJavaError as exc:  # ClassNotFoundException
            raise EngineUnavailableError(
                f"{_table_name(table)} is on S3, but Spark has no {S3A_FILESYSTEM}: put hadoop-aws and "
                "the AWS SDK bundle on its classpath (spark.driver.extraClassPath and "
                "spark.executor.extraClassPath, or spark.jars; `make jars` fetches them into .jars/spark-s3)"
            ) from exc
        for key, value in s3a_conf(table.io.properties, bucket).items():
            if hadoop.get(key) != value:
                hadoop.set(key, value)

    @property
    def name(self) -> EngineName:
        """``spark``."""
        return "spark"

    # -- reading -----------------------------------------------------------------------------------

    def read_table(
        self, table: Table, *, snapshot_id: int | None = None, batches: list[date] | None = None
    ) -> DataFrame:
        """Rows of ``table`` at ``snapshot_id`` (default: current), only of ``batches`` if given.

        Reads the snapshot's data files directly when :func:`file_list_hazard` finds none, else
        reads it through pyiceberg into Arrow on the driver (logged) and hands that to Spark.
        Columns and types are the table's current schema, or the snapshot's when ``snapshot_id``
        is given (as pyiceberg scans).

        Raises:
            LakehouseError: if ``snapshot_id`` is not a snapshot of the table.

        """
        from pyspark.sql import functions as F

        self._reach(table)
        snapshot = table.current_snapshot() if snapshot_id is None else table.snapshot_by_id(snapshot_id)
        if snapshot_id is not None and snapshot is None:
            raise LakehouseError(f"{_table_name(table)} has no snapshot {snapshot_id}")
        schema = table.schema()
        if snapshot_id is not None and snapshot is not None and snapshot.schema_id is not None:
            schema = table.schemas().get(snapshot.schema_id, schema)
        ddl = spark_schema(schema)
        if snapshot is None:
            return self.spark.createDataFrame([], ddl)
        hazard = file_list_hazard(table, snapshot)
        if hazard is not None:
            log.warning("%s: reading through pyiceberg, not by file list: %s", _table_name(table), hazard)
            arrow = table.scan(row_filter=batch_filter(batches), snapshot_id=snapshot_id).to_arrow()
            frame = self.spark.createDataFrame(arrow)
        else:
            files = snapshot_files(table, snapshot.snapshot_id, batches)
            if not files:
                return self.spark.createDataFrame([], ddl)
            frame = self.spark.read.schema(ddl).parquet(*(spark_uri(p) for p in files))
        # select by name, in schema order, with the exact types
        frame = frame.select(*(F.col(f"`{f.name}`").cast(spark_type(f.field_type)) for f in schema.columns))
        return frame if batches is None else frame.filter(F.col(BATCH_DATE).isin(batches))

    # -- computing ---------------------------------------------------------------------------------

    def materialize(self, frame: DataFrame) -> DataFrame:
        """``frame`` computed now and kept on the executors (lineage cut), for counting and writing."""
        return frame.localCheckpoint(eager=True)

    def count(self, frame: DataFrame) -> int:
        """Number of rows of ``frame``."""
        return frame.count()

    def batches(self, frame: DataFrame) -> list[date]:
        """Distinct ``_batch_date`` values of ``frame``, oldest first."""
        return sorted(row[0] for row in frame.select(BATCH_DATE).distinct().collect())

    def to_arrow(self, frame: DataFrame) -> pa.Table:
        """The rows of ``frame`` collected on the driver, as Arrow."""
        return frame.toArrow()

    # -- writing -----------------------------------------------------------------------------------

    def _check_conf(self) -> None:
        for key, value in REQUIRED_CONF.items():
            actual = self.spark.conf.get(key)
            if actual != value:
                raise ConfigurationError(
                    f"the Spark session must have {key}={value} to write lakehouse files, it has {actual!r} "
                    "(build it with lakehouse.engines.spark.spark_session)"
                )

    def _split_columns(self, table: Table) -> dict[str, Column]:
        """Copies of the partition values (and of ``_batch_date``) that files are split by."""
        from pyspark.sql import functions as F

        schema = table.schema()
        split: dict[str, Column] = {}
        for field in table.spec().fields:
            source = F.col(f"`{schema.find_column_name(field.source_id)}`")
            transform = field.transform
            if isinstance(transform, IdentityTransform):
                value = source
            elif isinstance(transform, YearTransform):
                value = F.year(source)
            elif isinstance(transform, MonthTransform):
                value = F.date_format(source, "yyyy-MM")
            elif isinstance(transform, DayTransform):
                value = F.to_date(source)
            elif isinstance(transform, HourTransform):
                value = F.date_format(source, "yyyy-MM-dd-HH")
            else:
                raise SchemaMismatchError(
                    f"{_table_name(table)}: the Spark writer does not handle partition transform {transform}"
                )
            split[f"{_SPLIT_PREFIX}{field.name}"] = value
        if BATCH_DATE in schema.column_names:
            split[f"{_SPLIT_PREFIX}batch"] = F.col(BATCH_DATE)
        return split

    def write(self, table: Table, frame: DataFrame, *, constants: Mapping[str, object]) -> DataFiles:
        """Write ``frame`` as Parquet data files into ``table``'s location; returns them, uncommitted.

        Columns are cast to the table's exact types and ordered as its schema; ``constants`` set
        literal columns (names the table lacks are ignored). Files land in
        ``<data path>/spark-<uuid>/`` (data path: ``write.data.path`` or ``<location>/data``), one
        partition value and one ``_batch_date`` per file, compressed with the table's
        ``write.parquet.compression-codec``. Register them with
        :func:`lakehouse.engines.register_files`; if they are never committed they are orphans.

        Raises:
            ConfigurationError: if the session lacks a required setting (UTC, TIMESTAMP_MICROS).
            SchemaMismatchError: if a table column has no value, or a written file does not match the
                table (its files are then deleted).

        """
        from pyspark.sql import functions as F

        self._check_conf()
        self._reach(table)
        name = _table_name(table)
        fields = table.schema().columns
        missing = [f.name for f in fields if f.name not in constants and f.name not in frame.columns]
        if missing:
            raise SchemaMismatchError(f"{name}: no value for column(s) {', '.join(missing)}")
        shaped = frame.select(
            *(
                (F.lit(constants[f.name]) if f.name in constants else F.col(f"`{f.name}`"))
                .cast(spark_type(f.field_type))
                .alias(f.name)
                for f in fields
            )
        )
        split = self._split_columns(table)
        writer = shaped.withColumns(split).repartition(*split).write if split else shaped.write
        if split:
            writer = writer.partitionBy(*split)
        props = table.metadata.properties
        codec = props.get(TableProperties.PARQUET_COMPRESSION, TableProperties.PARQUET_COMPRESSION_DEFAULT)
        target = data_directory(table, "spark")
        writer.mode("errorifexists").option("compression", codec).parquet(spark_uri(target))
        paths = self._written_files(table, target)
        try:
            check_data_files(table, paths)
        except SchemaMismatchError:
            self._delete(table, paths)
            raise
        log.info("%s: Spark wrote %d data file(s) under %s", name, len(paths), target)
        return DataFiles(tuple(paths))

    @staticmethod
    def _written_files(table: Table, target: str) -> list[str]:
        """The Parquet files under ``target``; other files Spark leaves (checksums) are deleted."""
        fs, scheme, path = filesystem(table, target)
        paths = []
        for info in fs.get_file_info(FileSelector(path, recursive=True, allow_not_found=True)):
            if info.type != FileType.File:
                continue
            if info.base_name.endswith(".parquet") and not info.base_name.startswith((".", "_")):
                paths.append(f"{scheme}://{info.path}")
            else:
                fs.delete_file(info.path)
        return sorted(paths)

    @staticmethod
    def _delete(table: Table, paths: Sequence[str]) -> None:
        for path in paths:
            fs, _, key = filesystem(table, path)
            fs.delete_file(key)
