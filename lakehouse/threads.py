"""Worker threads that keep their caller's context, so their log records still belong to the caller's run."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class ContextThreadPool(ThreadPoolExecutor):
    """A thread pool that runs each call in a copy of the submitting thread's ``contextvars`` context.

    An orchestrator keeps the current run in context variables (Prefect's run context): a log record
    from a plain worker thread names no run, and is dropped with a warning. ``map`` submits through
    ``submit``, so it keeps the context too.
    """

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Schedule ``fn(*args, **kwargs)`` in a copy of the current context."""
        context = contextvars.copy_context()

        def call() -> T:
            return context.run(fn, *args, **kwargs)

        return super().submit(call)
