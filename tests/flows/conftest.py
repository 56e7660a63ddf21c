"""Fixtures for flow tests: a seeded landing zone and per-test lakehouse homes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest
from pyiceberg.catalog import Catalog

from lakehouse.catalog import open_catalog
from lakehouse.landing import LandingZone
from lakehouse.settings import Settings
from tests.declared import LOAD_ORDER, seed
from tests.declared import TPCH as TPCH_SOURCE

START = date(1995, 3, 1)
DAYS = 6


@dataclass(frozen=True)
class Landing:
    """A seeded landing zone."""

    uri: str
    zone: LandingZone
    dates: list[date]


def make_landing(root: Path, *, anomalies: bool, changes: bool) -> Landing:
    zone = LandingZone(str(root / "landing"), TPCH_SOURCE)
    seed(
        zone, scale=0.01, start=START, days=DAYS, anomalies=anomalies, changes=changes, workdir=root / "work"
    )
    return Landing(zone.uri, zone, zone.batches())


@pytest.fixture(scope="session")
def clean_landing(tmp_path_factory: pytest.TempPathFactory) -> Landing:
    """TPC-H SF0.01, six days of orders, no anomalies, no changes."""
    return make_landing(tmp_path_factory.mktemp("clean"), anomalies=False, changes=False)


@pytest.fixture(scope="session")
def dirty_landing(tmp_path_factory: pytest.TempPathFactory) -> Landing:
    """TPC-H SF0.01, six days of orders, with anomalies and customer changes."""
    return make_landing(tmp_path_factory.mktemp("dirty"), anomalies=True, changes=True)


@pytest.fixture
def use_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[callable]:  # type: ignore[valid-type]
    """Point LAKEHOUSE_HOME/LANDING_URI at a fresh home and a given landing zone."""

    def _use(landing: Landing, name: str = "home") -> Catalog:
        monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path / name))
        monkeypatch.setenv("LAKEHOUSE_LANDING_URI", landing.uri)
        return open_catalog(Settings())

    yield _use


def content(catalog: Catalog, table_id: str) -> pl.DataFrame:
    """A table's rows without load metadata, sorted: for content comparisons."""
    frame = pl.from_arrow(catalog.load_table(table_id).scan().to_arrow())
    assert isinstance(frame, pl.DataFrame)
    frame = frame.select([c for c in frame.columns if not c.startswith("_")])
    return frame.sort(frame.columns)


def landed(landing: Landing, table: str) -> pl.DataFrame:
    """Every landed row of a table (as strings) read back with DuckDB, independently of the pipeline."""
    files = [f.path for f in landing.zone.files(table, landing.dates)]
    con = duckdb.connect()
    frames = []
    for path in files:
        if path.endswith(".csv"):
            rel = con.sql(f"select * from read_csv('{path}', all_varchar=true, header=true)")
        elif path.endswith(".jsonl"):
            rel = con.sql(f"select * from read_json('{path}', format='newline_delimited')")
        else:
            rel = con.sql(f"select * from read_parquet('{path}')")
        frames.append(rel.pl().with_columns(pl.all().cast(pl.String)))
    return pl.concat(frames, how="diagonal")


def negative_prices(landing: Landing, root: Path, first: date, bad_day: date) -> Landing:
    """Days ``first`` and ``bad_day`` of ``landing``, most lineitem prices of ``bad_day`` negative."""
    zone = LandingZone(str(root / "landing"), TPCH_SOURCE)
    for name in LOAD_ORDER:
        for f in landing.zone.files(name, [first, bad_day]):
            data = Path(f.path).read_bytes()
            if name == "lineitem" and f.batch == bad_day:
                frame = pl.read_csv(data, infer_schema=False)
                frame = frame.with_columns(
                    pl.when(pl.int_range(pl.len()) % 4 != 0)
                    .then("-" + pl.col("l_extendedprice"))
                    .otherwise(pl.col("l_extendedprice"))
                    .alias("l_extendedprice")
                )
                data = frame.write_csv().encode()
            zone.write(name, f.batch, Path(f.path).name, data)
    return Landing(zone.uri, zone, zone.batches())
