"""``python -m flows.seed --scale SF [--source NAME] [--start D] [--days N] [--no-anomalies] ...``.

Lands a source's demo data (its folder's ``seed.py``; TPC-H by default, generated with
``tpchgen-cli``) in the configured landing zone (``LAKEHOUSE_LANDING_URI``, default
``$LAKEHOUSE_HOME/landing``) as daily batches.
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
from lakehouse.settings import Settings

log = logging.getLogger(__name__)
DEFAULT_SOURCE = "tpch"
"""The bundled example seeded when no ``--source`` is given."""


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
    p = argparse.ArgumentParser(
        prog="python -m flows.seed", description="Seed the landing zone with demo data."
    )
    p.add_argument("--scale", type=_positive_float, required=True, help="TPC-H scale factor, e.g. 0.01 or 1")
    p.add_argument(
        "--source",
        default=DEFAULT_SOURCE,
        help=f"the source to seed (one with a seed.py; default {DEFAULT_SOURCE})",
    )
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
    try:
        registry = load_registry(settings.sources)
        seeder = registry.seeder(args.source) if args.source in registry.sources else None
    except LakehouseError as exc:
        sys.stderr.write(f"seed failed: {exc}\n")
        return 1
    if seeder is None:
        sys.stderr.write(f"no source {args.source!r} with a seed.py under {settings.sources}\n")
        return 1
    zone = LandingZone(settings.landing, registry.sources[args.source])
    if not args.force and not zone.is_empty():
        sys.stderr.write(f"{zone.uri} already has landed batches; pass --force to seed into it anyway\n")
        return 2
    try:
        with tempfile.TemporaryDirectory(prefix="seed-") as work:
            seeder.seed(
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
