"""Polars against Spark on the same partition at several sizes: the data behind the engine threshold.

The workload is the heaviest step of a run, silver ``lineitem``: read the bronze rows of the first
``n`` batch dates, conform them (parse, validate against the parent keys of ``orders``, ``part``
and ``supplier``, deduplicate), materialize, count the good and rejected rows, and write the good
rows as Parquet files. Everything but the commit (which is pyiceberg's, the same for both engines):

- Polars: :class:`lakehouse.engines.polars.PolarsEngine`, the Arrow result written with pyarrow;
- Spark: :class:`lakehouse.engines.spark.SparkEngine`, files written into the table location by
  Spark and deleted afterwards (never committed).

``python -m bench.router --engine polars|spark --home DIR --days 1,4,16 --repeat 2 --out FILE``
measures one engine in this process (one worker process per engine, so the JVM's memory is
measured apart) and writes the timings as JSON. The size of a partition is its rows and its
bytes in data files, estimated from the Iceberg metadata as the table's average bytes per row
times the rows (the router reads sizes from metadata, not by counting).

:func:`analyse` turns both engines' timings and the threshold into the crossover point and the
worst ratio of the engine the router picks to the better one.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lakehouse.catalog import open_catalog
from lakehouse.registry import load_registry
from lakehouse.settings import BUNDLED_SOURCES, Settings
from lakehouse.tables import BATCH_DATE, LOADED_AT, RUN_ID
from lakehouse.transforms.silver import conform

GIB = 1024**3
TABLE = "lineitem"
REPEAT_BUDGET_SECONDS = 120  # a size is not measured again once its runs took this long


def _table_size(table: Any) -> tuple[int, int]:
    """Rows and data-file bytes of a table's current snapshot, from its summary."""
    snapshot = table.current_snapshot()
    summary = snapshot.summary.additional_properties if snapshot and snapshot.summary else {}
    return int(summary.get("total-records", 0)), int(summary.get("total-files-size", 0))


def _engine(name: str, settings: Settings) -> tuple[Any, float]:
    """The engine to measure and how long it took to start (a Spark session starts a JVM)."""
    began = time.perf_counter()
    if name == "polars":
        from lakehouse.engines.polars import PolarsEngine

        return PolarsEngine(), 0.0
    from lakehouse.engines.spark import SparkEngine, spark_session

    master = getattr(settings, "spark_master", "local[*]")
    session = spark_session(master, getattr(settings, "spark_conf", {}))
    return SparkEngine(session), round(time.perf_counter() - began, 3)


def _remove(paths: Sequence[str]) -> None:
    for path in paths:
        Path(path.removeprefix("file://")).unlink(missing_ok=True)


def measure(engine: Any, catalog: Any, batches: list[date], scratch: Path) -> dict[str, Any]:
    """One run of the workload on ``batches``; its seconds and row counts."""
    bronze = catalog.load_table(f"bronze.{TABLE}")
    silver = catalog.load_table(f"silver.{TABLE}")
    registry = load_registry(BUNDLED_SOURCES)  # before the clock: the spec is not the workload
    spec = registry.table(f"silver.{TABLE}")
    tables = registry.sources[spec.source].tables
    began = time.perf_counter()
    rows = engine.read_table(bronze, batches=batches)
    parents = {}
    for reference in spec.references:
        scope = batches if tables[reference.table].kind == "fact" else None
        parent = engine.read_table(catalog.load_table(f"silver.{reference.table}"), batches=scope)
        parents[reference.label] = parent.select(*reference.key)
    result = conform(rows, spec, parents, materialize=engine.materialize)  # as the silver step
    good_rows, rejected_rows = engine.count(result.good), engine.count(result.rejected)
    constants = {RUN_ID: "bench-router", LOADED_AT: datetime.now(UTC)}
    written = engine.write(silver, result.good, constants=constants)
    if isinstance(written, pa.Table):
        pq.write_table(written, scratch / "part-0.parquet", compression="zstd")
    seconds = time.perf_counter() - began
    if not isinstance(written, pa.Table):
        _remove(written.paths)
    for leftover in scratch.iterdir():
        leftover.unlink()
    return {"seconds": round(seconds, 3), "rows_in": good_rows + rejected_rows, "rows_good": good_rows}


def run(engine_name: str, home: Path, days: list[int], repeat: int) -> dict[str, Any]:
    """Measure ``engine_name`` on the first ``n`` batch dates of ``home``'s lineitem, for each ``n``.

    Each size runs ``repeat`` times (fewer once its runs took ``REPEAT_BUDGET_SECONDS``); the
    fastest run counts. A first run on one date, not counted, warms the engine up.
    """
    settings = Settings(home=home)
    catalog = open_catalog(settings)
    bronze = catalog.load_table(f"bronze.{TABLE}")
    table_rows, table_bytes = _table_size(bronze)
    dates = sorted(set(bronze.scan(selected_fields=(BATCH_DATE,)).to_arrow().column(BATCH_DATE).to_pylist()))
    engine, startup = _engine(engine_name, settings)
    scratch = Path(tempfile.mkdtemp(prefix="bench-router-"))
    points = []
    try:
        measure(engine, catalog, dates[:1], scratch)  # warm-up: imports, JIT, first Spark job
        for n in sorted({min(d, len(dates)) for d in days}):
            runs = [measure(engine, catalog, dates[:n], scratch)]
            while len(runs) < repeat and sum(r["seconds"] for r in runs) < REPEAT_BUDGET_SECONDS:
                runs.append(measure(engine, catalog, dates[:n], scratch))
            rows = runs[0]["rows_in"]
            print(f"{engine_name}: {n} dates, {rows} rows: {[r['seconds'] for r in runs]} s", flush=True)
            points.append(
                {
                    "days": n,
                    "rows": rows,
                    "bytes": round(rows * table_bytes / table_rows) if table_rows else 0,
                    "seconds": min(r["seconds"] for r in runs),
                    "all_seconds": [r["seconds"] for r in runs],
                }
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if engine_name == "spark":
            from lakehouse.engines.spark import stop_spark_session

            stop_spark_session()
    return {"engine": engine_name, "startup_seconds": startup, "points": points}


# ---------------------------------------------------------------------------------------------------
# Analysis (pure)


def crossover(points: list[dict[str, Any]], key: str) -> float | None:
    """Where Spark becomes faster than Polars, in ``key`` units (``rows`` or ``bytes``).

    ``points`` hold ``key``, ``polars`` and ``spark`` seconds, sorted by size. The crossover is the
    first size where Spark wins, interpolated between it and the size before (where Polars won) as
    the zero of log(spark / polars), linearly in log size. ``None`` if Spark never wins; the
    smallest size if Spark already wins there.
    """
    ratios = [(p[key], math.log(p["spark"] / p["polars"])) for p in points if p[key] > 0]
    for i, (size, ratio) in enumerate(ratios):
        if ratio < 0:
            if i == 0:
                return float(size)
            before, before_ratio = ratios[i - 1]
            fraction = before_ratio / (before_ratio - ratio)
            return math.exp(math.log(before) + fraction * (math.log(size) - math.log(before)))
    return None


MEMORY_SHARE = 0.5
"""Share of the machine's memory one in-process (Polars) step may take: the rest is for the OS,
concurrent steps and a Spark driver."""
STEP_MEMORY_BYTES = 6 * 10**9
"""Most memory one in-process (Polars) step may take on any machine: the 6 GB the benchmarks hold
a bulk run to at SF10. Polars' bytes of RSS per byte of work are of its whole process (imports and
all), as a flow's steps are (SF10 at this budget: 3.88 GiB, ``bench/results/sf10-366d.json``).
Larger work goes to Spark, whose own process tree peaked near 5.6 GiB on the router's workload
here, so Spark is the way past the budget, not a way to save memory below it."""


def recommended_threshold(
    crossover_bytes: float | None, polars_peak_gib: float, largest_bytes: int, memory_gib: float
) -> tuple[int, str]:
    """The engine threshold the measurements support, and why.

    Where Spark got faster than Polars, that crossover. Where it never did, Polars is the faster
    engine as long as it fits in memory: the threshold is the work at which its measured peak RSS
    per byte of work (its peak at the largest size) would reach :data:`STEP_MEMORY_BYTES`, or
    ``MEMORY_SHARE`` of a smaller machine's memory.
    """
    if crossover_bytes is not None:
        return round(crossover_bytes), "the measured crossover: Spark is faster above it"
    per_byte = polars_peak_gib * GIB / largest_bytes
    budget = min(STEP_MEMORY_BYTES, MEMORY_SHARE * memory_gib * GIB)
    threshold = round(budget / per_byte)
    return threshold, (
        f"Spark was slower at every size measured, so the limit is memory: Polars peaked at "
        f"{per_byte:.1f} bytes of RSS per byte of work, and {threshold:,} bytes of work keep a step "
        f"under {budget / GIB:.2f} GiB (of {memory_gib:.1f} GiB)"
    )


def analyse(
    polars: dict[str, Any], spark: dict[str, Any], threshold_bytes: int, memory_gib: float
) -> dict[str, Any]:
    """Join both engines' points by size; the router's pick, its ratio to the better engine, the crossover.

    The router picks Spark when a partition's bytes exceed ``threshold_bytes``; the threshold the
    measurements support on a machine with ``memory_gib`` is :func:`recommended_threshold`.
    """
    spark_by_days = {p["days"]: p for p in spark["points"]}
    points = []
    for p in polars["points"]:
        s = spark_by_days.get(p["days"])
        if s is None:
            continue
        picked = "spark" if p["bytes"] > threshold_bytes else "polars"
        times = {"polars": p["seconds"], "spark": s["seconds"]}
        points.append(
            {
                "days": p["days"],
                "rows": p["rows"],
                "bytes": p["bytes"],
                **times,
                "better": min(times, key=lambda e: times[e]),
                "picked": picked,
                "picked_vs_better": round(times[picked] / min(times.values()), 3),
            }
        )
    rows, size = crossover(points, "rows"), crossover(points, "bytes")
    largest = max((p["bytes"] for p in points), default=0)
    recommended, basis = (
        recommended_threshold(size, polars["peak_rss_gb"], largest, memory_gib) if largest else (None, None)
    )
    return {
        "points": points,
        "threshold_bytes": threshold_bytes,
        "worst_ratio": max((p["picked_vs_better"] for p in points), default=None),
        "crossover_rows": round(rows) if rows is not None else None,
        "crossover_bytes": round(size) if size is not None else None,
        "largest_measured_bytes": largest,
        "recommended_threshold_bytes": recommended,
        "recommended_threshold_basis": basis,
    }


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(prog="python -m bench.router", description=__doc__)
    parser.add_argument("--engine", choices=["polars", "spark"], required=True)
    parser.add_argument(
        "--home", type=Path, required=True, help="LAKEHOUSE_HOME holding bronze/silver lineitem"
    )
    parser.add_argument("--days", required=True, help="comma-separated numbers of batch dates")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    days = [int(d) for d in args.days.split(",")]
    result = run(args.engine, args.home, days, args.repeat)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
