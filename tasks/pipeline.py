"""Prefect tasks wrapping the pipeline steps: orchestration concerns only.

Each step runs inside :func:`tasks.lineage.step`, which times it (for the run's metrics) and, when
OpenLineage is configured, reports its inputs, outputs and gate results. Each is a Prefect
materializing task: the runner names the tables it materializes (:func:`tasks.assets.materializing`).
"""

from __future__ import annotations

from datetime import date

from prefect.assets import materialize

from lakehouse import pipeline
from lakehouse.pipeline import Lakehouse, StepAudit, StepResult
from lakehouse.tables import BRONZE, GOLD, QUARANTINE, SILVER
from tasks import lineage
from tasks.assets import namespace_asset
from tasks.cache import step_cache_key
from tasks.retry import transient_only

RETRIES = 3


def _inputs(lh: Lakehouse, table_id: str, batches: list[date]) -> dict[str, int | None]:
    """What the step reads, for the ``lakehouse.inputs`` stamp: landed files by source, tables by snapshot."""
    if table_id.startswith(f"{BRONZE}."):
        return {landed_source(lh, table_id): None}
    read = pipeline.step_inputs(lh, table_id, batches)
    return {table: int(snapshot) if snapshot.isdigit() else None for table, snapshot in read.items()}


def landed_source(lh: Lakehouse, table_id: str) -> str:
    """The landed table behind a bronze table, as lineage names it: ``<source>.<table>``."""
    spec = lh.registry.table(table_id)
    return f"{spec.source}.{spec.name}"


RETRY_DELAYS: list[float] = [1, 5, 15]


@materialize(
    namespace_asset(BRONZE),
    name="bronze",
    task_run_name="{table_id}",
    cache_key_fn=step_cache_key,
    persist_result=True,
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=transient_only,
)
def load_bronze(lh: Lakehouse, table_id: str, batches: list[date], audit: StepAudit | None) -> StepResult:
    """Land a table's files of these batches into bronze."""
    with (
        lineage.step(lh, table_id, batches, inputs=[landed_source(lh, table_id)]) as step,
        pipeline.stamping(table_id, _inputs(lh, table_id, batches)),
    ):
        return step.complete(pipeline.load_bronze(lh, table_id, batches, audit))


@materialize(
    namespace_asset(SILVER),
    name="silver",
    task_run_name="{table_id}",
    cache_key_fn=step_cache_key,
    persist_result=True,
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=transient_only,
)
def build_silver(lh: Lakehouse, table_id: str, batches: list[date], audit: StepAudit | None) -> StepResult:
    """Conform a table's bronze rows of these batches into silver and quarantine."""
    spec = lh.registry.table(table_id)
    with (
        lineage.step(
            lh,
            table_id,
            batches,
            inputs=lh.registry.upstream(table_id),
            outputs=[table_id, spec.identifier(QUARANTINE)],
        ) as step,
        pipeline.stamping(table_id, _inputs(lh, table_id, batches)),
    ):
        return step.complete(pipeline.build_silver(lh, table_id, batches, audit))


@materialize(
    namespace_asset(GOLD),
    name="gold",
    task_run_name="{table_id}",
    cache_key_fn=step_cache_key,
    persist_result=True,
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=transient_only,
)
def build_gold(lh: Lakehouse, table_id: str, batches: list[date], audit: StepAudit | None) -> StepResult:
    """Rebuild a gold table for these batches."""
    with (
        lineage.step(lh, table_id, batches, inputs=lh.registry.upstream(table_id)) as step,
        pipeline.stamping(table_id, _inputs(lh, table_id, batches)),
    ):
        return step.complete(pipeline.build_gold(lh, table_id, batches, audit))
