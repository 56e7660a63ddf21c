"""The benchmark run: seed TPC-H, measure every stage as a subprocess, write the JSON as it goes.

Each measured stage is a separate process (``python -m flows.backfill ...``, ``python -m
bench.duckdb_baseline ...``) with its own ``LAKEHOUSE_HOME`` under the work directory, timed from
start to exit, with the RSS of its whole process tree sampled (:mod:`bench.measure`). Flows talk
to a private Prefect server started once for the run (:mod:`bench.prefect_server`), which is also
where the task run durations behind the Prefect overhead come from.

A headline figure that cannot be measured (Spark unavailable here, ``bench.merge``
absent, a stage failing) is the string ``"not available"``, with the reason under ``notes``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import environment
from bench.measure import Measurement, log_tail, run
from bench.prefect_server import PrefectServer, ServerError

ROOT = Path(__file__).resolve().parent.parent
NOT_AVAILABLE = "not available"
STAGES = ("bulk", "duckdb", "incremental", "merge", "router", "prefect_overhead")
ENGINES = ("auto", "polars", "spark")
# Stages that work on the lakehouse the auto-engine bulk run built (they run it if not selected).
NEEDS_BULK_AUTO = frozenset({"incremental", "router", "prefect_overhead"})
LINEITEM_ROWS_SF1 = 6_001_215
HEADLINES = (
    "bulk_seconds",
    "duckdb_seconds",
    "bulk_vs_duckdb",
    "bulk_peak_rss_gb",
    "incremental_ratio",
    "merge_speedup_vs_upsert",
    "router_worst_ratio",
    "crossover_rows",
    "crossover_bytes",
    "prefect_overhead_fraction",
)


@dataclass(frozen=True)
class Options:
    """What to benchmark, where, and how hard."""

    scale: float
    out: Path
    workdir: Path
    only: tuple[str, ...] = STAGES
    engines: tuple[str, ...] = ENGINES
    days: int | None = None  # None: TPC-H's whole date range
    repeat: int = 3  # runs of each incremental measurement and router point (the fastest counts)
    router_days: tuple[int, ...] | None = None  # None: 1, 8, 64, 512 and all batch dates
    history_copies: int = 9  # incremental: 1 + 9 copies = 10× the history
    stage_timeout: float = 4 * 3600
    keep: bool = False


class StageUnavailable(Exception):
    """A stage (or variant) cannot be measured here; the message says why."""


@dataclass
class Bench:
    """One benchmark run: its options, the environment of its subprocesses, and the results so far."""

    options: Options
    results: dict[str, Any] = field(default_factory=dict)
    server: PrefectServer | None = None
    first: date | None = None
    last: date | None = None

    # -- paths and environment -------------------------------------------------------------------

    @property
    def landing(self) -> Path:
        """The seeded landing zone (kept between runs of the same scale and days, for reuse)."""
        return self.options.workdir / "landing"

    def home(self, name: str) -> Path:
        """A fresh ``LAKEHOUSE_HOME`` for one measured lakehouse."""
        return self.options.workdir / "homes" / name

    def log(self, name: str) -> Path:
        """Where a subprocess's output goes."""
        return self.options.workdir / "logs" / f"{name}.log"

    def env(self, home: Path | None = None) -> dict[str, str]:
        """The environment of a measured subprocess.

        The user's ``LAKEHOUSE_*`` settings pass through (a custom engine threshold applies), but
        home and landing are the benchmark's; pyiceberg and Prefect configuration do not: the
        embedded catalog and the private Prefect server are used.
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYICEBERG_", "PREFECT_"))}
        env.update(
            {
                "LAKEHOUSE_LANDING_URI": str(self.landing),
                "PYICEBERG_HOME": str(self.options.workdir / "no-pyiceberg-config"),
                "SODA_CORE_TELEMETRY_ENABLED": "false",
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_HOME": str(self.options.workdir / "prefect"),
                "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
                # measure the work, not cache hits: re-running a day with unchanged inputs would
                # otherwise skip every step (tasks/cache.py)
                "PREFECT_TASKS_REFRESH_CACHE": "true",
            }
        )
        if self.server is not None:
            env["PREFECT_API_URL"] = self.server.api_url
        env.pop("LAKEHOUSE_HOME", None)
        if home is not None:
            env["LAKEHOUSE_HOME"] = str(home)
        return env

    def measure(self, name: str, command: list[str], home: Path | None = None) -> Measurement:
        """Run ``command`` (a Python module and its arguments) as a measured subprocess."""
        print(f"[bench] {name}: {' '.join(command)}", flush=True)
        result = run(
            [sys.executable, "-m", *command],
            env=self.env(home),
            log_path=self.log(name),
            cwd=ROOT,
            timeout=self.options.stage_timeout,
        )
        state = "ok" if result.ok else ("timed out" if result.timed_out else f"exit {result.returncode}")
        print(
            f"[bench] {name}: {state} in {result.seconds:.1f} s, peak RSS {result.peak_rss_gb:.2f} GiB",
            flush=True,
        )
        return result

    def save(self) -> None:
        """Write the results so far (atomically, so a crash leaves the last complete state).

        Paths of this machine are written as ``python``, ``$TMPDIR`` or ``$WORKDIR``, so result
        files can be committed and compared.
        """
        text = json.dumps(self.results, indent=1, default=str) + "\n"
        workdir, tmpdir = str(self.options.workdir), tempfile.gettempdir()
        if not workdir.startswith(tmpdir + os.sep):
            text = text.replace(workdir, "$WORKDIR")
        text = text.replace(sys.executable, "python").replace(tmpdir + os.sep, "$TMPDIR" + os.sep)
        self.options.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.options.out.with_suffix(self.options.out.suffix + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(self.options.out)

    # -- the run ---------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Seed, run the selected stages, compute the headline figures; returns (and saves) the results."""
        opts = self.options
        opts.workdir.mkdir(parents=True, exist_ok=True)
        self.results = {
            "command": " ".join(["python -m bench", *sys.argv[1:]]),
            "scale": opts.scale,
            "days": opts.days,
            "stages_selected": list(opts.only),
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": environment.machine(),
            "versions": environment.versions(),
            "code": environment.code(),
            **dict.fromkeys(HEADLINES, NOT_AVAILABLE),
            "notes": {},
            "stages": {},
        }
        self.save()
        self._stage("seed", self.seed)
        wanted = set(opts.only)
        try:
            if wanted & {"bulk", *NEEDS_BULK_AUTO}:
                self._start_server()
            if "bulk" in wanted or wanted & NEEDS_BULK_AUTO:
                engines = opts.engines if "bulk" in wanted else ("auto",)
                for engine in engines:
                    self._stage(f"bulk.{engine}", lambda e=engine: self.bulk(e))
            for name, stage in (
                ("duckdb", self.duckdb),
                ("incremental", self.incremental),
                ("merge", self.merge),
                ("router", self.router),
                ("prefect_overhead", self.prefect_overhead),
            ):
                if name in wanted:
                    self._stage(name, stage)
        finally:
            if self.server is not None:
                self.server.stop()
            self.headlines()
            self.results["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
            self.results["machine"]["load_average_end"] = environment.load_average()
            self.save()
            if not opts.keep:
                shutil.rmtree(opts.workdir / "homes", ignore_errors=True)
                shutil.rmtree(opts.workdir / "duckdb", ignore_errors=True)
        return self.results

    def _stage(self, name: str, stage: Callable[[], dict[str, Any]]) -> None:
        """Run one stage; record its result, or why it is not available, or how it failed."""
        section, _, variant = name.partition(".")
        load = environment.load_average()
        try:
            result = stage()
        except StageUnavailable as exc:
            result = {"status": NOT_AVAILABLE, "reason": str(exc)}
        except Exception as exc:  # a failed stage is recorded; the others still run
            result = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
        result = {"load_average_before": load, **result}
        if variant:
            self.results["stages"].setdefault(section, {})[variant] = result
        else:
            self.results["stages"][name] = result
        print(f"[bench] stage {name}: {result.get('status', 'ok')}", flush=True)
        self.save()

    def _start_server(self) -> None:
        self.server = PrefectServer(self.options.workdir / "prefect", self.log("prefect-server"), self.env())
        try:
            self.server.start()
        except ServerError as exc:
            self.server = None
            self.results["notes"]["prefect_server"] = f"{exc}; flows fall back to a temporary server per run"
            return
        self.results["prefect_server_startup_seconds"] = self.server.startup_seconds

    # -- stages ----------------------------------------------------------------------------------

    def seed(self) -> dict[str, Any]:
        """Land TPC-H at the scale (reused if the work directory holds the same seed already)."""
        from lakehouse.errors import LakehouseError
        from lakehouse.landing import LandingZone
        from lakehouse.registry import load_registry
        from lakehouse.settings import BUNDLED_SOURCES

        registry = load_registry(BUNDLED_SOURCES)
        read_report = registry.seeder("tpch").read_report
        zone = LandingZone(str(self.landing), registry.sources["tpch"])
        # a landing zone seeded earlier with the same parameters is reused (seeding is deterministic)
        marker = self.options.workdir / "landing.json"
        wanted = {"scale": self.options.scale, "days": self.options.days}
        try:
            reused = json.loads(marker.read_text(encoding="utf-8")) == wanted
            report = read_report(zone)
        except (LakehouseError, OSError, ValueError):  # no or unreadable manifest: seed anew
            reused = False
        measured = None
        if not reused:
            marker.unlink(missing_ok=True)
            shutil.rmtree(self.landing, ignore_errors=True)
            command = ["flows.seed", "--scale", str(self.options.scale)]
            if self.options.days:
                command += ["--days", str(self.options.days)]
            measured = self.measure("seed", command)
            if not measured.ok:
                raise RuntimeError(f"seeding failed: {log_tail(measured.log)}")
            report = read_report(zone)
            marker.write_text(json.dumps(wanted), encoding="utf-8")
        self.first, self.last = report.start, report.end - timedelta(days=1)
        landed = sum(f.stat().st_size for f in self.landing.rglob("*") if f.is_file())
        return {
            "status": "ok",
            "reused": reused,
            "first_batch": self.first.isoformat(),
            "last_batch": self.last.isoformat(),
            "batch_dates": report.days,
            "landed_bytes": landed,
            "landed_rows": {t: sum(by_day.values()) for t, by_day in report.rows.items()},
            "anomalies": len(report.anomalies),
            **({"measured": measured.as_dict()} if measured else {}),
        }

    def _require_seed(self) -> tuple[date, date]:
        if self.first is None or self.last is None:
            raise StageUnavailable("no landing zone: the seed failed")
        return self.first, self.last

    def bulk(self, engine: str) -> dict[str, Any]:
        """Backfill the whole landed range into a fresh lakehouse with ``--engine engine``."""
        first, last = self._require_seed()
        if engine == "spark":
            reason = spark_unavailable()
            if reason:
                raise StageUnavailable(reason)
        home = self.home(f"bulk-{engine}")
        shutil.rmtree(home, ignore_errors=True)
        command = [
            "flows.backfill",
            "--start",
            first.isoformat(),
            "--end",
            last.isoformat(),
            "--engine",
            engine,
        ]
        measured = self.measure(f"bulk-{engine}", command, home)
        result: dict[str, Any] = {
            "status": "ok" if measured.ok else "failed",
            **measured.as_dict(),
            "home": str(home),
        }
        if not measured.ok:
            result["reason"] = log_tail(measured.log)
            return result
        result["flow_run"] = self._flow_run(measured)
        content = lakehouse_content(home)
        result.update(content)
        if engine == "spark" and not content["engines_stamped"].get("spark"):
            return {
                "status": NOT_AVAILABLE,
                "reason": (
                    "the flow ran with --engine spark but committed no snapshot computed by Spark "
                    f"(engines stamped: {content['engines_stamped']})"
                ),
                "measured_anyway": result,
            }
        return result

    def _flow_run(self, measured: Measurement) -> dict[str, Any]:
        """Times of the flow run of the ``measured`` process, from the Prefect API."""
        if self.server is None:
            return {"status": NOT_AVAILABLE, "reason": "no private Prefect server"}
        try:
            runs = self.server.flow_runs_between(measured.started, measured.started + measured.seconds)
            if len(runs) != 1:
                return {"status": NOT_AVAILABLE, "reason": f"expected one flow run, found {len(runs)}"}
            times = self.server.flow_run_times(runs[0])
        except ServerError as exc:
            return {"status": NOT_AVAILABLE, "reason": str(exc)}
        return {"status": "ok", **times.__dict__}

    def _bulk_auto(self) -> dict[str, Any]:
        result = self.results["stages"].get("bulk", {}).get("auto", {})
        if result.get("status") != "ok":
            raise StageUnavailable(
                f"needs the bulk run with --engine auto, which is {result.get('status', 'missing')}"
            )
        return result

    def duckdb(self) -> dict[str, Any]:
        """The same transforms by DuckDB from the landing files to Parquet (``bench/sql``)."""
        self._require_seed()
        out = self.options.workdir / "duckdb"
        shutil.rmtree(out, ignore_errors=True)
        result_file = self.options.workdir / "duckdb-result.json"
        command = ["bench.duckdb_baseline", "--landing", str(self.landing), "--out", str(out)]
        measured = self.measure("duckdb", [*command, "--result", str(result_file)])
        if not measured.ok:
            return {"status": "failed", **measured.as_dict(), "reason": log_tail(measured.log)}
        return {"status": "ok", **measured.as_dict(), **json.loads(result_file.read_text(encoding="utf-8"))}

    def _daily_run(self, name: str, home: Path, day: date) -> dict[str, Any]:
        command = ["flows.daily", "--date", day.isoformat(), "--engine", "auto"]
        measured = self.measure(name, command, home)
        if not measured.ok:
            raise RuntimeError(f"{name} failed: {log_tail(measured.log)}")
        return {**measured.as_dict(), "flow_run": self._flow_run(measured)}

    def _mains(self, home: Path, option: str, state: Path) -> None:
        """Save (``--save-mains``) or restore (``--set-mains``) every table's ``main`` of ``home``."""
        command = ["bench.replicate", "--home", str(home), option, str(state)]
        if not self.measure(f"{option.removeprefix('--')}-{state.stem}", command).ok:
            raise RuntimeError(f"bench.replicate {option} {state} failed")

    def incremental(self) -> dict[str, Any]:
        """One day's batch into the full history, then into 10× the history; the ratio of the times.

        The day is the last landed date, re-run with ``flows.daily --date`` (a re-run replaces
        exactly that date's data: the same reads, transforms, gates and commits as a new day, plus
        dropping the rows it replaces). The 10× history is built by replicating the fact history
        back in time (:mod:`bench.replicate`), so the day's batch stays the same size. The 1x and 10x
        runs alternate (``main`` of every table is switched between the two saved states, metadata
        only), so a machine getting faster or slower during the stage affects both alike. The ratio is
        of the fastest process wall times; the ratio of the task work alone (without interpreter
        start and imports, which do not depend on the history) is given too.
        """
        _, last = self._require_seed()
        home = Path(self._bulk_auto()["home"])
        factor = self.options.history_copies + 1
        states = {n: self.options.workdir / f"history-{n}x.json" for n in (1, factor)}
        self._mains(home, "--save-mains", states[1])
        result_file = self.options.workdir / "replicate-result.json"
        command = [
            "bench.replicate",
            "--home",
            str(home),
            "--copies",
            str(factor - 1),
            "--result",
            str(result_file),
        ]
        grown = self.measure("replicate", command)
        if not grown.ok:
            raise RuntimeError(f"replicating the history failed: {log_tail(grown.log)}")
        self._mains(home, "--save-mains", states[factor])
        # Alternate 1x and 10x runs, so that drift in the machine's speed hits both alike.
        one: list[dict[str, Any]] = []
        many: list[dict[str, Any]] = []
        for i in range(self.options.repeat):
            for n, runs in ((1, one), (factor, many)):
                self._mains(home, "--set-mains", states[n])
                runs.append(self._daily_run(f"incremental-{n}x-{i + 1}", home, last))
        self._mains(home, "--set-mains", states[1])  # later stages read the lakehouse the bulk run built
        result: dict[str, Any] = {
            "status": "ok",
            "day": last.isoformat(),
            "history_factor": factor,
            "seconds_1x": min(r["seconds"] for r in one),
            f"seconds_{factor}x": min(r["seconds"] for r in many),
        }
        result["ratio"] = round(result[f"seconds_{factor}x"] / result["seconds_1x"], 3)
        result["median_ratio"] = round(
            statistics.median(r["seconds"] for r in many) / statistics.median(r["seconds"] for r in one), 3
        )
        work_one, work_many = (
            [r["flow_run"]["task_covered_seconds"] for r in runs if r["flow_run"].get("status") == "ok"]
            for runs in (one, many)
        )
        if work_one and work_many:
            result["task_work_seconds_1x"] = min(work_one)
            result[f"task_work_seconds_{factor}x"] = min(work_many)
            result["task_work_ratio"] = round(min(work_many) / min(work_one), 3)
        result["runs_1x"], result[f"runs_{factor}x"] = one, many
        result["replicate"] = {
            **grown.as_dict(),
            "tables": json.loads(result_file.read_text(encoding="utf-8")),
        }
        return result

    def merge(self) -> dict[str, Any]:
        """``bench.merge.run`` on a fact-sized table (lineitem rows at the scale, 1% changed)."""
        rows = max(1000, round(LINEITEM_ROWS_SF1 * self.options.scale))
        changed = max(1, rows // 100)
        result_file = self.options.workdir / "merge-result.json"
        workdir = self.options.workdir / "merge"
        shutil.rmtree(workdir, ignore_errors=True)
        command = [
            "bench.merge_worker",
            "--rows",
            str(rows),
            "--changed",
            str(changed),
            "--workdir",
            str(workdir),
        ]
        measured = self.measure("merge", [*command, "--result", str(result_file)])
        if not result_file.exists():
            return {"status": "failed", **measured.as_dict(), "reason": log_tail(measured.log)}
        outcome = json.loads(result_file.read_text(encoding="utf-8"))
        return {**outcome, "measured": measured.as_dict()}

    def router(self) -> dict[str, Any]:
        """Polars and Spark on the first n batch dates of lineitem, n growing; crossover and worst ratio."""
        home = Path(self._bulk_auto()["home"])
        count = self.results["stages"]["seed"]["batch_dates"]
        days = self.options.router_days or (*(d for d in (1, 8, 64, 512) if d < count), count)
        threshold = engine_threshold()
        result: dict[str, Any] = {"status": "ok", "threshold_bytes": threshold, "days": list(days)}
        engines: dict[str, Any] = {}
        for engine in ("polars", "spark"):
            reason = spark_unavailable() if engine == "spark" else None
            if reason:
                engines[engine] = {"status": NOT_AVAILABLE, "reason": reason}
                continue
            out = self.options.workdir / f"router-{engine}.json"
            out.unlink(missing_ok=True)
            command = [
                *("bench.router", "--engine", engine, "--home", str(home)),
                *(
                    "--days",
                    ",".join(map(str, days)),
                    "--repeat",
                    str(self.options.repeat),
                    "--out",
                    str(out),
                ),
            ]
            measured = self.measure(f"router-{engine}", command)
            if not measured.ok:
                engines[engine] = {"status": "failed", **measured.as_dict(), "reason": log_tail(measured.log)}
                continue
            engines[engine] = {
                "status": "ok",
                **measured.as_dict(),
                **json.loads(out.read_text(encoding="utf-8")),
            }
        result["engines"] = engines
        if all(engines[e].get("status") == "ok" for e in engines):
            from bench.router import analyse

            if threshold is None:
                threshold = sys.maxsize  # no setting yet: the router would always pick Polars
                result["threshold_note"] = "settings have no engine_threshold_bytes: Polars always picked"
            memory = self.results["machine"]["memory_gb"]
            result.update(analyse(engines["polars"], engines["spark"], threshold, memory))
        return result

    def prefect_overhead(self) -> dict[str, Any]:
        """The share of the bulk (auto) run's wall time in which no task was doing work.

        Work is the running time of the leaf task runs (the steps, gates included), read from the
        Prefect API; the rest of the process's wall time is counted as overhead: interpreter start
        and imports, connecting to the API, creating the flow and task runs and their state
        changes, the flow body between tasks, shutdown. An upper bound of what Prefect costs
        (imports of Polars or pyiceberg are in it too), so also given: the same share of the flow
        run alone, and the time before the flow run was created.
        """
        bulk = self._bulk_auto()
        flow = bulk.get("flow_run", {})
        if flow.get("status") != "ok":
            raise StageUnavailable(f"no task run timings: {flow.get('reason', 'unknown')}")
        wall, flow_run, work = bulk["seconds"], flow["flow_run_seconds"], flow["task_covered_seconds"]
        return {
            "status": "ok",
            "process_seconds": wall,
            "flow_run_seconds": flow_run,
            "task_work_seconds": work,
            "task_seconds_summed": flow["task_seconds"],
            "leaf_task_runs": flow["leaf_task_runs"],
            "before_flow_run_seconds": round(flow["created"] - bulk["started"], 3),
            "after_flow_run_seconds": round(bulk["started"] + wall - flow["end"], 3),
            "flow_outside_tasks_seconds": round(flow_run - work, 3),
            "fraction": round((wall - work) / wall, 4),
            "fraction_of_flow_run": round((flow_run - work) / flow_run, 4) if flow_run else None,
        }

    # -- headline figures ------------------------------------------------------------------------

    def headlines(self) -> None:
        """Copy the headline figures from the stages; say why for each one that is not available."""
        stages = self.results["stages"]
        bulk_auto = stages.get("bulk", {}).get("auto")
        self._figure("bulk_seconds", "bulk (auto)", bulk_auto, lambda s: s["seconds"])
        self._figure("bulk_peak_rss_gb", "bulk (auto)", bulk_auto, lambda s: s["peak_rss_gb"])
        self._figure("duckdb_seconds", "duckdb", stages.get("duckdb"), lambda s: s["seconds"])
        bulk_s, duck_s = self.results["bulk_seconds"], self.results["duckdb_seconds"]
        if isinstance(bulk_s, float | int) and isinstance(duck_s, float | int):
            self.results["bulk_vs_duckdb"] = round(bulk_s / duck_s, 3)
        else:
            self.results["notes"]["bulk_vs_duckdb"] = "needs bulk_seconds and duckdb_seconds"
        self._figure("incremental_ratio", "incremental", stages.get("incremental"), lambda s: s["ratio"])
        self._figure(
            "merge_speedup_vs_upsert",
            "merge",
            stages.get("merge"),
            lambda s: s["figures"].get(
                "merge_speedup_vs_upsert", "bench.merge.run gave no merge_speedup_vs_upsert"
            ),
        )
        router = stages.get("router")
        self._figure("router_worst_ratio", "router", router, lambda s: s.get("worst_ratio") or _router_gap(s))
        for key in ("crossover_rows", "crossover_bytes"):
            self._figure(key, "router", router, lambda s, k=key: s.get(k) or _crossover_gap(s))
        self._figure(
            "recommended_threshold_bytes",
            "router",
            router,
            lambda s: s.get("recommended_threshold_bytes") or _router_gap(s),
        )
        overhead = stages.get("prefect_overhead")
        self._figure("prefect_overhead_fraction", "prefect_overhead", overhead, lambda s: s["fraction"])

    def _figure(
        self, key: str, label: str, section: dict[str, Any] | None, get: Callable[[dict[str, Any]], Any]
    ) -> None:
        """Set headline ``key`` from a stage's ``section``, or note why it is not available."""
        notes = self.results["notes"]
        if section is None:
            notes[key] = f"stage {label} not run"
            return
        if section.get("status") != "ok":
            notes[key] = f"stage {label} {section.get('status')}: {str(section.get('reason', ''))[:500]}"
            return
        value = get(section)
        if isinstance(value, int | float) and math.isfinite(value):
            self.results[key] = value
            notes.pop(key, None)
        else:
            notes[key] = str(value)


def _router_gap(stage: dict[str, Any]) -> str:
    bad = {
        e: r.get("reason", r.get("status"))
        for e, r in stage.get("engines", {}).items()
        if r.get("status") != "ok"
    }
    return f"engines not measured: {bad}" if bad else "no size measured on both engines"


def _crossover_gap(stage: dict[str, Any]) -> str:
    if "points" not in stage:
        return _router_gap(stage)
    return (
        f"Spark was slower at every measured size (up to {stage['largest_measured_bytes']} bytes): "
        "the crossover is above the largest size measured"
    )


def spark_unavailable() -> str | None:
    """Why Spark cannot run here (no engine module, pyspark or Java), or ``None``."""
    try:
        from lakehouse.engines.spark import spark_unavailable as reason
    except ImportError as exc:
        return f"the Spark engine cannot be imported: {exc}"
    return reason()


def engine_threshold() -> int | None:
    """``engine_threshold_bytes`` from the settings (environment as the user has it), if it exists yet."""
    from lakehouse.settings import Settings

    value = getattr(Settings(), "engine_threshold_bytes", None)
    return int(value) if value is not None else None


def lakehouse_content(home: Path) -> dict[str, Any]:
    """Rows per silver and gold table, batch dates, and which engines computed the committed snapshots."""
    from lakehouse.catalog import open_catalog
    from lakehouse.settings import Settings
    from lakehouse.tables import PROP_ENGINE

    catalog = open_catalog(Settings(home=home))
    rows, engines = {}, {}
    for namespace in ("silver", "gold"):
        for ident in sorted(catalog.list_tables(namespace)):
            table = catalog.load_table(ident)
            snapshot = table.current_snapshot()
            summary = snapshot.summary.additional_properties if snapshot and snapshot.summary else {}
            rows[".".join(ident)] = int(summary.get("total-records", 0))
    for namespace in ("bronze", "silver", "gold", "quarantine"):
        for ident in catalog.list_tables(namespace):
            for snapshot in catalog.load_table(ident).snapshots():
                engine = (snapshot.summary.additional_properties if snapshot.summary else {}).get(PROP_ENGINE)
                if engine:
                    engines[engine] = engines.get(engine, 0) + 1
    return {"rows": rows, "engines_stamped": engines}
