"""Run metrics: one JSON line per flow run in ``$LAKEHOUSE_HOME/metrics/runs.jsonl``, and an artifact.

A flow calls :func:`record_run` once, at its end (also when steps failed): rows in/out per layer,
quarantined rows, bytes written (from the ``added-files-size`` of the snapshots the run published),
per-step durations (timed by :mod:`tasks.lineage`), gate outcomes and failures. The same record is
rendered as a markdown artifact of the flow run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from prefect.runtime import flow_run
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.table.snapshots import ancestors_of

from checks.result import GateResult
from flows.runner import RunSummary
from lakehouse.batches import format_ranges
from lakehouse.pipeline import Lakehouse, StepResult
from lakehouse.settings import Settings
from lakehouse.tables import (
    BRONZE,
    NAMESPACES,
    PROP_ENGINE,
    PROP_ENGINE_REASON,
    PROP_RUN_ID,
    QUARANTINE,
    SILVER,
    identifier,
)
from tasks.artifacts import publish_markdown
from tasks.lineage import StepTiming, take_timings

log = logging.getLogger(__name__)

METRICS_DIR = "metrics"
RUNS_FILE = "runs.jsonl"


def metrics_file(settings: Settings) -> Path:
    """Where run metrics go: ``$LAKEHOUSE_HOME/metrics/runs.jsonl``."""
    return settings.home / METRICS_DIR / RUNS_FILE


class _Written(NamedTuple):
    """A snapshot the run published: its table, bytes and data files added, and the engine that wrote it."""

    table: str
    bytes: int
    files: int
    engine: str | None
    engine_reason: str | None


def _published_snapshots(lh: Lakehouse, tables: Iterable[str], since_ms: int) -> dict[int, _Written]:
    """Snapshots of this run on each table's ``main`` since ``since_ms``, by id.

    Snapshots of rejected writes (audit branches that were dropped) are not on ``main``: not counted.
    """
    out: dict[int, _Written] = {}
    for table_id in sorted(set(tables)):
        try:
            table = lh.table(table_id)
        except NoSuchTableError:
            continue
        for snapshot in ancestors_of(table.current_snapshot(), table.metadata):
            if snapshot.timestamp_ms < since_ms:
                break
            summary = snapshot.summary
            if summary is None or summary.additional_properties.get(PROP_RUN_ID) != lh.run.run_id:
                continue
            props = summary.additional_properties
            out[snapshot.snapshot_id] = _Written(
                table_id,
                int(props.get("added-files-size", "0")),
                int(props.get("added-data-files", "0")),
                props.get(PROP_ENGINE),
                props.get(PROP_ENGINE_REASON),
            )
    return out


def _layer(table_id: str) -> str:
    return table_id.split(".", 1)[0]


def _gate(result: GateResult) -> dict[str, Any]:
    return {
        "table": result.table,
        "snapshot_id": result.snapshot_id,
        "batches": format_ranges(result.batches) if result.batches else None,
        "passed": result.passed,
        "checks": len(result.checks),
        "failed": [c.label for c in result.failed_checks],
        "errors": len(result.errors),
        "duration_ms": round(result.duration_ms, 1),
    }


def _step(timing: StepTiming, snapshots: Mapping[int, _Written]) -> dict[str, Any]:
    result = timing.result
    record: dict[str, Any] = {
        "task": timing.task,
        "status": timing.status,
        "started": timing.started.isoformat(),
        "seconds": round(timing.seconds, 3),
    }
    if result is not None:
        written = snapshots.get(result.snapshot_id) if result.snapshot_id is not None else None
        record |= {
            "table": result.table,
            "batches": format_ranges(result.batches),
            "rows_in": result.rows_in,
            "rows_out": result.rows_out,
            "quarantined": result.quarantined,
            "snapshot_id": result.snapshot_id,
            "bytes_written": written.bytes if written else 0,
            "engine": written.engine if written else None,
            "engine_reason": written.engine_reason if written else None,
            "skipped": result.skipped,
        }
    if timing.error is not None:
        record["error"] = timing.error
    return record


def run_record(
    lh: Lakehouse,
    summary: RunSummary,
    started: datetime,
    finished: datetime,
    timings: list[StepTiming],
) -> dict[str, Any]:
    """The metrics of one run as a JSON-ready dict (reads snapshot summaries from the catalog)."""
    steps: list[StepResult] = summary.steps
    touched = {s.table for s in steps if s.snapshot_id is not None}
    touched |= {identifier(QUARANTINE, s.table.split(".", 1)[1]) for s in steps if _layer(s.table) == SILVER}
    snapshots = _published_snapshots(lh, touched, int(started.timestamp() * 1000) - 1000)
    layers: dict[str, dict[str, int]] = {}
    for namespace in NAMESPACES:
        layer_steps = [s for s in steps if _layer(s.table) == namespace]
        written = [v for v in snapshots.values() if _layer(v.table) == namespace]
        layers[namespace] = {
            "steps": len(layer_steps),
            "skipped": sum(1 for s in layer_steps if s.skipped),
            "rows_in": sum(s.rows_in for s in layer_steps),
            "rows_out": sum(s.rows_out for s in layer_steps),
            "quarantined": sum(s.quarantined for s in layer_steps),
            "snapshots": len(written),
            "files_written": sum(v.files for v in written),
            "bytes_written": sum(v.bytes for v in written),
        }
    if not any(layers[QUARANTINE].values()):
        del layers[QUARANTINE]  # quarantine rows are counted by silver; the table's bytes are kept if any
    return {
        "run_id": lh.run.run_id,
        "flow": lh.run.flow,
        "status": "failed" if summary.failures else "completed",
        "started": started.isoformat(),
        "finished": finished.isoformat(),
        "duration_seconds": round((finished - started).total_seconds(), 3),
        "batches": format_ranges(summary.batches),
        "batch_count": len(set(summary.batches)),
        "engine": lh.run.engine,
        "code_version": lh.run.code_version,
        "rows_landed": sum(s.rows_in for s in steps if _layer(s.table) == BRONZE),
        "quarantined_rows": sum(s.quarantined for s in steps),
        "bytes_written": sum(v.bytes for v in snapshots.values()),
        "layers": layers,
        "steps": [_step(t, snapshots) for t in timings],
        "gates": {
            "passed": sum(1 for g in summary.gates if g.passed),
            "failed": sum(1 for g in summary.gates if not g.passed),
            "results": [_gate(g) for g in summary.gates],
        },
        "failures": dict(summary.failures),
    }


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def render_markdown(record: Mapping[str, Any]) -> str:
    """The run metrics as a markdown report (the Prefect artifact)."""
    lines = [
        f"# Run metrics: {record['flow']} — {record['status']}",
        "",
        f"Run `{record['run_id']}`, batches {record['batches'] or 'none'}, engine {record['engine']}, "
        f"code {record['code_version']}: {record['duration_seconds']:.1f} s, "
        f"{record['rows_landed']} rows landed, {record['quarantined_rows']} quarantined, "
        f"{_size(record['bytes_written'])} written.",
        "",
        "| layer | steps | skipped | rows in | rows out | quarantined | snapshots | files | written |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, layer in record["layers"].items():
        lines.append(
            f"| {name} | {layer['steps']} | {layer['skipped']} | {layer['rows_in']} | {layer['rows_out']} "
            f"| {layer['quarantined']} | {layer['snapshots']} | {layer['files_written']} "
            f"| {_size(layer['bytes_written'])} |"
        )
    lines += [
        "",
        "## Steps",
        "",
        "| task | status | seconds | rows out | snapshot | note |",
        "|---|---|---:|---:|---|---|",
    ]
    for item in record["steps"]:
        note = item.get("skipped") or item.get("error") or ""
        note = note.splitlines()[0][:120] if note else ""
        lines.append(
            f"| {item['task']} | {item['status']} | {item['seconds']:.2f} | {item.get('rows_out', '')} "
            f"| {item.get('snapshot_id') or ''} | {note.replace('|', '/')} |"
        )
    gates = record["gates"]
    lines += ["", f"## Quality gates: {gates['passed']} passed, {gates['failed']} failed", ""]
    for gate in gates["results"]:
        if not gate["passed"]:
            failed = ", ".join(gate["failed"]) or f"{gate['errors']} execution error(s)"
            lines.append(f"- **{gate['table']}** ({gate['batches']}): {failed}")
    if record["failures"]:
        lines += ["", "## Failures", ""]
        lines += [f"- `{step}`: {reason.splitlines()[0]}" for step, reason in record["failures"].items()]
    return "\n".join(lines) + "\n"


def record_run(
    settings: Settings, lh: Lakehouse, summary: RunSummary, started: datetime, finished: datetime
) -> dict[str, Any]:
    """Append the run's metrics to ``$LAKEHOUSE_HOME/metrics/runs.jsonl``; return them (``run_record``).

    Inside a flow run, the same metrics are published as a markdown artifact (key
    ``<flow>-run-metrics``). The step timings of the run are consumed (see
    :func:`tasks.lineage.take_timings`).

    Raises:
        OSError: if the metrics file cannot be written.

    """
    record = run_record(lh, summary, started, finished, take_timings(lh.run.run_id))
    path = metrics_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, default=str, separators=(",", ":")) + "\n"
    with path.open("a", encoding="utf-8") as out:
        out.write(line)  # one write per run: concurrent runs append whole lines
    if flow_run.get_id():
        publish_markdown(
            render_markdown(record),
            name=f"{lh.run.flow}-run-metrics",
            description=f"Metrics of {lh.run.flow} run {lh.run.run_id}",
        )
    log.info(
        "run %s %s in %.1f s: %d rows landed, %d quarantined, %d bytes written; metrics in %s",
        lh.run.run_id,
        record["status"],
        record["duration_seconds"],
        record["rows_landed"],
        record["quarantined_rows"],
        record["bytes_written"],
        path,
    )
    return record
