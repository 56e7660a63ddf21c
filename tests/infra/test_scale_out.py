"""Beyond one machine: a Spark standalone cluster, Spark on S3 and an Iceberg REST catalog.

Each runs ``python -m flows.daily`` end to end on one landing zone (TPC-H SF0.01, three days, two of
them with anomalies) and must give the silver, quarantine and gold content of a Polars run on the
embedded default (SQLite catalog, local warehouse):

- ``--engine spark`` on a standalone cluster (a master and two workers, separate processes on
  loopback, started from pyspark's ``spark-class``; Python workers on this interpreter) over the
  local stack of ``infra.stack up --catalog rest``: tables in an Iceberg REST catalog, files on S3
  (SeaweedFS), which the executors read and write through ``s3a://`` with pyiceberg's S3 settings
  (never in the run's output);
- ``--engine polars`` on the same kind of stack.

Runs are child processes (pyiceberg and Spark read their configuration once per process) reporting to
one Prefect server. Each test skips, saying why, without Java, pyspark or the jars of ``make jars``.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from infra.stack import (
    ICEBERG_REST_JARS,
    JARS_DIR,
    SPARK_S3_JARS,
    Secrets,
    Stack,
    java_unavailable,
    prefect_api_url,
    prefect_server,
    spark_cluster_state,
    spark_master,
    spark_master_url,
    spark_worker,
)
from lakehouse.engines.spark import spark_unavailable
from lakehouse.landing import LandingZone
from lakehouse.tables import PROP_ENGINE
from tests.conftest import TEST_CONF
from tests.declared import LOAD_ORDER, REGISTRY, seed
from tests.declared import TPCH as TPCH_SOURCE
from tests.flows.conftest import content
from tests.reliability.harness import ROOT, Home

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.spark]

START = date(1995, 3, 4)  # two of the three days get anomalies
DAYS = 3
COMPUTED = (
    [f"silver.{t}" for t in LOAD_ORDER] + [f"quarantine.{t}" for t in LOAD_ORDER] + list(REGISTRY.models)
)
CLUSTER_CONF = {
    **TEST_CONF,
    # The driver (the flow's process) listens on loopback too; each of the two workers runs one
    # one-core executor.
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.executor.memory": "1g",
    "spark.executor.cores": "1",
    "spark.cores.max": "2",
}
S3_JARS_CONF = {
    "spark.driver.extraClassPath": str(JARS_DIR / SPARK_S3_JARS / "*"),
    "spark.executor.extraClassPath": str(JARS_DIR / SPARK_S3_JARS / "*"),
}


NO_REST_CATALOG = java_unavailable(ICEBERG_REST_JARS, compiler=True)


def _needs(*reasons: str | None) -> pytest.MarkDecorator:
    """Skip, with the first reason, before any fixture starts a server or runs a flow."""
    reason = next((r for r in reasons if r is not None), None)
    return pytest.mark.skipif(reason is not None, reason=reason or "")


@pytest.fixture(scope="module")
def root() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="lakehouse-scale-out-") as tmp:
        Path(tmp).chmod(0o711)  # the stack's Postgres runs as an unprivileged user
        yield Path(tmp)


@pytest.fixture(scope="module")
def api_url(root: Path) -> Iterator[str]:
    """One Prefect server for every run of the module (a temporary one per run is slow on 2 cores)."""
    with prefect_server(root / "prefect", ui=False) as server:
        yield prefect_api_url(server)


@pytest.fixture(scope="module")
def landing(root: Path) -> str:
    zone = LandingZone(str(root / "landing"), TPCH_SOURCE)
    seed(zone, scale=0.01, start=START, days=DAYS, workdir=root / "tpchgen")
    return zone.uri


def _computed(home: Home) -> dict[str, pl.DataFrame]:
    with home.catalog() as catalog:
        return {t: content(catalog, t) for t in COMPUTED}


def _engine(home: Home, table_id: str) -> str:
    with home.catalog() as catalog:
        snapshot = catalog.load_table(table_id).current_snapshot()
        assert snapshot is not None and snapshot.summary is not None
        return snapshot.summary.additional_properties[PROP_ENGINE]


@pytest.fixture(scope="module")
def reference(root: Path, landing: str, api_url: str) -> dict[str, pl.DataFrame]:
    """The Polars run on the embedded default."""
    home = Home(root / "embedded", landing, api_url)
    home.run_ok("flows.daily", "--engine", "polars")
    tables = _computed(home)
    assert tables["silver.lineitem"].height > 0 and tables["gold.fct_sales"].height > 0
    assert sum(tables[f"quarantine.{t}"].height for t in LOAD_ORDER) > 0, "the anomalies must be quarantined"
    return tables


def _assert_same(got: dict[str, pl.DataFrame], expected: dict[str, pl.DataFrame]) -> None:
    differ = {t: (got[t].height, frame.height) for t, frame in expected.items() if not got[t].equals(frame)}
    assert not differ, f"content differs from the embedded default (rows got, expected): {differ}"


def _spark_conf(conf: dict[str, str]) -> dict[str, str]:
    return {"LAKEHOUSE_SPARK_CONF": json.dumps(conf)}


# ------------------------------------------------------------------------- Spark standalone cluster

_PYTHON_OF_WORKERS = """
import json, sys
from lakehouse.engines.spark import spark_session, stop_spark_session
spark = spark_session(sys.argv[1], json.loads(sys.argv[2]))
found = spark.sparkContext.parallelize(range(4), 2).map(lambda _: sys.executable).collect()
stop_spark_session()
print(json.dumps(sorted(set(found))))
"""


# ------------------------------------------------------------------------- S3 and the REST catalog


@contextlib.contextmanager
def _rest_on_s3_home(root: Path, landing: str, api_url: str, name: str) -> Iterator[tuple[Home, Secrets]]:
    """A home on the local stack of ``python -m infra.stack up --catalog rest --no-prefect``.

    Its tables are in an Iceberg REST catalog server, their files on SeaweedFS; the stack's env is
    what the runs get, as a user's shell would.
    """
    with Stack.start(root / name, prefect=False, worker=False, catalog="rest") as stack:
        env = {k: v for k, v in stack.env.items() if k.startswith(("PYICEBERG_", "AWS_"))}
        prefix = "PYICEBERG_CATALOG__LAKEHOUSE__"
        assert env[prefix + "TYPE"] == "rest"
        properties = {
            k[len(prefix) :].lower().replace("__", ".").replace("_", "-"): v
            for k, v in env.items()
            if k.startswith(prefix)
        }
        home = Home(root / f"{name}-home", landing, api_url, catalog_env=env, catalog_properties=properties)
        yield home, Secrets.load_or_create(stack.root)


def _assert_on_s3(home: Home) -> None:
    with home.catalog() as catalog:
        for table_id in COMPUTED:
            assert catalog.load_table(table_id).location().startswith("s3://warehouse/"), table_id


@_needs(spark_unavailable(), java_unavailable(SPARK_S3_JARS), NO_REST_CATALOG)
def test_daily_on_a_spark_standalone_cluster_over_s3_equals_the_embedded_default(
    root: Path, landing: str, api_url: str, reference: dict[str, pl.DataFrame]
) -> None:
    cluster = root / "cluster"
    conf = {**CLUSTER_CONF, **S3_JARS_CONF}
    with (
        _rest_on_s3_home(root, landing, api_url, "cluster-s3") as (home, secrets),
        spark_master(cluster) as master,
        spark_worker(cluster, master=master, number=1),
        spark_worker(cluster, master=master, number=2),
    ):
        url = spark_master_url(master)
        run = home.run_ok(
            "flows.daily", "--engine", "spark", extra={"LAKEHOUSE_SPARK_MASTER": url, **_spark_conf(conf)}
        )
        state = spark_cluster_state(master)
        apps = [a["name"] for a in state["activeapps"] + state["completedapps"]]
        assert apps == ["lakehouse"], f"{state}\n{run.tail()}"  # the flow's session ran on the cluster
        leaked = [v for v in (secrets.s3_access_key_id, secrets.s3_secret_access_key) if v in run.output]
        assert not leaked, "an S3 credential is in the run's output"
        workers = subprocess.run(
            [sys.executable, "-c", _PYTHON_OF_WORKERS, url, json.dumps(CLUSTER_CONF)],
            cwd=ROOT,
            env=home.env(),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert workers.returncode == 0, workers.stderr[-4000:]
        # Python workers on the cluster's executors run the project's interpreter, not PATH's python3.
        assert json.loads(workers.stdout.splitlines()[-1]) == [sys.executable]
        assert _engine(home, "gold.fct_sales") == "spark"
        with home.catalog() as catalog:  # written by the executors through s3a://, registered as s3://
            files = catalog.load_table("gold.fct_sales").inspect.files().column("file_path").to_pylist()
        assert files and all(f.startswith("s3://warehouse/") and "/data/spark-" in f for f in files), files
        _assert_on_s3(home)
        _assert_same(_computed(home), reference)


@_needs(NO_REST_CATALOG)
def test_daily_on_a_rest_catalog_with_s3_equals_the_embedded_default(
    root: Path, landing: str, api_url: str, reference: dict[str, pl.DataFrame]
) -> None:
    with _rest_on_s3_home(root, landing, api_url, "rest") as (home, _):
        home.run_ok("flows.daily", "--engine", "polars")
        home.run_ok("flows.daily", "--engine", "polars")  # nothing left to promote: changes nothing
        _assert_on_s3(home)
        _assert_same(_computed(home), reference)
