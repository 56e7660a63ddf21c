"""Retries on the real Prefect engine: transient errors are retried, quality-gate failures are not."""

from __future__ import annotations

import pytest
from prefect import flow, task

from checks.errors import CheckCouldNotRun, QualityGateFailed
from lakehouse.errors import CommitConflictError
from tasks.retry import transient_only

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _run(error: Exception) -> list[int]:
    attempts: list[int] = []

    @task(retries=3, retry_delay_seconds=0, retry_condition_fn=transient_only)
    def step() -> str:
        attempts.append(len(attempts) + 1)
        if len(attempts) == 1:
            raise error
        return "done"

    @flow
    def run() -> str:
        return step()

    try:
        run()
    except type(error):
        pass
    return attempts


def test_a_commit_conflict_is_retried() -> None:
    assert _run(CommitConflictError("silver.orders: main moved")) == [1, 2]


def test_a_connection_error_is_retried() -> None:
    assert _run(ConnectionError("catalog unreachable")) == [1, 2]


@pytest.mark.parametrize("error", [QualityGateFailed("bad data"), CheckCouldNotRun("no column")])
def test_a_gate_failure_is_never_retried(error: Exception) -> None:
    assert _run(error) == [1]
