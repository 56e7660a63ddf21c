"""``python -m bench.report FILE.json``: a short markdown report with PNG charts, next to the JSON.

Writes ``FILE.md``, ``FILE-stages.png`` (wall time per stage), ``FILE-memory.png`` (peak RSS per
stage) and ``FILE-router.png`` (Polars and Spark time against partition size, with the engine
threshold and the crossover).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.png import bar_chart, loglog_chart, number

NOT_AVAILABLE = "not available"
# The goals of the benchmark issue: (text, test).
GOALS: dict[str, tuple[str, Callable[[float], bool]]] = {
    "bulk_vs_duckdb": ("≤ 1.5 at SF1", lambda v: v <= 1.5),
    "bulk_peak_rss_gb": ("≤ 3 at SF1 (≤ 6 at SF10)", lambda v: v <= 3),
    "incremental_ratio": ("≤ 1.2", lambda v: v <= 1.2),
    "merge_speedup_vs_upsert": ("≥ 30", lambda v: v >= 30),
    "router_worst_ratio": ("≤ 1.3", lambda v: v <= 1.3),
    "prefect_overhead_fraction": ("≤ 0.10", lambda v: v <= 0.10),
}
HEADLINES = (
    ("bulk_seconds", "bulk (auto engine), landing → gold with all gates", "s"),
    ("duckdb_seconds", "DuckDB baseline, landing → Parquet", "s"),
    ("bulk_vs_duckdb", "bulk / DuckDB", "×"),
    ("bulk_peak_rss_gb", "bulk peak RSS of the process tree", "GiB"),
    ("incremental_ratio", "one day into 10× history / into 1× history", "×"),
    ("merge_speedup_vs_upsert", "gold MERGE speed-up over pyiceberg upsert", "×"),
    ("router_worst_ratio", "engine picked by the router / better engine, worst size", "×"),
    ("crossover_rows", "Polars/Spark crossover", "rows"),
    ("crossover_bytes", "Polars/Spark crossover", "bytes"),
    ("recommended_threshold_bytes", "engine threshold these measurements support", "bytes"),
    ("prefect_overhead_fraction", "bulk wall time outside task work", "of wall"),
)


def _fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def _ok(section: dict[str, Any] | None) -> bool:
    return bool(section) and section.get("status") == "ok"  # type: ignore[union-attr]


def headline_table(results: dict[str, Any]) -> list[str]:
    """The headline figures with the issue's goals."""
    lines = ["| figure | value | goal | |", "| --- | --- | --- | --- |"]
    for key, text, unit in HEADLINES:
        value = results.get(key, NOT_AVAILABLE)
        goal, test = GOALS.get(key, ("", None))
        if isinstance(value, int | float) and not isinstance(value, bool):
            shown = f"{_fmt(value)} {unit}"
            verdict = ("met" if test(float(value)) else "**not met**") if test else ""
        else:
            shown, verdict = f"_{value}_", ""
        lines.append(f"| `{key}`: {text} | {shown} | {goal} | {verdict} |")
    return lines


def stage_bars(results: dict[str, Any], field: str) -> list[tuple[str, float]]:
    """``(label, value)`` of ``field`` for every measured process worth a bar.

    Of repeated runs, the fastest time and the largest memory are shown.
    """
    pick = min if field == "seconds" else max
    stages = results.get("stages", {})
    bars = []
    for engine, run in stages.get("bulk", {}).items():
        if _ok(run):
            bars.append((f"bulk {engine}", run[field]))
    if _ok(stages.get("duckdb")):
        bars.append(("duckdb", stages["duckdb"][field]))
    incremental = stages.get("incremental")
    if _ok(incremental):
        for key, runs in incremental.items():
            if key.startswith("runs_") and runs:
                bars.append((f"one day, {key.removeprefix('runs_')} history", pick(r[field] for r in runs)))
    merge = stages.get("merge", {})
    if merge.get("measured"):
        bars.append(("merge bench", merge["measured"][field]))
    for engine, run in stages.get("router", {}).get("engines", {}).items():
        if _ok(run):
            bars.append((f"router {engine} (all sizes)", run[field]))
    return bars


def router_chart(results: dict[str, Any], path: Path) -> bool:
    """Draw the router curve; False if there is nothing to draw."""
    router = results.get("stages", {}).get("router", {})
    engines = router.get("engines", {})
    series = {
        name: [(p["bytes"], p["seconds"]) for p in run.get("points", [])]
        for name, run in engines.items()
        if _ok(run) and run.get("points")
    }
    if not series:
        return False
    markers = []
    if router.get("threshold_bytes"):
        markers.append((f"threshold {number(router['threshold_bytes'])}B", float(router["threshold_bytes"])))
    if router.get("crossover_bytes"):
        markers.append((f"crossover {number(router['crossover_bytes'])}B", float(router["crossover_bytes"])))
    loglog_chart(
        path,
        f"Router: silver lineitem, Polars vs Spark, SF {results.get('scale')}",
        series,
        x_label="partition size (bytes in data files)",
        y_label="seconds",
        markers=markers,
    )
    return True


def _bulk_lines(stages: dict[str, Any]) -> list[str]:
    lines = [
        "| engine | status | seconds | peak RSS GiB | max process HWM GiB | engines stamped |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for engine, run in stages.get("bulk", {}).items():
        if _ok(run):
            lines.append(
                f"| {engine} | ok | {_fmt(run['seconds'])} | {_fmt(run['peak_rss_gb'])} | "
                f"{_fmt(run['max_process_hwm_gb'])} | {run.get('engines_stamped')} |"
            )
        else:
            lines.append(f"| {engine} | {run.get('status')}: {str(run.get('reason', ''))[:300]} | | | | |")
    return lines


def _rows_lines(stages: dict[str, Any]) -> list[str]:
    """DuckDB's output rows next to the lakehouse's, for the tables both build."""
    duck = stages.get("duckdb", {}).get("rows", {})
    lake = stages.get("bulk", {}).get("auto", {}).get("rows", {})
    if not duck or not lake:
        return []
    lines = ["| table | lakehouse rows | DuckDB rows |", "| --- | --- | --- |"]
    lines += [f"| {t} | {_fmt(lake.get(t, '-'))} | {_fmt(duck[t])} |" for t in sorted(duck)]
    return lines


def _router_lines(router: dict[str, Any]) -> list[str]:
    lines = []
    for engine, run in router.get("engines", {}).items():
        if not _ok(run):
            lines.append(f"- {engine}: {run.get('status')}: {str(run.get('reason', ''))[:300]}")
        elif engine == "spark":
            lines.append(
                f"- Spark session start (once per process, not in the times): {run['startup_seconds']} s"
            )
    if router.get("points"):
        lines += [
            "",
            "| days | rows | bytes | Polars s | Spark s | better | router picks | picked / better |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        lines += [
            f"| {p['days']} | {_fmt(p['rows'])} | {_fmt(p['bytes'])} | {_fmt(p['polars'])} "
            f"| {_fmt(p['spark'])} | {p['better']} | {p['picked']} | {_fmt(p['picked_vs_better'])} |"
            for p in router["points"]
        ]
    elif _ok(router.get("engines", {}).get("polars")):
        lines += ["", "| days | rows | bytes | Polars s |", "| --- | --- | --- | --- |"]
        lines += [
            f"| {p['days']} | {_fmt(p['rows'])} | {_fmt(p['bytes'])} | {_fmt(p['seconds'])} |"
            for p in router["engines"]["polars"]["points"]
        ]
    return lines


def _section(
    title: str, stage: dict[str, Any] | None, body: Callable[[dict[str, Any]], list[str]]
) -> list[str]:
    lines = ["", f"## {title}", ""]
    if stage is None:
        return [*lines, "_not run_"]
    if stage.get("status") not in ("ok", None):  # bulk has no status of its own, only its engines
        return [*lines, f"_{stage.get('status')}_: {str(stage.get('reason', ''))[:500]}"]
    return lines + body(stage)


def render(results: dict[str, Any], charts: dict[str, str]) -> str:
    """The markdown report of ``results``; ``charts`` maps chart names to image file names."""
    machine, versions, stages = (
        results.get("machine", {}),
        results.get("versions", {}),
        results.get("stages", {}),
    )
    code = results.get("code", {})
    lines = [
        f"# Benchmark: TPC-H SF {results.get('scale')}"
        + (f", {results['days']} days" if results.get("days") else ""),
        "",
        f"`{results.get('command')}`, {results.get('started')} → {results.get('finished')}, code "
        f"`{code.get('commit')}`{' with local changes' if code.get('local_changes') else ''}.",
        "",
        f"Machine: {machine.get('cores')} cores ({machine.get('cpu_model')}), "
        f"{machine.get('memory_gb')} GiB RAM, {machine.get('platform')}. Load average (1, 5, 15 min) "
        f"at start {machine.get('load_average')}, at end {machine.get('load_average_end')}: other work "
        "shared the machine, so times are noisy.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
        "",
        "## Figures",
        "",
        *headline_table(results),
    ]
    notes = results.get("notes", {})
    if notes:
        lines += ["", "Not available:", ""]
        lines += [f"- `{k}`: {v}" for k, v in notes.items()]
    for name, title in (
        ("stages", "Wall time per stage"),
        ("memory", "Peak RSS per stage"),
        ("router", "Router"),
    ):
        if name in charts:
            lines += ["", f"![{title}]({charts[name]})"]
    lines += _section("Bulk", stages.get("bulk"), lambda _: _bulk_lines(stages))
    lines += _section(
        "DuckDB baseline",
        stages.get("duckdb"),
        lambda s: [
            f"{_fmt(s['seconds'])} s, peak RSS {_fmt(s['peak_rss_gb'])} GiB: `bench/sql/*.sql` from the "
            "landing files to Parquet, no Iceberg, no checks. Output rows against the lakehouse's:",
            "",
            *_rows_lines(stages),
        ],
    )
    lines += _section("Incremental", stages.get("incremental"), _incremental_lines)
    lines += _section("MERGE", stages.get("merge"), lambda s: [f"`{json.dumps(s.get('figures', {}))}`"])
    lines += _section("Router", stages.get("router"), _router_lines)
    lines += _section("Prefect overhead", stages.get("prefect_overhead"), _overhead_lines)
    lines += ["", "See `bench/README.md` for how each figure is measured.", ""]
    return "\n".join(lines)


def _incremental_lines(s: dict[str, Any]) -> list[str]:
    factor = s["history_factor"]
    one, many = _fmt(s["seconds_1x"]), _fmt(s[f"seconds_{factor}x"])
    lines = [
        f"Day {s['day']} re-run with `flows.daily --date`, fastest run: {one} s into 1× the history, "
        f"{many} s into {factor}× (ratio {s['ratio']}; of the medians {s['median_ratio']}).",
    ]
    if "task_work_ratio" in s:
        one, many = _fmt(s["task_work_seconds_1x"]), _fmt(s[f"task_work_seconds_{factor}x"])
        lines.append(f"Task work alone: {one} s against {many} s (ratio {s['task_work_ratio']}).")
    runs_one = ", ".join(_fmt(r["seconds"]) for r in s["runs_1x"])
    runs_many = ", ".join(_fmt(r["seconds"]) for r in s[f"runs_{factor}x"])
    lines += ["", f"All runs (s): 1× history {runs_one}; {factor}× history {runs_many}."]
    return lines


def _overhead_lines(s: dict[str, Any]) -> list[str]:
    return [
        f"Process {_fmt(s['process_seconds'])} s, of which task work {_fmt(s['task_work_seconds'])} s "
        f"({s['leaf_task_runs']} leaf task runs).",
        "",
        f"- before the flow run was created (interpreter, imports, API): {_fmt(s['before_flow_run_seconds'])}"
        " s",
        f"- flow body outside tasks: {_fmt(s['flow_outside_tasks_seconds'])} s",
        f"- after the flow run: {_fmt(s['after_flow_run_seconds'])} s",
        f"- share of the flow run alone outside task work: {s['fraction_of_flow_run']}",
    ]


def write(json_path: Path) -> Path:
    """Write the report and charts of ``json_path`` next to it; returns the markdown file."""
    results = json.loads(json_path.read_text(encoding="utf-8"))
    base = json_path.name.removesuffix(".json")

    def beside(suffix: str) -> Path:
        return json_path.with_name(f"{base}{suffix}")

    charts = {}
    scale = results.get("scale")
    bars = stage_bars(results, "seconds")
    if bars:
        bar_chart(beside("-stages.png"), f"Wall time per stage (s), TPC-H SF {scale}", bars, " s")
        memory = stage_bars(results, "peak_rss_gb")
        bar_chart(beside("-memory.png"), f"Peak RSS per stage (GiB), TPC-H SF {scale}", memory, " GiB")
        charts.update(stages=f"{base}-stages.png", memory=f"{base}-memory.png")
    if router_chart(results, beside("-router.png")):
        charts["router"] = f"{base}-router.png"
    out = beside(".md")
    out.write_text(render(results, charts), encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("json", type=Path, help="a result file of python -m bench")
    args = parser.parse_args(argv)
    print(write(args.json))
    return 0


if __name__ == "__main__":
    sys.exit(main())
