"""Test isolation: no user config, no telemetry, a project-local Prefect home."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyspark.sql import SparkSession

ROOT = Path(__file__).resolve().parent.parent

# Before anything imports prefect or soda: these are read at import time.
for _name in [n for n in os.environ if n.startswith(("PYICEBERG_", "LAKEHOUSE_", "PREFECT_", "OPENLINEAGE"))]:
    del os.environ[_name]
os.environ["SODA_CORE_TELEMETRY_ENABLED"] = "false"
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_HOME"] = str(ROOT / ".prefect-test")
os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "120"
os.environ["PREFECT_LOGGING_EXTRA_LOGGERS"] = "lakehouse,checks"
# lakehouse logs outside a flow run (unit tests) must not fail once Prefect's logging is configured
os.environ["PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW"] = "ignore"
os.environ["PYICEBERG_HOME"] = str(ROOT / ".prefect-test" / "no-pyiceberg-config")


@pytest.fixture(autouse=True)
def _isolated_lakehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own LAKEHOUSE_HOME unless it sets one itself."""
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path / "lakehouse"))


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One real Prefect engine (temporary local server) for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


SPARK_MASTER = "local[2]"
# Light for 2 cores: tiny test data needs few shuffle partitions and little memory.
TEST_CONF = {
    "spark.sql.shuffle.partitions": "1",
    "spark.default.parallelism": "1",
    "spark.sql.adaptive.enabled": "false",
    "spark.driver.memory": "1g",
}


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    """The session's SparkSession (local, 2 cores); skips the test if pyspark or Java is missing."""
    from lakehouse.engines.spark import spark_session, spark_unavailable, stop_spark_session

    reason = spark_unavailable(SPARK_MASTER)
    if reason is not None:
        pytest.skip(f"Spark unavailable: {reason}")
    session = spark_session(SPARK_MASTER, TEST_CONF)
    yield session
    stop_spark_session()


@pytest.fixture
def rest_catalog(tmp_path: Path) -> Iterator[Catalog]:
    """A pyiceberg catalog on its own Iceberg REST catalog server (warehouse under ``tmp_path``).

    Skips the test if Java, javac or the server's jars (``make jars``) are missing.
    """
    from pyiceberg.catalog.rest import RestCatalog

    from infra.stack import ICEBERG_REST_JARS, iceberg_rest, java_unavailable, rest_catalog_url

    reason = java_unavailable(ICEBERG_REST_JARS, compiler=True)
    if reason is not None:
        pytest.skip(f"Iceberg REST catalog unavailable: {reason}")
    with iceberg_rest(tmp_path / "iceberg-rest") as server:
        yield RestCatalog("t", uri=rest_catalog_url(server))


@pytest.fixture(params=["sql", pytest.param("rest", marks=pytest.mark.integration)])
def any_catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Catalog:
    """Each kind of catalog in turn: pyiceberg's SqlCatalog on SQLite, and an Iceberg REST catalog."""
    if request.param == "rest":
        catalog: Catalog = request.getfixturevalue("rest_catalog")
        return catalog
    from pyiceberg.catalog.sql import SqlCatalog

    return SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db", warehouse=f"file://{tmp_path}/wh")
