"""The end of a run: its metrics and record, the report site, and a summary table on the console."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from checks.report import write_run
from checks.site import build_site, quarantine_stats
from flows.metrics import record_run
from flows.runner import RunSummary, lineage
from lakehouse.cli import stdout_console
from lakehouse.pipeline import Lakehouse
from lakehouse.settings import Settings
from lakehouse.tables import QUARANTINE

log = logging.getLogger(__name__)


def report_run(
    settings: Settings, lh: Lakehouse, summary: RunSummary, started: datetime, finished: datetime
) -> Path:
    """Record the run (metrics, ``run.json``), rebuild the report site, print the summary; return the site.

    The site keeps the newest ``settings.reports_keep_runs`` runs.

    Raises:
        OSError: if the metrics, the record or a page cannot be written.

    """
    record = record_run(settings, lh, summary, started, finished)
    write_run(record, settings.reports_dir)
    graph = lineage(lh.registry)
    quarantine = quarantine_stats(lh.catalog, [t for t in graph if t.startswith(f"{QUARANTINE}.")])
    index = build_site(
        settings.reports_dir, lh.registry, graph, quarantine, settings.reports_keep_runs
    ).resolve()
    print_summary(record, index, stdout_console())
    log.info("report: %s", index)
    return index


def _steps(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The run's steps by table, in the order they first ran: summed rows and seconds, gate verdicts."""
    gates: dict[str, list[bool]] = defaultdict(list)
    for gate in record["gates"]["results"]:
        gates[gate["table"]].append(gate["passed"])
    rows: dict[str, dict[str, Any]] = {}
    for step in record["steps"]:
        table = step.get("table") or step["task"]
        row = rows.setdefault(
            table,
            {"table": table, "chunks": 0, "rows_in": 0, "rows_out": 0, "quarantined": 0, "seconds": 0.0},
        )
        row["chunks"] += 1
        row["seconds"] += step["seconds"]
        for key in ("rows_in", "rows_out", "quarantined"):
            row[key] += step.get(key) or 0
        if step.get("engine"):
            row.setdefault("engines", set()).add(step["engine"])
        if step["status"] != "completed":
            row["failed"] = True
    for table, row in rows.items():
        verdicts = gates.get(table, [])
        failed = verdicts.count(False)
        row["gate"] = (
            ""
            if not verdicts
            else f"FAILED {failed} of {len(verdicts)}"
            if failed
            else f"passed {len(verdicts)}"
        )
        row["engine"] = ", ".join(sorted(row.pop("engines", ())))
    return list(rows.values())


def print_summary(record: Mapping[str, Any], report: Path, console: Console) -> None:
    """One table of the run's steps, then its failures with their reasons, then the report's path."""
    ranges = str(record["batches"] or "").split(",")
    span = f"{ranges[0].split('..')[0]}..{ranges[-1].split('..')[-1]}" if ranges[0] else "none"
    table = Table(
        title=f"{record['flow']} run {record['run_id']}: {record['status']} in "
        f"{record['duration_seconds']:.1f} s, {record['batch_count']} batch dates ({span})",
        title_justify="left",
    )
    table.add_column("step", no_wrap=True)
    for name in ("chunks", "rows in", "rows out", "quarantined"):
        table.add_column(name, justify="right")
    table.add_column("gate", no_wrap=True)
    table.add_column("engine")
    table.add_column("seconds", justify="right")
    for row in _steps(record):
        table.add_row(
            row["table"],
            str(row["chunks"]),
            f"{row['rows_in']:,}",
            f"{row['rows_out']:,}",
            f"{row['quarantined']:,}",
            row["gate"],
            row["engine"],
            f"{row['seconds']:.1f}",
            style="red" if row.get("failed") or row["gate"].startswith("FAILED") else None,
        )
    console.print(table)
    failures: Sequence[tuple[str, str]] = list(record["failures"].items())
    if failures:
        console.print(f"{len(failures)} step(s) failed:", style="bold red", markup=False)
        for step, reason in failures:
            console.print(f"  {step}: {reason.splitlines()[0]}", markup=False)
    for folder in record.get("unread", []):
        console.print(f"Not read: {folder}", style="yellow", markup=False)
    console.print(f"Report: {report}", markup=False)
