"""Prefect tasks wrapping the pipeline steps: orchestration concerns only."""

from __future__ import annotations

from datetime import date

from prefect import task
from prefect.cache_policies import NO_CACHE

from lakehouse import pipeline
from lakehouse.pipeline import Lakehouse, StepAudit, StepResult
from tasks.retry import transient_only

RETRIES = 3
RETRY_DELAYS: list[float] = [1, 5, 15]


@task(
    name="bronze",
    task_run_name="bronze.{name}",
    cache_policy=NO_CACHE,
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=transient_only,
)
def load_bronze(lh: Lakehouse, name: str, batches: list[date], audit: StepAudit | None) -> StepResult:
    """Land a table's files of these batches into bronze."""
    return pipeline.load_bronze(lh, name, batches, audit)


@task(
    name="silver",
    task_run_name="silver.{name}",
    cache_policy=NO_CACHE,
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=transient_only,
)
def build_silver(lh: Lakehouse, name: str, batches: list[date], audit: StepAudit | None) -> StepResult:
    """Conform a table's bronze rows of these batches into silver and quarantine."""
    return pipeline.build_silver(lh, name, batches, audit)


@task(
    name="gold",
    task_run_name="gold.{name}",
    cache_policy=NO_CACHE,
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=transient_only,
)
def build_gold(lh: Lakehouse, name: str, batches: list[date], audit: StepAudit | None) -> StepResult:
    """Rebuild a gold table for these batches."""
    return pipeline.build_gold(lh, name, batches, audit)
