"""Backfill a date range in chunks: ``python -m flows.backfill --start D --end D [--engine ...]``."""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import UTC, date, datetime

from prefect import flow, get_run_logger

from flows.report import report_run
from flows.runner import RunFailed, RunSummary, open_lakehouse, process
from lakehouse.errors import ConfigurationError
from lakehouse.settings import EngineChoice, Settings


@flow(name="backfill", flow_run_name="backfill-{start}-{end}")
def backfill(
    start: date,
    end: date,
    engine: EngineChoice = "auto",
    chunk_days: int | None = None,
    concurrency: int = 1,
) -> RunSummary:
    """Reprocess every landed batch date in ``[start, end]``, idempotently, in chunks.

    ``concurrency`` chunks run at once (default 1: chunks in date order).

    Raises:
        ValueError: if ``end`` is before ``start``.
        RunFailed: if any step failed (whatever passed was published).

    """
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, not {concurrency}")
    started = datetime.now(UTC)
    settings = Settings()
    lh = open_lakehouse(settings, "backfill", engine)
    landed = sorted({d for source in lh.registry.sources for d in lh.zone(source).batches()})
    dates = [d for d in landed if start <= d <= end]
    if not dates:
        raise RunFailed(f"no landed batches between {start} and {end} in {settings.landing}")
    get_run_logger().info("backfill of %d batch dates %s .. %s", len(dates), dates[0], dates[-1])
    summary = RunSummary()
    chunked = settings.model_copy(update={"chunk_days": chunk_days or settings.chunk_days})
    try:
        process(lh, chunked, dates, summary, concurrency)
    finally:
        report_run(settings, lh, summary, started, datetime.now(UTC))
    if summary.failures:
        raise RunFailed(f"{len(summary.failures)} step(s) failed: " + "; ".join(summary.failures))
    return summary


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; exits non-zero if the run failed."""
    parser = argparse.ArgumentParser(prog="python -m flows.backfill", description=backfill.description)
    parser.add_argument("--start", type=date.fromisoformat, required=True)
    parser.add_argument("--end", type=date.fromisoformat, required=True)
    parser.add_argument("--engine", choices=["auto", "polars", "spark"], default="auto")
    parser.add_argument("--chunk-days", type=int, default=None, help="most batch dates per chunk")
    parser.add_argument("--concurrency", type=int, default=1, help="chunks processed at once")
    args = parser.parse_args(argv)
    try:
        backfill(
            start=args.start,
            end=args.end,
            engine=args.engine,
            chunk_days=args.chunk_days,
            concurrency=args.concurrency,
        )
    except RunFailed as exc:
        logging.getLogger(__name__).error("backfill failed: %s", exc)
        return 1
    except ConfigurationError as exc:
        logging.getLogger(__name__).error("backfill cannot start: %s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
