"""The report site: static HTML pages over the reports directory, readable from ``file://``.

:func:`build_site` reads every run's record and gate results (the layout of :mod:`checks.report`),
prunes the oldest runs beyond the retention, and writes::

    index.html                   per source: the latest verdict per table, its quarantine tables; the runs
    lineage.html                 the tables and what each is built from
    sources/<source>.html        what the source declares: landing format, tables, rules, gold models
    tables/<table>.html          check history (pass/fail per verification), trends, failed rows
    quarantine/<table>.html      quarantined rows by rule and batch date, sample rows
    runs/<run id>/index.html     the run's steps: rows, engine, seconds, snapshots, gate verdicts

Pages are self-contained: inline CSS, inline SVG charts, no script, no network, relative links.
The declarations come in as the :class:`~lakehouse.registry.Registry` (read, never changed), the
lineage as plain data (table id -> upstream table ids) and the quarantine statistics from
:func:`quarantine_stats`, so the site depends on no flow.
"""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property, lru_cache
from html import escape
from pathlib import Path
from typing import Any

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError

from checks.contracts import extra_checks_file
from checks.report import GATES_DIR, RUN_FILE, RUNS_DIR, write_atomically
from checks.svg import line_chart, lineage_graph, sparkline, strip
from lakehouse.batches import format_ranges, parse_ranges, runs
from lakehouse.files import batch_filter
from lakehouse.models import Scope
from lakehouse.registry import Model, Registry
from lakehouse.spec import LAYERS, Column, Source, SourceTable
from lakehouse.tables import BATCH_DATE, BRONZE, NAMESPACES, ROW_NUMBER, RULE, SILVER, SOURCE_FILE

INDEX = "index.html"
LINEAGE = "lineage.html"
TABLES_DIR = "tables"
QUARANTINE_DIR = "quarantine"
SOURCES_DIR = "sources"
SAMPLE_ROWS = 20
HISTORY = 60
"""Most verifications shown per table in the check history (the newest)."""

_STYLE = """
body{font-family:system-ui,sans-serif;margin:0;color:#1f2328;background:#f6f8fa}
header{background:#24292f;color:#fff;padding:.6rem 1.5rem;display:flex;gap:1.5rem;align-items:baseline}
header a{color:#fff;text-decoration:none}header b{font-size:1.1rem}
main{padding:1rem 1.5rem}
h1{font-size:1.4rem;margin:.5rem 0}h2{font-size:1.1rem;margin:1.5rem 0 .5rem}
section{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:.5rem 1rem;margin:.75rem 0}
table{border-collapse:collapse;margin:.25rem 0}
th,td{border-bottom:1px solid #d8dee4;padding:.25rem .6rem;text-align:left;vertical-align:top}
th{background:#f6f8fa;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
.id{white-space:nowrap;font-family:ui-monospace,monospace}
.passed,.completed{color:#1a7f37;font-weight:600}.failed{color:#cf222e;font-weight:600}
.warned,.not_evaluated,.skipped{color:#9a6700;font-weight:600}
.samples td,.samples th{font-size:.8rem;font-family:ui-monospace,monospace}
.facts th{width:12rem}.facts th+th{width:auto}
.charts,.side{display:flex;flex-wrap:wrap;gap:1rem;align-items:flex-start}
pre{background:#f6f8fa;padding:.5rem;white-space:pre-wrap;font-size:.8rem}
.muted{color:#656d76;font-size:.85rem}td.reason{min-width:15rem}td .muted{font-size:.75rem;max-width:24rem}
svg text{font-family:system-ui,sans-serif;font-size:11px;fill:#1f2328}
"""


@dataclass(frozen=True)
class QuarantineStats:
    """What a quarantine table holds: rows per (batch date, rule) and a few recent rows."""

    counts: Mapping[tuple[date, str], int]
    columns: tuple[str, ...] = ()
    samples: tuple[tuple[Any, ...], ...] = ()


@dataclass
class Run:
    """One run's folder: its record (absent if the run died before writing it) and its verifications."""

    name: str
    record: dict[str, Any] | None
    gates: list[dict[str, Any]] = field(default_factory=list)

    @cached_property
    def batches(self) -> tuple[str, ...]:
        """Every batch date its verifications covered, sorted."""
        return tuple(sorted({b for g in self.gates for b in g["batches"] or ()}))

    @property
    def started(self) -> str:
        """When the run started (ISO 8601), from its record or its first verification."""
        if self.record is not None:
            return str(self.record.get("started", ""))
        return min((str(g.get("started", "")) for g in self.gates), default="")


# --- reading -------------------------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def load_runs(reports_dir: Path) -> list[Run]:
    """Every run under ``reports_dir/runs``, oldest first; unreadable files are left out."""
    out = []
    for folder in sorted(p for p in (reports_dir / RUNS_DIR).glob("*") if p.is_dir()):
        gates = [g for g in map(_read_json, sorted((folder / GATES_DIR).glob("*.json"))) if g]
        out.append(Run(folder.name, _read_json(folder / RUN_FILE), sorted(gates, key=lambda g: g["started"])))
    return sorted(out, key=lambda r: r.started)


def prune(reports_dir: Path, runs_: Sequence[Run], keep_runs: int) -> list[Run]:
    """Delete the folders of all but the newest ``keep_runs`` of ``runs_`` (0 keeps all); return the rest."""
    if keep_runs <= 0 or len(runs_) <= keep_runs:
        return list(runs_)
    for run in runs_[:-keep_runs]:
        shutil.rmtree(reports_dir / RUNS_DIR / run.name)
    return list(runs_[-keep_runs:])


def quarantine_stats(
    catalog: Catalog, table_ids: Iterable[str], samples: int = SAMPLE_ROWS
) -> dict[str, QuarantineStats]:
    """Rows per batch date and rule of each quarantine table's ``main``, and rows of its latest batch.

    A rule's detail after ``": "`` (an unreadable file's reason) is left out of the counts. Tables
    that do not exist are left out.
    """
    out: dict[str, QuarantineStats] = {}
    for table_id in table_ids:
        try:
            table = catalog.load_table(table_id)
        except NoSuchTableError:
            continue
        keys = table.scan(selected_fields=(BATCH_DATE, RULE)).to_arrow()
        if not keys.num_rows:
            out[table_id] = QuarantineStats({})
            continue
        grouped = keys.group_by([BATCH_DATE, RULE]).aggregate([([], "count_all")])
        counts: dict[tuple[date, str], int] = defaultdict(int)
        for day, rule, n in zip(
            *(grouped.column(c).to_pylist() for c in (BATCH_DATE, RULE, "count_all")), strict=True
        ):
            counts[(day, str(rule).split(": ", 1)[0])] += n
        # rows of the latest batches, enough of them for ``samples`` rows
        days: list[date] = []
        for day in sorted({d for d, _ in counts}, reverse=True):
            days.append(day)
            if sum(n for (d, _), n in counts.items() if d in days) >= samples:
                break
        rows = table.scan(row_filter=batch_filter(days), limit=samples).to_arrow()
        first = [c for c in (RULE, BATCH_DATE, SOURCE_FILE, ROW_NUMBER) if c in rows.column_names]
        rows = rows.select(first + [c for c in rows.column_names if c not in first])
        out[table_id] = QuarantineStats(
            dict(counts), tuple(rows.column_names), tuple(tuple(r.values()) for r in rows.to_pylist())
        )
    return out


# --- small HTML pieces -------------------------------------------------------------------------


def _e(value: object) -> str:
    return "" if value is None else escape(str(value))


def _ranges(batches: Sequence[str] | None) -> str:
    """Batches as ranges (``1998-01-05..1998-08-02``); many gaps are summarised, never listed."""
    return "all batches" if batches is None else _range_text(tuple(batches))


@lru_cache(maxsize=4096)
def _range_text(batches: tuple[str, ...]) -> str:
    days = [date.fromisoformat(b) for b in batches]
    if not days:
        return "no batch"
    spans = runs(days)
    if len(spans) <= 3:
        return format_ranges(days).replace(",", ", ")
    return f"{spans[0][0]}..{spans[-1][1]} ({len(set(days))} dates in {len(spans)} ranges)"


def _short(path: object, parts: int = 3) -> str:
    """The last ``parts`` parts of a path or URI (``orders/dt=1995-03-06/a.csv``), all of it on hover."""
    text = str(path)
    return f'<span class="id" title="{_e(text)}">{_e("/".join(text.split("/")[-parts:]))}</span>'


def _batches(batches: Sequence[str] | None) -> str:
    """:func:`_ranges`, kept on one line."""
    return f'<span class="id">{_e(_ranges(batches))}</span>'


def _time(iso: object) -> str:
    """An ISO 8601 time as ``YYYY-MM-DD HH:MM:SS`` (UTC, as recorded), kept on one line."""
    return f'<span class="id">{_e(str(iso or "")[:19].replace("T", " "))}</span>'


def _verdict(passed: bool | None) -> str:
    if passed is None:
        return '<span class="not_evaluated">unknown</span>'
    return '<span class="passed">passed</span>' if passed else '<span class="failed">FAILED</span>'


def _status(status: str | None) -> str:
    return f'<span class="{_e(status)}">{_e(status or "unknown")}</span>'


def _page(title: str, body: str, depth: int) -> str:
    up = "../" * depth
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width"><title>{_e(title)}</title>'
        f"<style>{_STYLE}</style></head><body><header><b>Lakehouse quality</b>"
        f'<a href="{up}{INDEX}">Overview</a><a href="{up}{LINEAGE}">Lineage</a></header>'
        f"<main><h1>{_e(title)}</h1>{body}</main></body></html>"
    )


def _table(head: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "") -> str:
    """An HTML table of already escaped cells; a cell starting with ``<td`` is taken as it is."""
    header = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in row) + "</tr>" for row in rows
    )
    return f'<table class="{cls}"><tr>{header}</tr>{body}</table>'


def _num(value: object) -> str:
    if value is None or value == "":
        return '<td class="n"></td>'
    if isinstance(value, float):
        text = f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    elif isinstance(value, int):
        text = f"{value:,}"
    else:
        text = str(value)
    return f'<td class="n">{_e(text)}</td>'


# --- pages ---------------------------------------------------------------------------------------


def _table_page_name(table_id: str) -> str:
    return f"{TABLES_DIR}/{table_id}.html"


def _quarantine_page_name(table_id: str) -> str:
    return f"{QUARANTINE_DIR}/{table_id}.html"


def _run_page_name(run: str) -> str:
    return f"{RUNS_DIR}/{run}/{INDEX}"


def _source_page_name(source: str) -> str:
    return f"{SOURCES_DIR}/{source}.html"


def _homes(registry: Registry) -> dict[str, tuple[str, str]]:
    """Each declared table id -> its source and its place on the source's page (``sources/x.html#...``)."""
    out = {
        table.identifier(layer): (table.source, f"{_source_page_name(table.source)}#table-{table.name}")
        for table in registry.landed()
        for layer in LAYERS
    }
    return out | {
        m.identifier: (m.source, f"{_source_page_name(m.source)}#model-{m.name}")
        for m in registry.models.values()
    }


def _link_source(table_id: str, depth: int, homes: Mapping[str, tuple[str, str]]) -> str:
    """The source declaring ``table_id``, linked to the table's place on its page."""
    if table_id not in homes:
        return "no source declares it now"
    source, href = homes[table_id]
    return f'<a class="id" href="{"../" * depth}{_e(href)}">{_e(source)}</a>'


def _tip(gate: Mapping[str, Any]) -> str:
    return f"{gate['started'][:19]} · {_ranges(gate['batches'])} · snapshot {gate['snapshot_id']}"


def _measured(gate: Mapping[str, Any], check_type: str) -> float | None:
    return next(
        (
            float(c["measured"])
            for c in gate["checks"]
            if c["type"] == check_type and c["measured"] is not None
        ),
        None,
    )


def _samples(rows: Mapping[str, Any] | None) -> str:
    if not rows or not rows.get("rows"):
        return ""
    return _table(rows["columns"], ([_e(v) for v in row] for row in rows["rows"]), "samples")


def _quarantine_shares(
    gates: Sequence[Mapping[str, Any]], stats: QuarantineStats
) -> dict[str, list[float | None]]:
    """Per rule, the share of each verification's batch rows that went to quarantine for that rule."""
    by_day: dict[date, dict[str, int]] = defaultdict(dict)
    for (day, rule), n in stats.counts.items():
        by_day[day][rule] = n
    rules = sorted({rule for _, rule in stats.counts})
    out: dict[str, list[float | None]] = {rule: [] for rule in rules}
    for gate in gates:
        days = by_day.keys() if gate["batches"] is None else {date.fromisoformat(b) for b in gate["batches"]}
        held = [by_day[d] for d in days if d in by_day]
        kept = _measured(gate, "row_count")
        total = (kept or 0) + sum(n for counts in held for n in counts.values())
        for rule in rules:
            out[rule].append(sum(c.get(rule, 0) for c in held) / total if total else None)
    return out


def _table_page(
    table_id: str,
    gates: Sequence[dict[str, Any]],
    lineage: Mapping[str, Sequence[str]],
    quarantine: Mapping[str, QuarantineStats],
    links: Mapping[str, str],
    homes: Mapping[str, tuple[str, str]],
) -> str:
    shown = list(gates[-HISTORY:])
    latest = gates[-1]
    labels = [_ranges(g["batches"]) for g in shown]
    charts = [
        line_chart(
            "Rows per verification (its batches)",
            labels,
            {"rows": [_measured(g, "row_count") for g in shown]},
        )
    ]
    namespace, _, name = table_id.partition(".")
    stats = quarantine.get(f"quarantine.{name}") if namespace == "silver" else None
    if stats is not None and stats.counts:
        charts.append(
            line_chart("Share quarantined per rule (rows held now)", labels, _quarantine_shares(shown, stats))
        )
    if any(c["type"] == "freshness" for c in latest["checks"]):
        charts.append(
            line_chart(
                "Freshness of the load (hours)",
                labels,
                {"freshness": [_measured(g, "freshness") for g in shown]},
            )
        )
    # check history: one row per check (by label), one cell per verification, oldest left
    labels_of: dict[str, None] = {}
    for gate in shown:
        for c in gate["checks"]:
            labels_of.setdefault(f"{c['column']}: {c['name']}" if c["column"] else c["name"], None)
    history_rows = [
        [
            "<b>gate verdict</b>",
            strip([("passed" if g["passed"] else "failed", _tip(g)) for g in shown]),
            "",
            "",
            "",
        ]
    ]
    for label in labels_of:
        found = [
            next(
                (
                    c
                    for c in g["checks"]
                    if (f"{c['column']}: {c['name']}" if c["column"] else c["name"]) == label
                ),
                None,
            )
            for g in shown
        ]
        cells = [
            ("absent", f"{_tip(g)}: not in this contract")
            if c is None
            else (c["outcome"], f"{_tip(g)}: {c['outcome']}, measured {c['measured']}")
            for g, c in zip(shown, found, strict=True)
        ]
        values = [None if c is None or c["measured"] is None else float(c["measured"]) for c in found]
        last = found[-1]
        history_rows.append(
            [
                _e(label),
                strip(cells),
                sparkline(values),
                _num(last["measured"] if last else None),
                _e(last["threshold"] if last else ""),
            ]
        )
    failed_gate = next((g for g in reversed(gates) if not g["passed"]), None)
    failures = ""
    if failed_gate is not None:
        items = [
            f"<h3>{_e(c['column'] + ': ' if c['column'] else '')}{_e(c['name'])} "
            f"(measured {_e(c['measured'])}, expected {_e(c['threshold'])})</h3>{_samples(c['failed_rows'])}"
            for c in failed_gate["checks"]
            if c["outcome"] == "failed"
        ]
        errors = "".join(f"<pre>{_e(e)}</pre>" for e in failed_gate["errors"])
        failures = (
            f"<section><h2>Latest failed verification: {_e(_ranges(failed_gate['batches']))}, "
            f"{_time(failed_gate['started'])}</h2>{''.join(items)}{errors}</section>"
        )
    ups = lineage.get(table_id, ())
    downs = sorted(t for t, u in lineage.items() if table_id in u)
    facts = _table(
        ["", ""],
        [
            ["Source", _link_source(table_id, 1, homes)],
            ["Latest verdict", _verdict(latest["passed"])],
            ["Latest batches", _batches(latest["batches"])],
            ["Snapshot", _e(latest["snapshot_id"])],
            ["Contract", _short(latest["contract"])],
            ["Verifications", f"{len(gates)} ({sum(1 for g in gates if not g['passed'])} not passed)"],
            ["Built from", ", ".join(_link_table(u, 1, links) for u in ups) or "landed files"],
            ["Feeds", ", ".join(_link_table(d, 1, links) for d in downs) or "nothing"],
        ],
        "facts",
    )
    verifications = _table(
        ["Started", "Run", "Batches", "Snapshot", "Verdict", "Checks", "Failed", "ms"],
        (
            [
                _time(g["started"]),
                f'<a class="id" href="../{_e(_run_page_name(g["_run"]))}">{_e(g["_run"][:12])}</a>',
                _batches(g["batches"]),
                f'<span class="id">{_e(g["snapshot_id"])}</span>',
                _verdict(g["passed"]),
                _num(len(g["checks"])),
                _num(sum(1 for c in g["checks"] if c["outcome"] == "failed")),
                _num(g["duration_ms"]),
            ]
            for g in reversed(shown)
        ),
    )
    body = (
        f"<section>{facts}</section>"
        f'<section><h2>Trends</h2><div class="charts">{"".join(charts)}</div></section>'
        f'<section><h2>Check history</h2><p class="muted">{len(shown)} latest verifications, oldest left; '
        "hover a square for its batches and measured value.</p>"
        + _table(["Check", "Outcome per verification", "Measured", "Latest", "Threshold"], history_rows)
        + "</section>"
        + failures
        + f'<section><h2>Verifications</h2><p class="muted">The {len(shown)} latest of {len(gates)}, '
        f"newest first.</p>{verifications}</section>"
    )
    return _page(table_id, body, 1)


def _layer_order(table_id: str) -> tuple[int, str]:
    """Tables by layer (bronze, silver, gold, quarantine), then by name."""
    namespace = table_id.split(".", 1)[0]
    return (NAMESPACES.index(namespace) if namespace in NAMESPACES else len(NAMESPACES), table_id)


def _link_table(table_id: str, depth: int, links: Mapping[str, str]) -> str:
    """``table_id`` linked to its page (``links``), or as plain text when it has none."""
    if table_id not in links:
        return f'<span class="id">{_e(table_id)}</span>'
    return f'<a class="id" href="{"../" * depth}{_e(links[table_id])}">{_e(table_id)}</a>'


def _quarantine_page(
    table_id: str, stats: QuarantineStats, links: Mapping[str, str], homes: Mapping[str, tuple[str, str]]
) -> str:
    days = sorted({d for d, _ in stats.counts})
    rules = sorted({r for _, r in stats.counts})
    series = {r: [float(stats.counts.get((d, r), 0)) for d in days] for r in rules}
    totals = _table(
        ["Rule", "Rows", "Batch dates"],
        (
            [
                f'<span class="id">{_e(r)}</span>',
                _num(sum(n for (_, rule), n in stats.counts.items() if rule == r)),
                _batches([d.isoformat() for d, rule in stats.counts if rule == r]),
            ]
            for r in rules
        ),
    )
    chart = (
        line_chart("Quarantined rows per batch date, per rule", [d.isoformat() for d in days], series)
        if days
        else ""
    )
    samples = _table(
        stats.columns,
        (
            [_short(v) if c == SOURCE_FILE else _e(v) for c, v in zip(stats.columns, row, strict=True)]
            for row in stats.samples
        ),
        "samples",
    )
    name = table_id.partition(".")[2]
    body = (
        f"<section><p>Rows of {_link_table(f'silver.{name}', 1, links)}'s batches that broke a row rule, "
        f"with the file and row they came from. Source: {_link_source(table_id, 1, homes)}.</p>"
        f'{totals}<div class="charts">{chart}</div></section>'
        "<section><h2>Rows of the latest batches</h2>"
        f"{samples if stats.samples else '<p>None.</p>'}</section>"
    )
    return _page(table_id, body, 1)


def _run_page(run: Run, links: Mapping[str, str]) -> str:
    record = run.record or {}
    gates_by_table: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for gate in run.gates:
        gates_by_table[gate["table"]].append(gate)
    facts = _table(
        ["", ""],
        [
            ["Flow", _e(record.get("flow", "unknown (no run record)"))],
            [
                "Status",
                f'<span class="{_e(record.get("status"))}">{_e(record.get("status", "unknown"))}</span>',
            ],
            ["Started", _time(record.get("started", run.started))],
            ["Duration", f"{record['duration_seconds']:.1f} s" if "duration_seconds" in record else ""],
            ["Batches", _batches(run.batches)],
            ["Engine", _e(record.get("engine"))],
            ["Code", f'<span class="id">{_e(record.get("code_version"))}</span>'],
            ["Rows landed", _e(record.get("rows_landed"))],
            ["Quarantined", _e(record.get("quarantined_rows"))],
        ],
        "facts",
    )
    steps: list[list[str]] = []
    for step in record.get("steps", []):
        table_id = str(step.get("table") or step["task"])  # a failed attempt names its task only
        batches = _days(step["batches"]) if step.get("batches") else ()
        verdicts = [
            g for g in gates_by_table.get(table_id, []) if batches and tuple(g["batches"] or ()) == batches
        ]
        status = "skipped" if step.get("skipped") else str(step["status"])
        note = str(step.get("error") or step.get("skipped") or "").strip()
        steps.append(
            [
                _link_table(table_id, 2, links),
                f'<td><span class="{_e(status)}">{_e(status)}</span>'
                f'<div class="muted">{_e(note.splitlines()[0][:200] if note else "")}</div></td>',
                _batches(batches) if batches else "",
                _num(step.get("rows_in")),
                _num(step.get("rows_out")),
                _num(step.get("quarantined")),
                _verdict(all(g["passed"] for g in verdicts)) if verdicts else "",
                f'<td class="reason">{_e(step.get("engine"))}'
                f'<div class="muted">{_e(step.get("engine_reason"))}</div></td>',
                _num(step.get("seconds")),
                f'<span class="id">{_e(step.get("snapshot_id"))}</span>',
            ]
        )
    verifications = _table(
        ["Table", "Batches", "Verdict", "Failed checks", "Errors"],
        (
            [
                _link_table(g["table"], 2, links),
                _batches(g["batches"]),
                _verdict(g["passed"]),
                _e(", ".join(c["name"] for c in g["checks"] if c["outcome"] == "failed")),
                _e("; ".join(e.splitlines()[0] for e in g["errors"])),
            ]
            for g in run.gates
        ),
    )
    failures = record.get("failures") or {}
    body = (
        f"<section>{facts}</section>"
        + (
            "<section><h2>Failures</h2>"
            + _table(
                ["Step", "Reason"], ([f'<span class="id">{_e(k)}</span>', _e(v)] for k, v in failures.items())
            )
            + "</section>"
            if failures
            else ""
        )
        + "<section><h2>Steps</h2>"
        + (
            _table(
                [
                    "Table",
                    "Status",
                    "Batches",
                    "Rows in",
                    "Rows out",
                    "Quarantined",
                    "Gate",
                    "Engine (why)",
                    "Seconds",
                    "Snapshot",
                ],
                steps,
            )
            if steps
            else "<p>No run record: the run ended before writing it.</p>"
        )
        + f"</section><section><h2>Quality gates ({len(run.gates)})</h2>{verifications}</section>"
    )
    return _page(f"Run {run.name}", body, 2)


@lru_cache(maxsize=4096)
def _days(ranges: str) -> tuple[str, ...]:
    """The ISO dates of a range string (``format_ranges``), sorted."""
    return tuple(sorted(d.isoformat() for d in parse_ranges(ranges)))


_VERDICT_HEAD = (
    "Table",
    "Latest verdict",
    "Latest batches",
    "Last verified",
    "History",
    "Verifications",
    "Not passed",
)


def _verdicts(
    table_ids: Iterable[str],
    by_table: Mapping[str, list[dict[str, Any]]],
    links: Mapping[str, str],
    depth: int,
) -> str:
    """A row per table: its latest verdict, batches and time, a strip of its last 30 verdicts, counts."""
    rows = []
    for t in table_ids:
        gates = by_table.get(t)
        if not gates:
            rows.append([_link_table(t, depth, links), '<span class="muted">not verified</span>', *[""] * 5])
            continue
        rows.append(
            [
                _link_table(t, depth, links),
                _verdict(gates[-1]["passed"]),
                _batches(gates[-1]["batches"]),
                _time(gates[-1]["started"]),
                strip([("passed" if g["passed"] else "failed", _tip(g)) for g in gates[-30:]], 8),
                _num(len(gates)),
                _num(sum(1 for g in gates if not g["passed"])),
            ]
        )
    return _table(_VERDICT_HEAD, rows)


def _held(
    table_ids: Iterable[str], quarantine: Mapping[str, QuarantineStats], links: Mapping[str, str]
) -> str:
    """A row per quarantine table holding rows: rows, rules and batch dates."""
    return _table(
        ["Table", "Rows", "Rules", "Batch dates"],
        (
            [
                _link_table(t, 0, links),
                _num(sum(quarantine[t].counts.values())),
                _e(", ".join(sorted({r for _, r in quarantine[t].counts}))),
                _batches(sorted({d.isoformat() for d, _ in quarantine[t].counts})),
            ]
            for t in table_ids
        ),
    )


def _overview(
    registry: Registry,
    by_table: Mapping[str, list[dict[str, Any]]],
    runs_: Sequence[Run],
    quarantine: Mapping[str, QuarantineStats],
    links: Mapping[str, str],
    homes: Mapping[str, tuple[str, str]],
) -> str:
    # a section per source (tables no source declares any more last), each with its quarantine tables
    groups: dict[str | None, list[str]] = {name: [] for name in registry.sources}
    for t in sorted(by_table.keys() | {t for t, s in quarantine.items() if s.counts}, key=_layer_order):
        groups.setdefault(homes[t][0] if t in homes else None, []).append(t)
    sections = []
    for name, ids in groups.items():
        verified = [t for t in ids if t in by_table]
        held = [t for t in ids if t in quarantine and quarantine[t].counts]
        if name is None:
            title = "Tables no source declares now"
        else:
            description = registry.sources[name].description
            title = f'Source <a class="id" href="{_e(_source_page_name(name))}">{_e(name)}</a>' + (
                f' <span class="muted">{_e(description)}</span>' if description else ""
            )
        sections.append(
            f"<section><h2>{title}</h2>"
            + (_verdicts(verified, by_table, links, 0) if verified else "<p>No verification kept.</p>")
            + (f"<h3>Quarantine</h3>{_held(held, quarantine, links)}" if held else "")
            + "</section>"
        )
    runs_table = _table(
        [
            "Run",
            "Flow",
            "Status",
            "Started",
            "Seconds",
            "Batches",
            "Gates passed",
            "Not passed",
            "Quarantined",
        ],
        (
            [
                f'<a class="id" href="{_e(_run_page_name(r.name))}">{_e(r.name[:12])}</a>',
                _e((r.record or {}).get("flow", "")),
                _status((r.record or {}).get("status")),
                _time(r.started),
                _num((r.record or {}).get("duration_seconds")),
                _batches(r.batches) if r.gates else "",
                _num(sum(1 for g in r.gates if g["passed"])),
                _num(sum(1 for g in r.gates if not g["passed"])),
                _num((r.record or {}).get("quarantined_rows")),
            ]
            for r in reversed(runs_)
        ),
    )
    failing = sum(1 for gates in by_table.values() if not gates[-1]["passed"])
    summary = (
        f"<p>{len(by_table)} tables verified, {failing} failing at their latest verification; "
        f"{len(runs_)} runs kept; {len(registry.sources)} sources declared.</p>"
    )
    return _page(
        "Quality overview",
        f"<section>{summary}</section>{''.join(sections)}<section><h2>Runs</h2>{runs_table}</section>",
        0,
    )


_KINDS = {
    "fact": "fact: a batch replaces the rows of its batch date",
    "reference": "reference: merged by key in silver, the latest batch wins",
}
_SCOPES: dict[Scope, str] = {
    "all": "whole table",
    "batches": "the processed batches",
    "versions": "every version landed in the processed batches",
}
_SHOWN_CHARACTERS = {"\t": "tab", " ": "space"}


def _ids(names: Iterable[str]) -> str:
    """Identifiers (columns, tables), comma-separated, each kept on one line."""
    return ", ".join(f'<span class="id">{_e(n)}</span>' for n in names)


def _bounds(low: object, high: object) -> str:
    if low is not None and high is not None:
        return f"{low}..{high}"
    return f"≥ {low}" if low is not None else f"≤ {high}"


def _rules(table: SourceTable, column: Column) -> str:
    """``column``'s row rules, one per line, each with the rule a breaking row is quarantined under."""
    rules, name = column.rules, column.name
    shown: list[tuple[str, str]] = []
    if name in table.key:
        shown.append(("key: not null", "null_key"))
    elif rules.not_null:
        shown.append(("not null", f"missing:{name}"))
    if rules.min is not None or rules.max is not None:
        shown.append((f"range {_bounds(rules.min, rules.max)}", f"out_of_range:{name}"))
    if rules.accepted_values is not None:
        shown.append((f"one of {', '.join(map(str, rules.accepted_values))}", f"not_accepted:{name}"))
    if rules.pattern is not None:
        shown.append((f"matches {rules.pattern}", f"pattern:{name}"))
    if rules.min_length is not None or rules.max_length is not None:
        shown.append((f"length {_bounds(rules.min_length, rules.max_length)}", f"length:{name}"))
    return "".join(f'<div>{_e(text)} <span class="muted id">{_e(rule)}</span></div>' for text, rule in shown)


def _extra_checks(registry: Registry, table_ids: Iterable[str]) -> str:
    """The extra Soda check files the source keeps for ``table_ids``, or ``none``."""
    files = [f for f in (extra_checks_file(registry, t) for t in table_ids) if f.is_file()]
    return ", ".join(_short(f, 3) for f in files) or "none"


def _source_table(
    table: SourceTable,
    registry: Registry,
    by_table: Mapping[str, list[dict[str, Any]]],
    links: Mapping[str, str],
) -> str:
    tables = registry.sources[table.source].tables
    layers = [table.identifier(layer) for layer in LAYERS]
    facts = _table(
        ["", ""],
        [
            ["Kind", _e(_KINDS[table.kind])],
            ["Key", _ids(table.key) or "none"],
            ["Partitioning", f'<span class="id">{_e(table.partition)}</span>'],
            ["Extra checks", _extra_checks(registry, (table.identifier(BRONZE), table.identifier(SILVER)))],
        ],
        "facts",
    )
    references = _table(
        ["Columns", "Reference", "Orphans"],
        (
            [
                _ids(r.columns),
                f'<a class="id" href="#table-{_e(r.table)}">{_e(r.table)}</a> ({_ids(r.key)})',
                f'quarantined as <span class="id">orphan_key:{_e(r.label)}</span>'
                if r.on_orphan == "quarantine"
                else "kept, reported as a warning",
            ]
            for r in table.references
            if r.table in tables
        ),
    )
    columns = _table(
        ["Column", "Type", "Rules", "Description"],
        (
            [
                f'<span class="id">{_e(c.name)}</span>',
                f'<span class="id">{_e(c.type)}{_e(f" ({c.format})" if c.format else "")}</span>',
                _rules(table, c),
                _e(c.description),
            ]
            for c in table.columns
        ),
    )
    return (
        f'<section><h2 id="table-{_e(table.name)}">{_e(table.name)}</h2>'
        + (f"<p>{_e(table.description)}</p>" if table.description else "")
        + f"{facts}{_verdicts(layers, by_table, links, 1)}"
        + (f"<h3>Foreign keys</h3>{references}" if table.references else "")
        + f"<h3>Columns</h3>{columns}</section>"
    )


def _materialization(model: Model) -> str:
    m = model.materialization
    if m.kind == "replace":
        return "replace: its rows replace those of their batch dates"
    if m.kind == "merge":
        return f"merge by {_ids(m.key)}: its rows replace those of the same key"
    surrogate = f", surrogate key {_ids([m.surrogate_key])}" if m.surrogate_key else ""
    return f"SCD2 by {_ids(m.key)}: a change of {_ids(m.tracked)} opens a version{surrogate}"


def _source_model(
    model: Model, registry: Registry, by_table: Mapping[str, list[dict[str, Any]]], links: Mapping[str, str]
) -> str:
    facts = _table(
        ["", ""],
        [
            ["Materialization", _materialization(model)],
            ["Extra checks", _extra_checks(registry, [model.identifier])],
        ],
        "facts",
    )
    inputs = _table(
        ["Parameter", "Table", "Reads"],
        ([_e(p), _link_table(i.table, 1, links), _e(_SCOPES[i.scope])] for p, i in model.inputs.items()),
    )
    columns = _table(
        ["Column", "Type"],
        ([f'<span class="id">{_e(n)}</span>', f'<span class="id">{_e(t)}</span>'] for n, t in model.columns),
    )
    return (
        f'<section><h2 id="model-{_e(model.name)}">{_link_table(model.identifier, 1, links)}</h2>'
        + (f"<p>{_e(model.description)}</p>" if model.description else "")
        + f"{facts}{_verdicts([model.identifier], by_table, links, 1)}"
        + f'<div class="side"><div><h3>Inputs</h3>{inputs}</div><div><h3>Columns</h3>{columns}</div></div>'
        + "</section>"
    )


def _source_page(
    source: Source,
    registry: Registry,
    by_table: Mapping[str, list[dict[str, Any]]],
    links: Mapping[str, str],
) -> str:
    landing = source.landing
    models = [m for m in registry.models.values() if m.source == source.name]
    dialect = (
        [
            [
                "Delimiter",
                f'<span class="id">{_e(_SHOWN_CHARACTERS.get(landing.delimiter, landing.delimiter))}</span>',
            ],
            ["Quote", f'<span class="id">{_e(landing.quote)}</span>'],
        ]
        if landing.format == "csv"
        else []
    )
    facts = _table(
        ["", ""],
        [
            ["Description", _e(source.description)],
            ["Spec", _short(source.spec_file, 2)],
            ["Landing format", f'<span class="id">{_e(landing.format)}</span>'],
            *dialect,
            ["Encoding", _e(landing.encoding)],
            ["Read as null", ", ".join(f'<span class="id">"{_e(t)}"</span>' for t in landing.null_values)],
            [
                "Tables (load order)",
                ", ".join(f'<a class="id" href="#table-{_e(t)}">{_e(t)}</a>' for t in source.tables),
            ],
            [
                "Gold models",
                ", ".join(f'<a class="id" href="#model-{_e(m.name)}">{_e(m.name)}</a>' for m in models),
            ],
        ],
        "facts",
    )
    body = (
        f'<section>{facts}<p class="muted">A row breaking a rule goes to the table\'s quarantine under the '
        "rule named beside it; a value that does not parse as its type under "
        '<span class="id">unparseable:&lt;column&gt;</span>, a repeated key under '
        '<span class="id">duplicate_key</span>.</p></section>'
        + "".join(_source_table(t, registry, by_table, links) for t in source.tables.values())
        + "".join(_source_model(m, registry, by_table, links) for m in models)
    )
    return _page(f"Source {source.name}", body, 1)


def build_site(
    reports_dir: Path,
    registry: Registry,
    lineage: Mapping[str, Sequence[str]],
    quarantine: Mapping[str, QuarantineStats],
    keep_runs: int = 0,
) -> Path:
    """Prune runs beyond the newest ``keep_runs`` (0 keeps all), write every page, return ``index.html``.

    ``registry`` holds the declared sources and models (a page per source; the overview groups the
    tables by source); ``lineage`` maps each table id to the ids of the tables it is built from;
    ``quarantine`` holds the statistics of the quarantine tables (:func:`quarantine_stats`). Pages
    of tables and sources no longer reported or declared are removed.

    Raises:
        OSError: if a page cannot be written or an old run cannot be removed.
    """
    runs_ = prune(reports_dir, load_runs(reports_dir), keep_runs)
    by_table: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in runs_:
        for gate in run.gates:
            by_table[gate["table"]].append({**gate, "_run": run.name})
    for gates in by_table.values():
        gates.sort(key=lambda g: g["started"])
    links = {t: _table_page_name(t) for t in by_table} | {t: _quarantine_page_name(t) for t in quarantine}
    homes = _homes(registry)
    pages: dict[str, str] = {INDEX: _overview(registry, by_table, runs_, quarantine, links, homes)}
    pages |= {
        _table_page_name(t): _table_page(t, g, lineage, quarantine, links, homes) for t, g in by_table.items()
    }
    pages |= {_quarantine_page_name(t): _quarantine_page(t, s, links, homes) for t, s in quarantine.items()}
    pages |= {
        _source_page_name(n): _source_page(s, registry, by_table, links) for n, s in registry.sources.items()
    }
    pages |= {_run_page_name(r.name): _run_page(r, links) for r in runs_}
    graph = lineage_graph(lineage, links)
    pages[LINEAGE] = _page(
        "Lineage",
        "<section><p>Each table is built from the tables on its left; a box links to its page.</p>"
        f"{graph}</section>",
        0,
    )
    for folder in (TABLES_DIR, QUARANTINE_DIR, SOURCES_DIR):
        for old in (reports_dir / folder).glob("*.html"):
            if f"{folder}/{old.name}" not in pages:
                old.unlink()
    for name, html in pages.items():
        write_atomically(reports_dir / name, html)
    return reports_dir / INDEX
