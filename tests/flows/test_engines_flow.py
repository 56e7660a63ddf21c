"""The daily flow on each engine: Spark and Polars runs on the same landing zone give the same tables."""

from __future__ import annotations

import json

import pytest
from pyiceberg.catalog import Catalog

from flows.daily import daily, main
from lakehouse.tables import PROP_ENGINE, PROP_ENGINE_REASON
from tests.conftest import SPARK_MASTER, TEST_CONF
from tests.declared import LOAD_ORDER, REGISTRY
from tests.flows.conftest import Landing, content

pytestmark = [pytest.mark.slow, pytest.mark.spark, pytest.mark.usefixtures("prefect_harness", "spark")]
COMPUTED = (
    [f"silver.{t}" for t in LOAD_ORDER] + [f"quarantine.{t}" for t in LOAD_ORDER] + list(REGISTRY.models)
)


@pytest.fixture(autouse=True)
def _test_spark(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flows build their session from settings: the test session's, so they share it.

    The dirty landing zone quarantines more than the default 5% of some batches: allowed here.
    """
    monkeypatch.setenv("LAKEHOUSE_QUARANTINE_MAX_SHARE", "0.5")
    monkeypatch.setenv("LAKEHOUSE_SPARK_MASTER", SPARK_MASTER)
    monkeypatch.setenv("LAKEHOUSE_SPARK_CONF", json.dumps(TEST_CONF))


@pytest.fixture
def polars_run(dirty_landing: Landing, use_home) -> Catalog:  # type: ignore[no-untyped-def]
    catalog: Catalog = use_home(dirty_landing, "polars")
    daily(engine="polars")
    return catalog


def _stamp(catalog: Catalog, table_id: str) -> tuple[str, str]:
    snapshot = catalog.load_table(table_id).current_snapshot()
    assert snapshot is not None and snapshot.summary is not None
    props = snapshot.summary.additional_properties
    return props[PROP_ENGINE], props[PROP_ENGINE_REASON]


def test_spark_and_polars_give_the_same_silver_quarantine_and_gold(
    dirty_landing: Landing,
    polars_run: Catalog,
    use_home,  # type: ignore[no-untyped-def]
) -> None:
    spark_catalog = use_home(dirty_landing, "spark")
    daily(engine="spark")
    for table_id in COMPUTED:
        expected = content(polars_run, table_id)
        assert expected.height > 0 or table_id.startswith("quarantine."), table_id
        assert content(spark_catalog, table_id).equals(expected), table_id
    assert _stamp(spark_catalog, "silver.lineitem") == ("spark", "asked for spark")
    assert _stamp(spark_catalog, "gold.fct_sales") == ("spark", "asked for spark")
    assert _stamp(polars_run, "gold.fct_sales") == ("polars", "asked for polars")
    # landed files are always parsed by the validating reader, in process
    assert _stamp(spark_catalog, "bronze.lineitem")[0] == "polars"
    assert content(spark_catalog, "quarantine.lineitem").height > 0  # the anomalies took the Spark path


def test_auto_sends_only_work_above_the_threshold_to_spark(
    dirty_landing: Landing,
    polars_run: Catalog,
    use_home,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    auto_catalog = use_home(dirty_landing, "auto")
    # Between the sizes of the small reference tables and of the line items.
    monkeypatch.setenv("LAKEHOUSE_ENGINE_THRESHOLD_BYTES", str(50_000))
    with caplog.at_level("INFO", logger="lakehouse.router"):
        daily(engine="auto")
    engine, reason = _stamp(auto_catalog, "silver.lineitem")
    assert engine == "spark" and reason.startswith("auto: ") and "> threshold 50000 B" in reason
    engine, reason = _stamp(auto_catalog, "silver.region")
    assert engine == "polars" and "<= threshold 50000 B" in reason
    assert "silver.lineitem: engine spark for " in caplog.text
    for table_id in COMPUTED:
        assert content(auto_catalog, table_id).equals(content(polars_run, table_id)), table_id


def test_engine_spark_without_spark_stops_before_writing(
    dirty_landing: Landing,
    use_home,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    use_home(dirty_landing, "nojava")
    monkeypatch.setenv("JAVA_HOME", "/nonexistent-java")
    monkeypatch.setenv("PATH", "/nonexistent-bin")
    monkeypatch.setenv("LAKEHOUSE_SPARK_MASTER", "local[1]")  # not the cached session's master
    assert main(["--engine", "spark"]) == 2
    assert "--engine spark: Spark needs Java 17 or later" in caplog.text
