"""One daily run on a Spark standalone cluster against ``local[*]``, on this machine.

``python -m bench.cluster [--scale 0.1] [--repeat 2] [--out bench/results/cluster-sf0.1.json]``

A landing zone of two days of TPC-H (the reference snapshot lands on the first) is seeded; a
lakehouse is bootstrapped with the first day (``--engine polars``) and saved. Then, ``--repeat``
times and alternating (so the machine's drift hits both alike), the saved lakehouse is restored and
``python -m flows.daily --date <second day> --engine spark`` runs with ``LAKEHOUSE_SPARK_MASTER``
``local[*]`` or the cluster: a master and two workers of one core and 1 GiB each, started from
pyspark's ``spark-class`` on loopback (``infra.stack``). Wall time is from process start to exit
(interpreter, Prefect, the Spark session's start and every step); peak RSS is the flow's process
tree (the driver JVM included; the cluster's executors are the workers' children, not counted).
Both lakehouses must end with the same silver, quarantine and gold content, or the run fails.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from bench.environment import load_average, machine, versions
from bench.measure import Measurement, run
from infra.stack import prefect_api_url, prefect_server, spark_master, spark_master_url, spark_worker
from lakehouse.catalog import RetryingSqlCatalog, embedded_default
from lakehouse.landing import LandingZone
from lakehouse.registry import load_registry
from lakehouse.settings import BUNDLED_SOURCES

ROOT = Path(__file__).resolve().parent.parent
START = date(1995, 3, 4)
CLUSTER_CONF = {
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.executor.memory": "1g",
    "spark.executor.cores": "1",
    "spark.cores.max": "2",
}


def _env(home: Path, landing: str, api_url: str, **extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("PYICEBERG_", "LAKEHOUSE_"))}
    return {
        **keep,
        "LAKEHOUSE_HOME": str(home),
        "LAKEHOUSE_LANDING_URI": landing,
        "PREFECT_API_URL": api_url,
        "PREFECT_HOME": str(home.parent / "prefect-home"),
        "SODA_CORE_TELEMETRY_ENABLED": "false",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        **extra,
    }


_runs = itertools.count(1)


def _daily(home: Path, env: dict[str, str], *args: str) -> Measurement:
    command = [sys.executable, "-m", "flows.daily", *args]
    measured = run(command, env=env, log_path=home.parent / "logs" / f"{next(_runs):02d}.log", cwd=ROOT)
    if not measured.ok:
        raise SystemExit(f"{' '.join(args)} failed, see {measured.log}")
    return measured


def portable(measured: dict[str, Any]) -> dict[str, Any]:
    """A measurement without this machine's paths (interpreter, temporary log)."""
    out = {k: v for k, v in measured.items() if k != "log"}
    out["command"] = str(out["command"]).replace(sys.executable, "python")
    return out


def _content(home: Path, computed: list[str]) -> dict[str, pl.DataFrame]:
    catalog = RetryingSqlCatalog("lakehouse", **embedded_default(home))
    try:
        out = {}
        for table_id in computed:
            frame = pl.from_arrow(catalog.load_table(table_id).scan().to_arrow())
            assert isinstance(frame, pl.DataFrame)
            frame = frame.select([c for c in frame.columns if not c.startswith("_")])
            out[table_id] = frame.sort(frame.columns)
        return out
    finally:
        catalog.engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.1)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    day = START + timedelta(days=1)
    registry = load_registry(BUNDLED_SOURCES)
    tpch = registry.sources["tpch"]
    computed = [f"{ns}.{t}" for ns in ("silver", "quarantine") for t in tpch.tables] + list(registry.models)
    with tempfile.TemporaryDirectory(prefix="lakehouse-bench-cluster-") as tmp:
        work = Path(tmp)
        zone = LandingZone(str(work / "landing"), tpch)
        registry.seeder("tpch").seed(zone, scale=args.scale, start=START, days=2, workdir=work / "tpchgen")
        home, saved = work / "lh", work / "lh.saved"
        runs: dict[str, list[dict[str, Any]]] = {"local[*]": [], "cluster": []}
        contents: dict[str, dict[str, pl.DataFrame]] = {}
        with prefect_server(work / "prefect", ui=False) as server:
            api_url = prefect_api_url(server)
            _daily(home, _env(home, zone.uri, api_url), "--date", START.isoformat(), "--engine", "polars")
            shutil.copytree(home, saved)
            with (
                spark_master(work / "cluster") as master,
                spark_worker(work / "cluster", master=master, number=1),
                spark_worker(work / "cluster", master=master, number=2),
            ):
                masters = {"local[*]": ("local[*]", {}), "cluster": (spark_master_url(master), CLUSTER_CONF)}
                for _ in range(args.repeat):
                    for name, (url, conf) in masters.items():
                        shutil.rmtree(home)
                        shutil.copytree(saved, home)
                        load = load_average()
                        extra = {"LAKEHOUSE_SPARK_MASTER": url, "LAKEHOUSE_SPARK_CONF": json.dumps(conf)}
                        env = _env(home, zone.uri, api_url, **extra)
                        measured = _daily(home, env, "--date", day.isoformat(), "--engine", "spark")
                        runs[name].append({**portable(measured.as_dict()), "load_average_before": load})
                        print(f"{name}: {measured.seconds:.1f} s, peak RSS {measured.peak_rss_gb:.2f} GiB")
                        contents[name] = _content(home, computed)
        differ = [t for t in computed if not contents["cluster"][t].equals(contents["local[*]"][t])]
        if differ:
            raise SystemExit(f"the cluster's content differs from local[*]'s in {differ}")
    result = {
        "scale": args.scale,
        "day": day.isoformat(),
        "machine": machine(),
        "versions": versions(),
        "cluster": "1 master, 2 workers x 1 core x 1 GiB, on loopback",
        "runs": runs,
        "median_seconds": {name: statistics.median(r["seconds"] for r in rs) for name, rs in runs.items()},
        "same_content": True,
    }
    print(json.dumps(result["median_seconds"]))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
