"""Retry only what is transient: commit conflicts and storage or network errors."""

from __future__ import annotations

from prefect import Task
from prefect.client.schemas.objects import State, TaskRun

from lakehouse.errors import CommitConflictError

TRANSIENT: tuple[type[BaseException], ...] = (CommitConflictError, ConnectionError, TimeoutError)


def transient_only(task: Task[..., object], task_run: TaskRun, state: State[object]) -> bool:
    """Prefect retry condition: retry a failed task run only for a transient error."""
    try:
        state.result()
    except TRANSIENT:
        return True
    except BaseException:
        return False
    return False
