"""Gate reports as data: one JSON file per verification, one per run, and markdown for artifacts.

Layout under the reports directory (the HTML site over it is :mod:`checks.site`)::

    runs/<run id>/gates/<namespace>.<table>.<started>.json   # one GateResult, as result_dict gives it
    runs/<run id>/run.json                                   # the run's record (steps, rows, gates)
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from checks.result import CheckOutcome, GateResult

_NO_RUN_ID = "no-run-id"
RUNS_DIR = "runs"
GATES_DIR = "gates"
RUN_FILE = "run.json"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) or _NO_RUN_ID


def _check_dict(check: CheckOutcome) -> dict[str, Any]:
    rows = check.failed_rows
    return {
        "name": check.name,
        "type": check.type,
        "column": check.column,
        "outcome": check.outcome,
        "threshold": check.threshold,
        "measured": check.measured,
        "diagnostics": dict(check.diagnostics),
        "failed_rows": None
        if rows is None
        else {"columns": list(rows.columns), "rows": [list(r) for r in rows.rows]},
    }


def result_dict(result: GateResult) -> dict[str, Any]:
    """The result as JSON-ready data (dates and times in ISO 8601)."""
    return {
        "table": result.table,
        "passed": result.passed,
        "run_id": result.run_id,
        "snapshot_id": result.snapshot_id,
        "batches": None if result.batches is None else [d.isoformat() for d in result.batches],
        "contract": str(result.contract),
        "started": result.started.isoformat(),
        "finished": result.finished.isoformat(),
        "duration_ms": round(result.duration_ms, 1),
        "references": dict(result.references),
        "variables": dict(result.variables),
        "errors": list(result.errors),
        "checks": [_check_dict(c) for c in result.checks],
    }


def write_atomically(path: Path, text: str) -> None:
    """Write through a temporary file and a rename, so readers and concurrent writers see whole files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    Path(tmp).chmod(0o644)  # mkstemp makes the file private: reports are for whoever reads the folder
    Path(tmp).replace(path)


def run_dir(reports_dir: Path, run_id: str) -> Path:
    """The folder of one run's reports: ``<reports_dir>/runs/<run id>`` (unsafe characters as ``_``)."""
    return reports_dir / RUNS_DIR / _safe(run_id)


def write_report(result: GateResult, reports_dir: Path) -> Path:
    """Write ``result`` as JSON under its run's folder and return the file.

    Every verification gets its own file, named by table and start time, so the verifications of
    every chunk of a run are kept side by side.

    Raises:
        OSError: if the file cannot be written.
    """
    path = (
        run_dir(reports_dir, result.run_id)
        / GATES_DIR
        / f"{result.table}.{result.started:%Y%m%dT%H%M%S%fZ}.json"
    )
    write_atomically(path, json.dumps(result_dict(result), indent=2, ensure_ascii=False))
    return path


def write_run(record: dict[str, Any], reports_dir: Path) -> Path:
    """Write a run's record (``flows.metrics.run_record``) as ``run.json`` in its run's folder.

    Raises:
        OSError: if the file cannot be written.
    """
    path = run_dir(reports_dir, str(record["run_id"])) / RUN_FILE
    write_atomically(path, json.dumps(record, indent=2, ensure_ascii=False, default=str))
    return path


def _md(value: object) -> str:
    return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


def render_markdown(result: GateResult) -> str:
    """The result as markdown: a verdict line, a table of checks (failed first) and the errors."""
    icons = {"passed": "✅", "failed": "❌", "warned": "⚠️", "not_evaluated": "❔"}
    batches = "all batches" if result.batches is None else ", ".join(d.isoformat() for d in result.batches)
    batches = batches or "no batch"
    lines = [
        f"**{result.table}** snapshot `{result.snapshot_id}` ({batches}): "
        f"{'✅ passed' if result.passed else '❌ not passed'} — {len(result.checks)} checks, "
        f"{len(result.failed_checks)} failed, {len(result.errors)} errors, {result.duration_ms:.0f} ms",
        "",
        "| Outcome | Check | Threshold | Measured |",
        "| --- | --- | --- | --- |",
    ]
    order = {"failed": 0, "not_evaluated": 1, "warned": 2, "passed": 3}
    for check in sorted(result.checks, key=lambda c: order[c.outcome]):
        lines.append(
            f"| {icons[check.outcome]} {check.outcome} | {_md(check.label)} | {_md(check.threshold)} "
            f"| {_md(check.measured)} |"
        )
    if result.errors:
        lines += ["", "Errors:", *(f"- {_md(e)}" for e in result.errors)]
    return "\n".join(lines) + "\n"
