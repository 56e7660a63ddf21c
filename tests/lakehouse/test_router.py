"""Engine routing from metadata (no Spark needed), and the life of the Spark session it starts."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from pyiceberg.catalog.sql import SqlCatalog

import lakehouse.router as router
from lakehouse.engines import EngineUnavailableError
from lakehouse.engines.polars import PolarsEngine
from lakehouse.engines.spark import spark_unavailable
from lakehouse.landing import LandingZone
from lakehouse.router import Decision, Router, Work, choose_engine, landed_work, table_work
from lakehouse.settings import Settings
from lakehouse.tables import BATCH_DATE, ERROR, LOADED_AT, RUN_ID, bronze_table
from tests.declared import TABLES
from tests.declared import TPCH as TPCH_SOURCE

D1, D2 = date(1995, 1, 1), date(1995, 2, 1)
MISSING = "pyspark is not installed: install the spark extra"


@pytest.fixture
def no_spark(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(router, "spark_unavailable", lambda master: MISSING)


@pytest.fixture
def has_spark(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(router, "spark_unavailable", lambda master: None)


@pytest.mark.usefixtures("has_spark")
def test_auto_picks_spark_above_the_threshold_only() -> None:
    small = choose_engine("auto", 100, 10, threshold_bytes=100)
    large = choose_engine("auto", 101, None, threshold_bytes=100)
    assert small == Decision("polars", "auto: 100 B <= threshold 100 B", 100, 10)
    assert large == Decision("spark", "auto: 101 B > threshold 100 B", 101, None)


def test_router_logs_each_decision_with_its_numbers(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="lakehouse.router"):
        engine, decision = Router("auto", threshold_bytes=100).route("silver.orders", Work(100, 10))
    assert engine.name == "polars" and decision.engine == "polars"
    assert (
        "silver.orders: engine polars for 100 bytes, 10 rows (auto: 100 B <= threshold 100 B)" in caplog.text
    )


@pytest.mark.usefixtures("has_spark")
def test_explicit_choices_ignore_the_size() -> None:
    assert choose_engine("polars", 10**12, None, 1).engine == "polars"
    assert choose_engine("spark", 0, 0, 10**12).engine == "spark"


@pytest.mark.usefixtures("no_spark")
def test_spark_unavailable() -> None:
    with pytest.raises(EngineUnavailableError, match="--engine spark: pyspark is not installed"):
        choose_engine("spark", 0, 0, 1)
    fallback = choose_engine("auto", 10, 0, 1)
    assert fallback.engine == "polars" and MISSING in fallback.reason


def test_threshold_setting_default_and_override(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().engine_threshold_bytes == 174 * 1024 * 1024
    monkeypatch.setenv("LAKEHOUSE_ENGINE_THRESHOLD_BYTES", "1024")
    monkeypatch.setenv("LAKEHOUSE_SPARK_MASTER", "sc://spark:15002")
    monkeypatch.setenv("LAKEHOUSE_SPARK_CONF", '{"spark.executor.memory": "8g"}')
    settings = Settings()
    assert settings.engine_threshold_bytes == 1024
    assert settings.spark_master == "sc://spark:15002"
    assert settings.spark_conf == {"spark.executor.memory": "8g"}


def test_landed_work_is_the_files_sizes(tmp_path: Path) -> None:
    zone = LandingZone(str(tmp_path), TPCH_SOURCE)
    zone.write("region", D1, "a.csv", b"x" * 10)
    zone.write("region", D1, "b.csv", b"x" * 5)
    zone.write("region", D2, "c.csv", b"x" * 7)
    assert landed_work(zone, "region", [D1]) == Work(15, None)
    assert landed_work(zone, "region", [D1, D2]) == Work(22, None)
    assert landed_work(zone, "region", []) == Work(0, None)


def test_table_work_from_manifests(tmp_path: Path) -> None:
    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db", warehouse=f"file://{tmp_path}/wh")
    catalog.create_namespace("bronze")
    definition = bronze_table(TABLES["region"])  # partitioned by batch month
    table = catalog.create_table(
        definition.identifier, definition.schema, partition_spec=definition.partition_spec()
    )
    assert table_work(table) == Work(0, 0)
    rows = pl.LazyFrame(
        {
            "r_regionkey": ["1", "2", "3"],
            "r_name": ["A", "B", "C"],
            "r_comment": ["c"] * 3,
            BATCH_DATE: [D1, D1, D2],
            "_source_file": ["f"] * 3,
            "_row_number": [1, 2, 3],
        }
    )
    table.append(PolarsEngine().write(table, rows, constants={RUN_ID: "r", LOADED_AT: None, ERROR: None}))
    files = list(table.scan().plan_files())
    everything = table_work(table)
    assert everything == Work(sum(t.file.file_size_in_bytes for t in files), 3)
    first = table_work(table, [D1])
    assert first.rows == 2 and 0 < first.bytes < everything.bytes
    assert (first + Work(1, None)).rows is None


_RELEASE = textwrap.dedent(
    """
    import os
    from lakehouse.engines.spark import spark_session_running
    from lakehouse.router import Router, Work

    def jvms():  # the JVMs this process launched
        return [c for c in os.listdir("/proc") if c.isdigit() and _parent(c) == os.getpid()]

    def _parent(pid):
        try:
            return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
        except OSError:
            return None

    for choice in ("auto", "spark", "auto"):  # the last one finds the session the second left
        router = Router(choice, 0, "local[1]", {"spark.ui.enabled": "false"})
        engine, decision = router.route("silver.orders", Work(10, 1))
        assert decision.engine == "spark" and engine.count(engine.spark.range(3)) == 3
        during = len(jvms())
        router.release(engine)
        print(choice, during, len(jvms()), spark_session_running())
    """
)


def test_auto_stops_the_spark_session_it_started_once_its_steps_are_done(tmp_path: Path) -> None:
    reason = spark_unavailable("local[1]")
    if reason is not None:
        pytest.skip(f"Spark unavailable: {reason}")
    done = subprocess.run(
        [sys.executable, "-c", _RELEASE],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        check=True,
    )
    assert done.stdout.splitlines() == [
        "auto 1 0 False",  # its JVM exited: the memory is back for the Polars steps
        "spark 1 1 True",  # --engine spark keeps it for the run
        "auto 1 1 True",  # a session the router did not start is left alone
    ]
