"""One SparkSession for the whole test session (Spark tests are marked ``spark``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from lakehouse.engines.spark import spark_session, spark_unavailable, stop_spark_session

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

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
    reason = spark_unavailable("local[2]")
    if reason is not None:
        pytest.skip(f"Spark unavailable: {reason}")
    session = spark_session("local[2]", TEST_CONF)
    yield session
    stop_spark_session()
