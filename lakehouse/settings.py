"""Settings of a run, read from the environment (``LAKEHOUSE_*``) once, in flows, never at import."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

EngineChoice = Literal["auto", "polars", "spark"]
ENGINE_THRESHOLD_BYTES = 174 * 1024 * 1024
"""From ``make bench`` (2 cores, 23.5 GiB): Spark was 10-50x slower than Polars at every size
measured (71 kB to 171 MB of lineitem data files), so there the limit is memory: Polars peaked at
32.8 bytes of RSS per byte of work on ``3469025`` (32.6 on ``c3e40fa``, ``bench/results/sf1.json``),
and 174 MiB of work keeps one step within the 6 GB a bulk run is held to at SF10
(``recommended_threshold_bytes``, from ``bench.router.recommended_threshold``). Whole reference
tables at SF10 (315 MB of ``partsupp``: 7.7 GiB on Polars) run on Spark. Re-measure on other
machines: ``python -m bench``."""
DURATION_PATTERN = r"^(\d+[wdhms])+$"
BUNDLED_SOURCES = Path(__file__).resolve().parent.parent / "sources"
"""The sources folder next to the package: TPC-H and the other bundled examples, and a team's own."""
"""A duration such as ``7d``, ``12h``, ``30m``, ``45s``, ``2w`` or ``1d12h``."""


class Settings(BaseSettings):
    """Where the lakehouse lives and how runs behave.

    The catalog itself is configured the pyiceberg way (``.pyiceberg.yaml`` or
    ``PYICEBERG_CATALOG__<NAME>__*``); when nothing configures catalog ``catalog``, an embedded
    SQLite catalog under ``home`` is used.
    """

    model_config = SettingsConfigDict(env_prefix="LAKEHOUSE_", extra="ignore")

    home: Path = Field(default=Path(".lakehouse"), description="Local state: catalog, warehouse, reports.")
    landing_uri: str | None = Field(
        default=None, description="Landing zone: a path, file:// or s3:// URI (default $home/landing)."
    )
    catalog: str = Field(default="lakehouse", description="pyiceberg catalog name.")
    sources: Path = Field(
        default=BUNDLED_SOURCES,
        description="The folder of source folders (each with a source.yml); default: the checkout's sources/",
    )
    chunk_days: int = Field(default=366, ge=1, description="Most batch dates processed in one chunk.")
    chunk_mb: int = Field(
        default=256,
        ge=1,
        description=(
            "Most landed MiB processed in one chunk (a larger batch date is a chunk of its own): "
            "bounds the memory of a step whatever the scale."
        ),
    )
    quarantine_max_share: float = Field(
        default=0.05, ge=0.0, le=1.0, description="Largest share of a batch that may go to quarantine."
    )
    reports_keep_runs: int = Field(
        default=100, ge=1, description="Runs whose reports are kept; older runs' reports are deleted."
    )
    demo_scale: float = Field(default=0.01, gt=0, description="TPC-H scale seeded into an empty demo zone.")
    maintenance_target_file_mb: int = Field(
        default=128, ge=1, description="Size of the data files compaction writes, in MiB."
    )
    maintenance_expire_older_than: str = Field(
        default="7d", pattern=DURATION_PATTERN, description="Snapshots older than this are expired (e.g. 7d)."
    )
    maintenance_retain_last: int = Field(
        default=5, ge=1, description="Most recent snapshots of main kept by expiry whatever their age."
    )
    maintenance_orphan_older_than: str = Field(
        default="3d",
        pattern=DURATION_PATTERN,
        description="Unreferenced files younger than this are kept (they may belong to an in-flight commit).",
    )
    stale_branch_age: str = Field(
        default="1h",
        pattern=DURATION_PATTERN,
        description=(
            "Audit branches older than this were left by runs that died and are removed when a run "
            "starts; it must exceed the longest write-audit-publish of one table."
        ),
    )
    spark_master: str = Field(
        default="local[*]",
        description=(
            "Spark master URL: local[N], spark://host:7077, k8s://..., or a Spark Connect sc://host:15002 "
            "(LAKEHOUSE_SPARK_MASTER)."
        ),
    )
    spark_conf: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Extra Spark configuration, applied over the lakehouse defaults, as a JSON object in "
            'LAKEHOUSE_SPARK_CONF, e.g. {"spark.executor.memory": "8g"}. A cluster must reach the '
            "warehouse (shared storage such as S3, with hadoop-aws on its classpath)."
        ),
    )
    engine_threshold_bytes: int = Field(
        default=ENGINE_THRESHOLD_BYTES,
        ge=0,
        description="With --engine auto, work above this many bytes (landed or in data files) runs on Spark.",
    )

    @property
    def landing(self) -> str:
        """The landing zone URI (absolute path or URI)."""
        if self.landing_uri:
            return self.landing_uri
        return str((self.home / "landing").resolve())

    @property
    def contracts_dir(self) -> Path:
        """Where the contracts derived from the declarations are written (for the gate and the Soda CLI)."""
        return self.home / "contracts"

    @property
    def reports_dir(self) -> Path:
        """Where gate and run reports, and the report site over them, are written."""
        return self.home / "reports"
