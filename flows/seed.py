"""``python -m flows.seed --scale SF [--start D] [--days N] [--no-anomalies] [--no-changes] [--force]``.

Generates TPC-H with ``tpchgen-cli`` and lands it in the configured landing zone
(``LAKEHOUSE_LANDING_URI``, default ``$LAKEHOUSE_HOME/landing``) as daily batches.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import tempfile
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from lakehouse.errors import LakehouseError
from lakehouse.landing import LandingZone
from lakehouse.registry import load_registry
from lakehouse.seed import SOURCE, seed
from lakehouse.settings import Settings

log = logging.getLogger(__name__)


def _positive_float(text: str) -> float:
    value = float(text)
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m flows.seed``."""
    p = argparse.ArgumentParser(prog="python -m flows.seed", description="Seed the landing zone with TPC-H.")
    p.add_argument("--scale", type=_positive_float, required=True, help="TPC-H scale factor, e.g. 0.01 or 1")
    p.add_argument(
        "--start",
        type=date.fromisoformat,
        help="first batch date, YYYY-MM-DD (default: TPC-H's first order date)",
    )
    p.add_argument(
        "--days", type=_positive_int, help="number of days to land (default: through TPC-H's last order date)"
    )
    p.add_argument("--no-anomalies", action="store_true", help="land no bad rows")
    p.add_argument("--no-changes", action="store_true", help="land no customer change sets")
    p.add_argument(
        "--force",
        action="store_true",
        help="seed a zone that already has batches (files of the same names are overwritten, others kept)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Seed the landing zone from the command line ``argv``; return the exit code.

    Exit codes: 0 seeded, 1 the seed failed (message on stderr), 2 the zone already has batches and
    ``--force`` was not given.

    Raises:
        SystemExit: with code 2 on invalid arguments (from argparse).

    """
    os.environ.setdefault("SODA_CORE_TELEMETRY_ENABLED", "false")
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings()
    zone = LandingZone(settings.landing, load_registry(settings.sources).sources[SOURCE])
    if not args.force and not zone.is_empty():
        sys.stderr.write(f"{zone.uri} already has landed batches; pass --force to seed into it anyway\n")
        return 2
    try:
        with tempfile.TemporaryDirectory(prefix="tpchgen-") as work:
            seed(
                zone,
                scale=args.scale,
                start=args.start,
                days=args.days,
                anomalies=not args.no_anomalies,
                changes=not args.no_changes,
                workdir=Path(work),
            )
    except (LakehouseError, ValueError) as exc:
        sys.stderr.write(f"seed failed: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
