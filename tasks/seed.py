"""Seeding a source's demo landing zone as a task."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from lakehouse.pipeline import Lakehouse


@task(name="seed", task_run_name="seed-{source}", cache_policy=NO_CACHE)
def seed_landing(
    lh: Lakehouse,
    source: str,
    scale: float,
    workdir: Path,
    anomalies: bool = True,
    changes: bool = True,
) -> None:
    """Land ``source``'s demo data (its ``seed.py``) at ``scale`` into its landing zone.

    Raises:
        ValueError: if ``source`` has no ``seed.py``.

    """
    seeder = lh.registry.seeder(source)
    if seeder is None:
        raise ValueError(f"source {source!r} has no seed.py to land demo data")
    seeder.seed(lh.zone(source), scale=scale, workdir=workdir, anomalies=anomalies, changes=changes)
