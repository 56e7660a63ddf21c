"""What every flow shares: build the run's context once, then process batch chunks in order."""

from __future__ import annotations

import contextvars
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from importlib.metadata import version
from pathlib import Path
from typing import cast
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.runtime import flow_run

from checks.errors import GateError
from checks.result import GateResult
from lakehouse.batches import chunks
from lakehouse.catalog import ensure_tables, open_catalog
from lakehouse.engines import EngineUnavailableError
from lakehouse.engines.spark import spark_unavailable
from lakehouse.errors import LakehouseError
from lakehouse.landing import LandingZone
from lakehouse.maintenance import parse_duration
from lakehouse.pipeline import GOLD_INPUTS, Lakehouse, RunInfo, StepAudit, StepResult, gold_tables, on_main
from lakehouse.router import Router
from lakehouse.settings import EngineChoice, Settings
from lakehouse.tables import FOREIGN_KEYS, LOAD_ORDER, QUARANTINE, TPCH, all_tables, identifier
from tasks.assets import materializing
from tasks.gate import quality_gate
from tasks.pipeline import build_gold, build_silver, load_bronze


class RunFailed(Exception):
    """Some steps of the run failed; everything that passed was published."""


def code_version() -> str:
    """The git commit of the code, or the package version outside a checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return version("lakehouse-platform")


def open_lakehouse(settings: Settings, flow: str, engine: EngineChoice = "auto") -> Lakehouse:
    """Build the catalog, landing zone, run info and engine router once per flow run; create missing tables.

    The SparkSession is started only when the router first picks Spark (``settings.spark_master``
    and ``settings.spark_conf``).

    Raises:
        EngineUnavailableError: if ``engine`` is ``spark`` and Spark cannot run here.

    """
    unavailable = spark_unavailable(settings.spark_master) if engine == "spark" else None
    if unavailable is not None:  # before anything is written
        raise EngineUnavailableError(f"--engine spark: {unavailable}")
    catalog = open_catalog(settings)
    ensure_tables(catalog, all_tables(), stale_branch_age=parse_duration(settings.stale_branch_age))
    run_id = str(flow_run.get_id() or "local")
    router = Router(engine, settings.engine_threshold_bytes, settings.spark_master, settings.spark_conf)
    run = RunInfo(run_id, flow, code_version(), engine)
    return Lakehouse(catalog, LandingZone(settings.landing), run, router=router)


@dataclass
class RunSummary:
    """What a run did, step by step, and what failed."""

    batches: list[date] = field(default_factory=list)
    steps: list[StepResult] = field(default_factory=list)
    gates: list[GateResult] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)


# Upstream tables of each step, so a failure stops exactly what depends on it.
def _upstream(table_id: str) -> list[str]:
    namespace, name = table_id.split(".")
    if namespace == "bronze":
        return []
    if namespace == "silver":
        return [f"bronze.{name}"] + [f"silver.{p}" for p, _ in FOREIGN_KEYS.get(name, {}).values()]
    return list(GOLD_INPUTS[name])


def process(
    lh: Lakehouse, settings: Settings, dates: list[date], summary: RunSummary, concurrency: int = 1
) -> None:
    """Run bronze → silver → gold for ``dates`` in chunks, oldest first.

    With ``concurrency`` above 1, up to that many chunks run at once (each chunk is idempotent and
    every commit is conflict-checked). Progress is published as a Prefect progress artifact. A step
    whose input failed is not run for that chunk; other tables go on. Failures are collected in
    ``summary`` (the caller decides how the run ends).
    """
    gate = quality_gate(lh, settings.reports_dir, settings.quarantine_max_share, summary.gates)
    # sizes only matter to split several dates: a daily run of one date does not list the zone
    sizes = lh.zone.landed_bytes() if len(dates) > 1 else None
    parts = chunks(dates, settings.chunk_days, sizes, settings.chunk_mb * 1024 * 1024)
    # Prefect's artifact functions are sync/async dual: in a sync flow they return the id.
    progress = cast(
        UUID, create_progress_artifact(0.0, description=f"{len(dates)} batch dates in {len(parts)} chunks")
    )
    references = tuple(n for n in LOAD_ORDER if TPCH[n].kind == "reference")
    facts = tuple(n for n in LOAD_ORDER if n not in references)
    tables: tuple[str, ...] = LOAD_ORDER
    if concurrency > 1:
        # Facts of any chunk may point at reference rows landed in an earlier one: load every
        # chunk's reference tables first, in date order, then fan the fact chunks out.
        for chunk in parts:
            process_chunk(lh, chunk, gate, summary, tables=references, gold=gold_tables(references))
        tables = facts
    # Plain threads carrying the flow's context, not a parent task: a failed step inside a
    # parent task would roll back the cache records of its completed siblings.
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="chunk") as pool:
        futures = [
            pool.submit(
                contextvars.copy_context().run,
                process_chunk,
                lh,
                chunk,
                gate,
                summary,
                tables,
                gold_tables(tables),
            )
            for chunk in parts
        ]
        for done, future in enumerate(futures, 1):
            future.result()
            update_progress_artifact(progress, 100.0 * done / len(parts))


def process_chunk(
    lh: Lakehouse,
    chunk: list[date],
    gate: StepAudit,
    summary: RunSummary,
    tables: tuple[str, ...] = LOAD_ORDER,
    gold: Sequence[str] = tuple(GOLD_INPUTS),
) -> None:
    """Run the bronze and silver steps of ``tables``, then the ``gold`` steps, for one chunk of dates.

    Results and failures are recorded in ``summary``; a step whose input failed in this chunk
    (in this call or an earlier one) is skipped.
    """
    logger = get_run_logger()
    logger.info("chunk %s..%s (%d batch dates)", chunk[0], chunk[-1], len(chunk))
    span = f"{chunk[0]}..{chunk[-1]}"
    failed = {key.split()[0] for key in summary.failures if key.endswith(f" {span}")}
    steps = (
        [(load_bronze, n, f"bronze.{n}") for n in tables]
        + [(build_silver, n, f"silver.{n}") for n in tables]
        + [(build_gold, n, f"gold.{n}") for n in gold]
    )
    for step, name, table_id in steps:
        blocked = [u for u in _upstream(table_id) if u in failed]
        if blocked:
            failed.add(table_id)
            summary.failures[f"{table_id} {span}"] = f"skipped: {', '.join(blocked)} failed"
            continue
        outputs = [table_id, identifier(QUARANTINE, name)] if step is build_silver else [table_id]
        run_step = materializing(step, lh.catalog.name, outputs, _upstream(table_id))
        try:
            result = run_step(lh, name, chunk, gate)
            if not on_main(lh, result):  # a cached result whose snapshot was rolled back
                logger.warning(
                    "%s: snapshot %s of the cached result is no longer on main: running the step again",
                    table_id,
                    result.snapshot_id,
                )
                result = run_step.with_options(refresh_cache=True)(lh, name, chunk, gate)
        except (LakehouseError, GateError) as exc:
            failed.add(table_id)
            summary.failures[f"{table_id} {span}"] = str(exc)
            logger.error("%s failed: %s", table_id, exc)
            continue
        summary.steps.append(result)
        if not result.skipped:
            logger.info(
                "%s: %d in, %d out, %d quarantined, snapshot %s",
                table_id,
                result.rows_in,
                result.rows_out,
                result.quarantined,
                result.snapshot_id,
            )
    if any(TPCH[n].kind == "fact" for n in tables):  # the chunk is done once its facts ran
        summary.batches.extend(chunk)
