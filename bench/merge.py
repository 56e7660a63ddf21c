"""MERGE benchmark: :func:`lakehouse.merge.merge` against pyiceberg's ``Table.upsert`` on the same data.

Two identical tables of ``rows`` rows (key ``id`` and four payload columns), written as ten appends
of consecutive key ranges (ten data files, as daily loads leave them), receive the same ``changed``
rows: 90 % updates of existing keys drawn uniformly at random (every file holds some: the worst
case for pruning) and 10 % new keys. The two results are checked to be identical. The merge goes
through write-audit-publish (audit branch, one commit, fast-forward of ``main``, no audit check);
``upsert`` commits straight to ``main``. Each is timed ``repeats`` times from the same starting
snapshot (``main`` is rolled back between runs) and the fastest run counts, as in the router
benchmark: a 2-second measurement on a shared machine drifts by a third from run to run.

    python -m bench.merge                        # small: 200,000 rows, 20,000 changed
    python -m bench.merge --rows 10000000 --changed 1000000 --repeats 5 --workdir /tmp/merge-bench

prints the figures as JSON; :func:`run` returns them (``bench/__main__.py`` calls it).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import polars as pl
import pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.types import DateType, DecimalType, LongType, NestedField, StringType

from lakehouse.merge import merge
from lakehouse.tables import TABLE_PROPERTIES

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_ROWS, DEFAULT_CHANGED, DEFAULT_REPEATS = 200_000, 20_000, 3
FILES = 10
NEW_KEY_SHARE = 0.1
SEED = 20_240_101
SCHEMA = Schema(
    NestedField(1, "id", LongType(), required=False),
    NestedField(2, "customer", LongType(), required=False),
    NestedField(3, "amount", DecimalType(15, 2), required=False),
    NestedField(4, "status", StringType(), required=False),
    NestedField(5, "updated", DateType(), required=False),
)
STATUSES = ("OPEN", "SHIPPED", "RETURNED", "CLOSED")


def _rows(ids: np.ndarray, rng: np.random.Generator, day: int) -> pa.Table:
    """Rows for keys ``ids`` with random payloads, updated on ``day`` (days since 1970-01-01)."""
    n = len(ids)
    cents = pa.array(rng.integers(0, 10_000_000, n), pa.int64()).cast(pa.decimal128(19, 0))
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "customer": pa.array(rng.integers(1, 150_000, n), pa.int64()),
            # the same unscaled integers read at scale 2: cents as an amount
            "amount": pa.Array.from_buffers(pa.decimal128(15, 2), n, cents.buffers()),
            "status": pa.array(np.array(STATUSES)[rng.integers(0, len(STATUSES), n)], pa.string()),
            "updated": pa.array(np.full(n, day, dtype=np.int32), pa.int32()).cast(pa.date32()),
        }
    )


def _table(catalog: SqlCatalog, name: str, rows: int) -> Table:
    """``bench.<name>`` with ``rows`` rows in ``FILES`` appends of consecutive keys (same data every time)."""
    table = catalog.create_table(f"bench.{name}", SCHEMA, properties=TABLE_PROPERTIES)  # as gold's
    rng = np.random.default_rng(SEED)
    for ids in np.array_split(np.arange(rows, dtype=np.int64), FILES):
        table.append(_rows(ids, rng, 19_000))
    return table


def _changes(rows: int, changed: int) -> pa.Table:
    """``changed`` rows: updates of random existing keys and ``NEW_KEY_SHARE`` new keys."""
    rng = np.random.default_rng(SEED + 1)
    inserts = int(changed * NEW_KEY_SHARE)
    updates = rng.choice(rows, changed - inserts, replace=False)
    ids = np.concatenate([updates, np.arange(rows, rows + inserts)])
    return _rows(ids, rng, 19_001)


def _fingerprint(table: Table) -> tuple[int, ...]:
    """Row count and sums over every column: equal for equal contents (up to a vanishing chance)."""
    frame = pl.scan_iceberg(table.refresh())
    sums = frame.select(
        pl.len(),
        pl.col("id").sum(),
        pl.col("customer").sum(),
        (pl.col("amount").cast(pl.Float64) * 100).round().cast(pl.Int64).sum(),
        pl.col("status").str.len_bytes().sum(),
        pl.col("updated").cast(pl.Int32).sum(),
    ).collect()
    return tuple(int(v) for v in sums.row(0))


def _fastest(table: Table, repeats: int, apply: Callable[[], T]) -> tuple[list[float], T]:
    """Seconds of ``repeats`` runs of ``apply`` on ``table`` from its snapshot now, and the last result.

    ``main`` is rolled back to that snapshot after every run but the last.
    """
    base = table.refresh().metadata.current_snapshot_id
    assert base is not None  # the table was written
    seconds = []
    for attempt in range(repeats):
        began = time.perf_counter()
        result = apply()
        seconds.append(round(time.perf_counter() - began, 3))
        if attempt < repeats - 1:
            table.refresh().manage_snapshots().rollback_to_snapshot(base).commit()
    return seconds, result


def run(rows: int, changed: int, workdir: Path, repeats: int = DEFAULT_REPEATS) -> dict[str, object]:
    """Merge and upsert ``changed`` rows into two copies of a ``rows``-row table; the figures.

    The tables live in a temporary directory under ``workdir``, removed at the end.

    Returns ``merge_seconds`` and ``upsert_seconds`` (the fastest of ``repeats`` runs each, all runs
    in ``merge_runs`` and ``upsert_runs``), ``merge_speedup_vs_upsert``, and what the merge touched
    (files read and rewritten of ``table_files``, rows replaced).

    Raises:
        ValueError: if ``changed`` is not between 1 and ``rows``, or ``repeats`` is below 1.
        RuntimeError: if the merge and the upsert leave different contents.

    """
    if not 0 < changed <= rows:
        raise ValueError(f"changed must be between 1 and rows ({rows}), got {changed}")
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="merge-bench-", dir=workdir) as tmp:
        home = Path(tmp)
        (home / "warehouse").mkdir()
        catalog = SqlCatalog(
            "bench", uri=f"sqlite:///{home}/catalog.db", warehouse=(home / "warehouse").as_uri()
        )
        catalog.create_namespace("bench")
        merged, upserted = _table(catalog, "merged", rows), _table(catalog, "upserted", rows)
        data = _changes(rows, changed)
        log.info("tables of %d rows in %d files; merging %d changed rows", rows, FILES, changed)
        merge_runs, merged_by = _fastest(
            merged,
            repeats,
            lambda: merge(merged.refresh(), data, ["id"], branch="audit-bench", properties={}, audit=None),
        )
        log.info("merge: %s s", merge_runs)
        upsert_runs, _ = _fastest(
            upserted, repeats, lambda: upserted.refresh().upsert(data, join_cols=["id"])
        )
        log.info("upsert: %s s", upsert_runs)
        if _fingerprint(merged) != _fingerprint(upserted):
            raise RuntimeError("merge and upsert left different contents")
    stats = merged_by.stats
    return {
        "rows": float(rows),
        "changed": float(changed),
        "merge_seconds": min(merge_runs),
        "upsert_seconds": min(upsert_runs),
        "merge_runs": merge_runs,
        "upsert_runs": upsert_runs,
        "merge_speedup_vs_upsert": round(min(upsert_runs) / min(merge_runs), 1),
        "table_files": float(FILES),
        "merge_files_read": float(stats.files_read),
        "merge_files_rewritten": float(stats.files_rewritten),
        "merge_rows_replaced": float(stats.rows_replaced),
    }


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: run the benchmark and print its figures as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.merge", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", type=int, default=DEFAULT_ROWS, help=f"table rows (default {DEFAULT_ROWS:,})"
    )
    parser.add_argument(
        "--changed", type=int, default=DEFAULT_CHANGED, help=f"changed rows (default {DEFAULT_CHANGED:,})"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=DEFAULT_REPEATS,
        help=f"runs of each, fastest counts (default {DEFAULT_REPEATS})",
    )
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()), help="where tables go")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    print(json.dumps(run(args.rows, args.changed, args.workdir, args.repeats), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
