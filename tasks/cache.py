"""Cache keys of pipeline steps: table, batches and input versions, never data.

A retried or re-run flow skips a step whose output table, batches, inputs and code are unchanged
(its result is persisted); a changed input (a new landed file, a new upstream snapshot) recomputes.
Set ``PREFECT_TASKS_REFRESH_CACHE=true`` to force recomputation. A cached result whose snapshot is no
longer in ``main``'s history (a rollback) is not trusted: the flow runs the step again
(:func:`lakehouse.pipeline.on_main`).
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from typing import Any

from prefect.context import TaskRunContext

from lakehouse.pipeline import Lakehouse, step_inputs


def step_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Key of a bronze/silver/gold step from its parameters ``lh``, ``name`` and ``batches``."""
    lh: Lakehouse = parameters["lh"]
    layer = context.task.name
    name: str = parameters["name"]
    batches: list[date] = parameters["batches"]
    output = lh.table(f"{layer}.{name}").metadata.table_uuid
    identity = {
        "step": f"{layer}.{name}",
        "table": str(output),
        "batches": [b.isoformat() for b in batches],
        "inputs": step_inputs(lh, layer, name, batches),
        "code": lh.run.code_version,
        "engine": lh.run.engine,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
