"""Prefect tasks wrapping the pipeline steps: orchestration concerns only.

Each step runs inside :func:`tasks.lineage.step`, which times it (for the run's metrics) and, when
OpenLineage is configured, reports its inputs, outputs and gate results. Each is a Prefect
materializing task: the runner names the tables it materializes (:func:`tasks.assets.materializing`).
"""

from __future__ import annotations

from datetime import date

from prefect.assets import materialize

from lakehouse import pipeline
from lakehouse.pipeline import GOLD_INPUTS, Lakehouse, StepAudit, StepResult
from lakehouse.tables import BRONZE, FOREIGN_KEYS, GOLD, QUARANTINE, SILVER, SOURCE, identifier
from tasks import lineage
from tasks.assets import namespace_asset
from tasks.cache import step_cache_key
from tasks.retry import transient_only

RETRIES = 3


def _inputs(lh: Lakehouse, layer: str, name: str, batches: list[date]) -> dict[str, int | None]:
    """What the step reads, for the ``lakehouse.inputs`` stamp: landed files by source, tables by snapshot."""
    if layer == BRONZE:
        return {identifier(SOURCE, name): None}
    read = pipeline.step_inputs(lh, layer, name, batches)
    return {table: int(snapshot) if snapshot.isdigit() else None for table, snapshot in read.items()}


RETRY_DELAYS: list[float] = [1, 5, 15]


@materialize(
    namespace_asset(BRONZE),
    name="bronze",
    task_run_name="bronze.{name}",
    cache_key_fn=step_cache_key,
    persist_result=True,
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=transient_only,
)
def load_bronze(lh: Lakehouse, name: str, batches: list[date], audit: StepAudit | None) -> StepResult:
    """Land a table's files of these batches into bronze."""
    with (
        lineage.step(lh, identifier(BRONZE, name), batches, inputs=[identifier(SOURCE, name)]) as step,
        pipeline.stamping(identifier(BRONZE, name), _inputs(lh, BRONZE, name, batches)),
    ):
        return step.complete(pipeline.load_bronze(lh, name, batches, audit))


@materialize(
    namespace_asset(SILVER),
    name="silver",
    task_run_name="silver.{name}",
    cache_key_fn=step_cache_key,
    persist_result=True,
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=transient_only,
)
def build_silver(lh: Lakehouse, name: str, batches: list[date], audit: StepAudit | None) -> StepResult:
    """Conform a table's bronze rows of these batches into silver and quarantine."""
    parents = [identifier(SILVER, parent) for parent, _ in FOREIGN_KEYS.get(name, {}).values()]
    with (
        lineage.step(
            lh,
            identifier(SILVER, name),
            batches,
            inputs=[identifier(BRONZE, name), *dict.fromkeys(parents)],
            outputs=[identifier(SILVER, name), identifier(QUARANTINE, name)],
        ) as step,
        pipeline.stamping(identifier(SILVER, name), _inputs(lh, SILVER, name, batches)),
    ):
        return step.complete(pipeline.build_silver(lh, name, batches, audit))


@materialize(
    namespace_asset(GOLD),
    name="gold",
    task_run_name="gold.{name}",
    cache_key_fn=step_cache_key,
    persist_result=True,
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=transient_only,
)
def build_gold(lh: Lakehouse, name: str, batches: list[date], audit: StepAudit | None) -> StepResult:
    """Rebuild a gold table for these batches."""
    with (
        lineage.step(lh, identifier(GOLD, name), batches, inputs=GOLD_INPUTS[name]) as step,
        pipeline.stamping(identifier(GOLD, name), _inputs(lh, GOLD, name, batches)),
    ):
        return step.complete(pipeline.build_gold(lh, name, batches, audit))
