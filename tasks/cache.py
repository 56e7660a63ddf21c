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
    """Key of a bronze/silver/gold step from its parameters ``lh``, ``table_id`` and ``batches``.

    A gold model's inputs include the hash of its module's source, so an edited model recomputes.
    """
    lh: Lakehouse = parameters["lh"]
    table_id: str = parameters["table_id"]
    batches: list[date] = parameters["batches"]
    output = lh.table(table_id).metadata.table_uuid
    identity = {
        "step": table_id,
        "table": str(output),
        "batches": [b.isoformat() for b in batches],
        "inputs": step_inputs(lh, table_id, batches),
        "code": lh.run.code_version,
        "model": lh.registry.model(table_id).code if table_id in lh.registry.models else None,
        "engine": lh.run.engine,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
