"""The daily flow: promote every landed batch not yet promoted (or one date) through all layers.

``python -m flows.daily [--date YYYY-MM-DD] [--engine auto|polars|spark]``
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from datetime import UTC, datetime
from datetime import date as Date
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.report import report_run
from flows.runner import RunFailed, RunSummary, open_lakehouse, process, selected, unread_folders
from lakehouse.errors import ConfigurationError
from lakehouse.pipeline import pending_batches
from lakehouse.settings import EngineChoice, Settings
from tasks.seed import seed_landing


def _run_name() -> str:
    day = flow_run.parameters.get("date")
    return f"daily-{day}" if day else "daily-pending"


@flow(name="daily", flow_run_name=_run_name)
def daily(
    date: Date | None = None, engine: EngineChoice = "auto", source: list[str] | None = None
) -> RunSummary:
    """Promote landed batches bronze → silver → gold, each write gated by its contract.

    With no ``date``, every landed batch not yet promoted, oldest first. ``source`` picks some of the
    declared sources (default: all of them). On the embedded default with an empty demo landing
    zone, each source that ships a ``seed.py`` is seeded first.

    Raises:
        RunFailed: if any step failed (whatever passed was published).

    """
    logger = get_run_logger()
    started = datetime.now(UTC)
    settings = Settings()
    lh = open_lakehouse(settings, "daily", engine)
    sources = selected(lh.registry, source)
    if settings.landing_uri is None:  # the demo zone: seed the sources that ship demo data, if empty
        for name in sources:
            if lh.registry.seeder(name) is not None and lh.zone(name).is_empty():
                logger.info(
                    "demo landing zone of %s is empty: seeding it (scale %s)", name, settings.demo_scale
                )
                with tempfile.TemporaryDirectory() as work:
                    seed_landing(lh, name, settings.demo_scale, Path(work))
    dates = [date] if date else pending_batches(lh, sources)
    unread = unread_folders(lh, sources)
    if not dates:
        not_read = f"; not read: {'; '.join(unread)}" if unread else ""
        logger.info(
            "nothing to do: every landed batch of %s in %s is promoted%s",
            ", ".join(sources),
            settings.landing,
            not_read,
        )
        return RunSummary(unread=unread)
    logger.info("%d batch date(s) to promote: %s .. %s", len(dates), dates[0], dates[-1])
    summary = RunSummary(unread=unread)
    try:
        process(lh, settings, dates, summary, sources=sources)
    finally:
        report_run(settings, lh, summary, started, datetime.now(UTC))
    if summary.failures:
        raise RunFailed(f"{len(summary.failures)} step(s) failed: " + "; ".join(summary.failures))
    return summary


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; exits non-zero if the run failed."""
    parser = argparse.ArgumentParser(prog="python -m flows.daily", description=daily.description)
    parser.add_argument("--date", type=Date.fromisoformat, help="one batch date (YYYY-MM-DD)")
    parser.add_argument("--engine", choices=["auto", "polars", "spark"], default="auto")
    parser.add_argument(
        "--source",
        action="append",
        metavar="NAME",
        help="a declared source to run (repeatable; default: all)",
    )
    args = parser.parse_args(argv)
    try:
        daily(date=args.date, engine=args.engine, source=args.source)
    except RunFailed as exc:
        logging.getLogger(__name__).error("daily run failed: %s", exc)
        return 1
    except ConfigurationError as exc:
        logging.getLogger(__name__).error("daily cannot start: %s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
