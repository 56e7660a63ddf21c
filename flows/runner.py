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

from checks.contracts import write_contracts
from checks.errors import GateError
from checks.result import GateResult
from lakehouse.batches import chunks
from lakehouse.catalog import ensure_tables, open_catalog
from lakehouse.engines import EngineUnavailableError
from lakehouse.engines.spark import spark_unavailable
from lakehouse.errors import ConfigurationError, LakehouseError
from lakehouse.maintenance import parse_duration
from lakehouse.pipeline import Lakehouse, RunInfo, StepAudit, StepResult, on_main
from lakehouse.registry import Model, Registry, load_registry
from lakehouse.router import Router
from lakehouse.settings import EngineChoice, Settings
from lakehouse.spec import SourceTable
from lakehouse.tables import BRONZE, QUARANTINE, SILVER
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
    """Build the registry, catalog, run info and engine router once per flow run; create missing tables.

    Every source under ``settings.sources`` is validated first (a bad spec stops the run before
    anything is written). The SparkSession is started only when the router first picks Spark
    (``settings.spark_master`` and ``settings.spark_conf``).

    Raises:
        SpecError: if a source spec or model is invalid (every problem, with file, key and fix).
        EngineUnavailableError: if ``engine`` is ``spark`` and Spark cannot run here.

    """
    registry = load_registry(settings.sources)
    unavailable = spark_unavailable(settings.spark_master) if engine == "spark" else None
    if unavailable is not None:  # before anything is written
        raise EngineUnavailableError(f"--engine spark: {unavailable}")
    catalog = open_catalog(settings)
    ensure_tables(catalog, registry.definitions(), stale_branch_age=parse_duration(settings.stale_branch_age))
    run_id = str(flow_run.get_id() or "local")
    router = Router(engine, settings.engine_threshold_bytes, settings.spark_master, settings.spark_conf)
    run = RunInfo(run_id, flow, code_version(), engine)
    return Lakehouse(catalog, registry, settings.landing, run, router=router)


@dataclass
class RunSummary:
    """What a run did, step by step, and what failed."""

    batches: list[date] = field(default_factory=list)
    steps: list[StepResult] = field(default_factory=list)
    gates: list[GateResult] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)


def selected(registry: Registry, sources: Sequence[str] | None) -> list[str]:
    """The sources a run covers: those named (each must be declared), or every declared one.

    Raises:
        ConfigurationError: if a named source is not declared.

    """
    if not sources:
        return list(registry.sources)
    unknown = [s for s in sources if s not in registry.sources]
    if unknown:
        known = ", ".join(registry.sources)
        raise ConfigurationError(f"--source {', '.join(unknown)}: no such source (declared: {known})")
    return list(dict.fromkeys(sources))


def process(
    lh: Lakehouse,
    settings: Settings,
    dates: list[date],
    summary: RunSummary,
    concurrency: int = 1,
    sources: Sequence[str] | None = None,
) -> None:
    """Run bronze → silver → gold for ``dates`` in chunks, oldest first.

    With ``concurrency`` above 1, up to that many chunks run at once (each chunk is idempotent and
    every commit is conflict-checked). Progress is published as a Prefect progress artifact. A step
    whose input failed is not run for that chunk; other tables go on. Failures are collected in
    ``summary`` (the caller decides how the run ends). The contracts the gates verify are derived
    from the declarations and written to ``settings.contracts_dir`` first.

    Raises:
        ContractError: if a source's extra checks cannot be merged into its derived contracts.
        ConfigurationError: if ``sources`` names an undeclared source.
    """
    contracts = write_contracts(lh.registry, settings.contracts_dir)
    gate = quality_gate(lh, contracts, settings.reports_dir, settings.quarantine_max_share, summary.gates)
    # sizes only matter to split several dates: a daily run of one date does not list the zone
    landed = lh.registry.landed(selected(lh.registry, sources))
    sizes = _landed_bytes(lh, {t.source for t in landed}) if len(dates) > 1 else None
    parts = chunks(dates, settings.chunk_days, sizes, settings.chunk_mb * 1024 * 1024)
    # Prefect's artifact functions are sync/async dual: in a sync flow they return the id.
    progress = cast(
        UUID, create_progress_artifact(0.0, description=f"{len(dates)} batch dates in {len(parts)} chunks")
    )
    references = tuple(t for t in landed if t.kind == "reference")
    facts = tuple(t for t in landed if t not in references)
    tables: tuple[SourceTable, ...] = tuple(landed)
    if concurrency > 1:
        # Facts of any chunk may point at reference rows landed in an earlier one: load every
        # chunk's reference tables first, in date order, then fan the fact chunks out.
        for chunk in parts:
            process_chunk(lh, chunk, gate, summary, references, lh.registry.models_for(references))
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
                lh.registry.models_for(tables),
            )
            for chunk in parts
        ]
        for done, (chunk, future) in enumerate(zip(parts, futures, strict=True), 1):
            future.result()
            summary.batches.extend(chunk)
            update_progress_artifact(progress, 100.0 * done / len(parts))


def lineage_outputs(registry: Registry, table_id: str) -> list[str]:
    """The tables the step writing ``table_id`` materializes (a silver step: its quarantine table too)."""
    if table_id.startswith(f"{SILVER}."):
        return [table_id, registry.table(table_id).identifier(QUARANTINE)]
    return [table_id]


def lineage(registry: Registry) -> dict[str, list[str]]:
    """Every table the steps write -> the tables it is built from (a quarantine table: its bronze)."""
    graph: dict[str, list[str]] = {}
    for table in registry.landed():
        graph[table.identifier(BRONZE)] = []
        graph[table.identifier(SILVER)] = registry.upstream(table.identifier(SILVER))
        graph[table.identifier(QUARANTINE)] = [table.identifier(BRONZE)]
    return graph | {m: registry.upstream(m) for m in registry.models}


def _landed_bytes(lh: Lakehouse, sources: set[str]) -> dict[date, int]:
    """Bytes landed per batch date, over the tables of ``sources``."""
    out: dict[date, int] = {}
    for source in sorted(sources):
        for day, size in lh.zone(source).landed_bytes().items():
            out[day] = out.get(day, 0) + size
    return out


def process_chunk(
    lh: Lakehouse,
    chunk: list[date],
    gate: StepAudit,
    summary: RunSummary,
    tables: Sequence[SourceTable],
    gold: Sequence[Model],
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
        [(load_bronze, t.identifier(BRONZE)) for t in tables]
        + [(build_silver, t.identifier(SILVER)) for t in tables]
        + [(build_gold, m.identifier) for m in gold]
    )
    for step, table_id in steps:
        blocked = [u for u in lh.registry.upstream(table_id) if u in failed]
        if blocked:
            failed.add(table_id)
            summary.failures[f"{table_id} {span}"] = f"skipped: {', '.join(blocked)} failed"
            continue
        outputs = lineage_outputs(lh.registry, table_id)
        run_step = materializing(step, lh.catalog.name, outputs, lh.registry.upstream(table_id))
        try:
            result = run_step(lh, table_id, chunk, gate)
            if not on_main(lh, result):  # a cached result whose snapshot was rolled back
                logger.warning(
                    "%s: snapshot %s of the cached result is no longer on main: running the step again",
                    table_id,
                    result.snapshot_id,
                )
                result = run_step.with_options(refresh_cache=True)(lh, table_id, chunk, gate)
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
