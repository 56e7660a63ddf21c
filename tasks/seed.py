"""Seeding the landing zone as a task."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from lakehouse.landing import LandingZone
from lakehouse.seed import SeedReport, seed


@task(name="seed", cache_policy=NO_CACHE)
def seed_landing(
    zone: LandingZone,
    scale: float,
    workdir: Path,
    anomalies: bool = True,
    changes: bool = True,
) -> SeedReport:
    """Generate TPC-H at ``scale`` and land it in ``zone``."""
    return seed(zone, scale=scale, workdir=workdir, anomalies=anomalies, changes=changes)
