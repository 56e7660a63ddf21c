"""Gate reports: JSON and a self-contained HTML page per verification, an index of runs, and markdown.

Layout under the reports directory::

    <YYYY-MM-DD>/<run id>/<namespace>.<table>.json   # the GateResult as data
    <YYYY-MM-DD>/<run id>/<namespace>.<table>.html   # the same, readable in a browser
    index.html                                       # every run, pass/fail per table, from the JSON files
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from html import escape
from pathlib import Path
from typing import Any, NamedTuple

from checks.result import CheckOutcome, GateResult

_NO_RUN_ID = "no-run-id"
_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f3f3}
.passed{color:#176f2c;font-weight:bold}.failed{color:#b3261e;font-weight:bold}
.warned,.not_evaluated{color:#8a5a00;font-weight:bold}
.samples td,.samples th{font-size:.85em;font-family:monospace}
pre{background:#f7f7f7;padding:.5rem;white-space:pre-wrap}
"""


class ReportFiles(NamedTuple):
    """The files written for one verification."""

    json: Path
    html: Path


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


def _cell(value: object) -> str:
    return "" if value is None else escape(str(value))


def _samples_html(rows: dict[str, Any] | None) -> str:
    if not rows or not rows["rows"]:
        return ""
    head = "".join(f"<th>{_cell(c)}</th>" for c in rows["columns"])
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows["rows"])
    return f'<table class="samples"><tr>{head}</tr>{body}</table>'


def render_html(data: dict[str, Any]) -> str:
    """A self-contained HTML page (no external CSS or script) for one result, from ``result_dict``."""
    verdict = "passed" if data["passed"] else "failed"
    batches = "all" if data["batches"] is None else ", ".join(data["batches"])
    facts = [
        ("Verdict", f'<span class="{verdict}">{verdict.upper()}</span>'),
        ("Snapshot", _cell(data["snapshot_id"])),
        ("Batches", _cell(batches)),
        ("Run", _cell(data["run_id"])),
        ("Started", _cell(data["started"])),
        ("Duration", f"{data['duration_ms']:.0f} ms"),
        ("Contract", _cell(data["contract"])),
        ("Referenced snapshots", _cell(", ".join(f"{k}@{v}" for k, v in data["references"].items()))),
        ("Variables", _cell(", ".join(f"{k}={v}" for k, v in data["variables"].items()))),
    ]
    rows = []
    for check in data["checks"]:
        label = f"{check['column']}: {check['name']}" if check["column"] else check["name"]
        diagnostics = ", ".join(f"{k}={v}" for k, v in check["diagnostics"].items())
        rows.append(
            f'<tr><td class="{check["outcome"]}">{_cell(check["outcome"])}</td><td>{_cell(label)}</td>'
            f"<td>{_cell(check['type'])}</td><td>{_cell(check['threshold'])}</td>"
            f"<td>{_cell(check['measured'])}</td><td>{_cell(diagnostics)}"
            f"{_samples_html(check['failed_rows'])}</td></tr>"
        )
    errors = "".join(f"<pre>{_cell(e)}</pre>" for e in data["errors"])
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_cell(data['table'])} {verdict}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{_cell(data['table'])}</h1>"
        "<table>"
        + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in facts)
        + "</table>"
        + (f"<h2>Errors</h2>{errors}" if errors else "")
        + "<h2>Checks</h2><table><tr><th>Outcome</th><th>Check</th><th>Type</th><th>Threshold</th>"
        "<th>Measured</th><th>Diagnostics and failed rows</th></tr>"
        + "".join(rows)
        + "</table></body></html>"
    )


def _write_atomically(path: Path, text: str) -> None:
    """Write through a temporary file and a rename, so readers and concurrent writers see whole files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    Path(tmp).replace(path)


def write_reports(result: GateResult, reports_dir: Path) -> ReportFiles:
    """Write the JSON and HTML reports of ``result`` and regenerate ``reports_dir/index.html``.

    Raises:
        OSError: if a file cannot be written.
    """
    run_dir = reports_dir / result.started.date().isoformat() / _safe(result.run_id)
    data = result_dict(result)
    files = ReportFiles(run_dir / f"{result.table}.json", run_dir / f"{result.table}.html")
    _write_atomically(files.json, json.dumps(data, indent=2, ensure_ascii=False))
    _write_atomically(files.html, render_html(data))
    write_index(reports_dir)
    return files


def write_index(reports_dir: Path) -> Path:
    """Regenerate ``reports_dir/index.html``: every run, newest first, with pass/fail per table.

    Built from the JSON reports only; a JSON file that cannot be parsed is listed as unreadable.

    Raises:
        OSError: if the index cannot be written.
    """
    runs: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
    for path in sorted(reports_dir.glob("*/*/*.json")):
        day, run = path.parent.parent.name, path.parent.name
        try:
            verdict = "passed" if json.loads(path.read_text(encoding="utf-8"))["passed"] else "failed"
        except (ValueError, KeyError, TypeError):
            verdict = "unreadable"
        link = path.with_suffix(".html").relative_to(reports_dir).as_posix()
        runs.setdefault((day, run), []).append((path.stem, verdict, link))
    sections = []
    for (day, run), tables in sorted(runs.items(), reverse=True):
        failed = sum(1 for _, verdict, _ in tables if verdict != "passed")
        summary = "all passed" if not failed else f"{failed} not passed"
        items = "".join(
            f'<tr><td><a href="{escape(link)}">{escape(name)}</a></td>'
            f'<td class="{verdict}">{verdict}</td></tr>'
            for name, verdict, link in tables
        )
        sections.append(
            f"<h2>{escape(day)} · run {escape(run)} · {len(tables)} tables, {summary}</h2>"
            f"<table><tr><th>Table</th><th>Gate</th></tr>{items}</table>"
        )
    index = reports_dir / "index.html"
    _write_atomically(
        index,
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Quality gate reports</title>'
        f"<style>{_STYLE}</style></head><body><h1>Quality gate reports</h1>"
        + ("".join(sections) or "<p>No reports yet.</p>")
        + "</body></html>",
    )
    return index


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
