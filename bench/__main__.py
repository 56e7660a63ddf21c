"""``python -m bench --scale SF --out FILE.json [--only stage,...]``: run the benchmark, write its JSON.

Stages: bulk (engines auto, polars, spark), duckdb, incremental, merge, router, prefect_overhead.
incremental, router and prefect_overhead work on the lakehouse of the bulk run with ``--engine
auto``, which runs first even if ``bulk`` is not selected. Results are written after every stage.
Render a report with ``python -m bench.report FILE.json``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
from pathlib import Path

from bench.harness import ENGINES, STAGES, Bench, Options


def _names(allowed: tuple[str, ...]) -> object:
    def parse(text: str) -> tuple[str, ...]:
        names = tuple(n.strip() for n in text.split(",") if n.strip())
        unknown = [n for n in names if n not in allowed]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"expected a comma-separated subset of {', '.join(allowed)}")
        return names

    return parse


def _days(text: str) -> tuple[int, ...]:
    try:
        days = tuple(int(d) for d in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError("expected comma-separated numbers of days") from exc
    if any(d < 1 for d in days):
        raise argparse.ArgumentTypeError("numbers of days must be at least 1")
    return days


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m bench``."""
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", type=float, required=True, help="TPC-H scale factor, e.g. 0.1 or 1")
    p.add_argument("--out", type=Path, required=True, help="the result JSON file")
    p.add_argument(
        "--only", type=_names(STAGES), default=STAGES, help=f"stages to run (default all: {','.join(STAGES)})"
    )
    p.add_argument(
        "--engines",
        type=_names(ENGINES),
        default=ENGINES,
        help="engines of the bulk stage (default auto,polars,spark)",
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where landing zone, lakehouses and logs go (default $TMPDIR/lakehouse-bench/sf<SF>[-<days>d])",
    )
    p.add_argument(
        "--days", type=int, default=None, help="seed only this many days (default: all of TPC-H's)"
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs per incremental measurement and router size (fastest counts)",
    )
    p.add_argument(
        "--router-days", type=_days, default=None, help="router sizes in batch dates (default 1,8,64,512,all)"
    )
    p.add_argument(
        "--stage-timeout", type=float, default=4 * 3600, help="seconds before a measured process is killed"
    )
    p.add_argument(
        "--keep",
        action="store_true",
        help="keep the lakehouses and DuckDB output (the landing is always kept)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 0 when the JSON was written (stages may still be failed or not available)."""
    args = parser().parse_args(argv)
    # on SIGTERM, unwind like on Ctrl-C: the measured process and the Prefect server get stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.scale <= 0 or (args.days is not None and args.days < 1) or args.repeat < 1:
        parser().error("--scale must be positive, --days and --repeat at least 1")
    workdir = args.workdir or Path(tempfile.gettempdir()) / "lakehouse-bench" / (
        f"sf{args.scale:g}" + (f"-{args.days}d" if args.days else "")
    )
    options = Options(
        scale=args.scale,
        out=args.out.resolve(),
        workdir=workdir.resolve(),
        only=args.only,
        engines=args.engines,
        days=args.days,
        repeat=args.repeat,
        router_days=args.router_days,
        stage_timeout=args.stage_timeout,
        keep=args.keep,
    )
    results = Bench(options).run()
    print(f"[bench] wrote {options.out}")
    for key in (
        "bulk_seconds",
        "duckdb_seconds",
        "bulk_vs_duckdb",
        "bulk_peak_rss_gb",
        "incremental_ratio",
        "merge_speedup_vs_upsert",
        "router_worst_ratio",
        "crossover_bytes",
        "prefect_overhead_fraction",
    ):
        print(f"  {key}: {results[key]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
