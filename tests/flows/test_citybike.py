"""The second bundled source, citybike (JSON lines, timestamps, a null token, a fact without a key,
orphans kept with a warning, an SCD2 dimension): loaded end to end by the daily flow, on both engines.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from pyiceberg.catalog import Catalog

from flows.daily import daily
from lakehouse.catalog import open_catalog
from lakehouse.landing import LandingZone
from lakehouse.settings import Settings
from tests.conftest import SPARK_MASTER, TEST_CONF
from tests.declared import REGISTRY
from tests.flows.conftest import content

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]
SOURCE = REGISTRY.sources["citybike"]
SEEDER = REGISTRY.seeder("citybike")
START = SEEDER.START
COMPUTED = ["silver.stations", "silver.trips", "quarantine.trips", "gold.dim_station", "gold.station_daily"]


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> LandingZone:
    zone = LandingZone(str(tmp_path_factory.mktemp("citybike") / "landing"), SOURCE)
    SEEDER.seed(zone)
    return zone


@pytest.fixture
def home(landing: LandingZone, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Catalog]:
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LAKEHOUSE_LANDING_URI", landing.uri)
    yield open_catalog(Settings())


def landed_lines(zone: LandingZone, table: str) -> list[str]:
    """Every non-blank landed line of ``table``, read independently of the pipeline."""
    return [
        line
        for f in zone.files(table, zone.batches(table))
        for line in Path(f.path).read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def rows(catalog: Catalog, table_id: str) -> pl.DataFrame:
    frame = pl.from_arrow(catalog.load_table(table_id).scan().to_arrow())
    assert isinstance(frame, pl.DataFrame)
    return frame


def test_citybike_loads_end_to_end_with_every_row_in_silver_or_quarantine(
    landing: LandingZone, home: Catalog
) -> None:
    summary = daily(source=["citybike"], engine="polars")
    assert summary.failures == {}
    trips, quarantined = rows(home, "silver.trips"), rows(home, "quarantine.trips")
    lines = landed_lines(landing, "trips")
    assert trips.height + quarantined.height == len(lines)
    assert rows(home, "silver.stations").height == len(
        {json.loads(x)["station_id"] for x in landed_lines(landing, "stations")}
    )
    # typed, and "NA" read as null: a member's trip is free
    assert trips.schema["started_at"] == pl.Datetime("us", "UTC")
    assert (trips.schema["member"], trips.schema["fare"], trips.schema["duration_s"]) == (
        pl.Boolean,
        pl.Float64,
        pl.Int32,
    )
    assert trips.get_column("fare").null_count() == trips.get_column("member").sum() > 0
    assert set(quarantined.get_column("fare").drop_nulls()) >= {"NA"}  # quarantine keeps the landed text
    rules = set(quarantined.get_column("_rule").str.split(":").list.first())
    assert rules == {"not_accepted", "out_of_range", "unparseable", "malformed_row"}
    # one version per distinct (name, city, capacity) of a station, in landing order
    versions: dict[int, list[tuple[str, str, int]]] = {}
    for line in landed_lines(landing, "stations"):
        s = json.loads(line)
        attributes = (s["name"], s["city"], s["capacity"])
        if not versions.get(s["station_id"]) or versions[s["station_id"]][-1] != attributes:
            versions.setdefault(s["station_id"], []).append(attributes)
    dim = rows(home, "gold.dim_station").sort("station_id", "valid_from")
    assert dim.height == sum(len(v) for v in versions.values())
    assert dim.filter(pl.col("is_current")).height == len(versions)
    assert dim.group_by("station_id").len().filter(pl.col("len") > 1).height >= 2  # some stations changed
    daily_rows = rows(home, "gold.station_daily")
    assert daily_rows.get_column("trips").sum() == trips.height
    assert daily_rows.get_column("member_trips").sum() == trips.get_column("member").sum()


def test_trips_to_a_station_not_yet_listed_are_kept_with_a_warning(home: Catalog) -> None:
    orphan_day = START + timedelta(days=SEEDER.FIRST_TRIP_TO_IT)
    for offset in range(SEEDER.FIRST_TRIP_TO_IT + 1):
        summary = daily(date=START + timedelta(days=offset), source=["citybike"], engine="polars")
        assert summary.failures == {}
    (gate,) = [g for g in summary.gates if g.table == "silver.trips"]
    assert gate.passed and gate.batches == (orphan_day,)
    warned = [c for c in gate.checks if c.outcome == "warned"]
    assert [c.name for c in warned] != []
    assert all("exists in silver.stations" in c.name for c in warned)
    trips = rows(home, "silver.trips").filter(pl.col("_batch_date") == orphan_day)
    assert trips.filter(pl.col("start_station_id") == SEEDER.LATE_STATION[0]).height > 0  # kept


@pytest.mark.spark
@pytest.mark.usefixtures("spark")
def test_spark_and_polars_give_the_same_citybike_tables(
    landing: LandingZone, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LAKEHOUSE_LANDING_URI", landing.uri)
    monkeypatch.setenv("LAKEHOUSE_SPARK_MASTER", SPARK_MASTER)
    monkeypatch.setenv("LAKEHOUSE_SPARK_CONF", json.dumps(TEST_CONF))
    catalogs = {}
    for engine in ("polars", "spark"):
        monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path / engine))
        daily(source=["citybike"], engine=engine)
        catalogs[engine] = open_catalog(Settings())
    for table_id in COMPUTED:
        expected = content(catalogs["polars"], table_id)
        assert expected.height > 0, table_id
        assert content(catalogs["spark"], table_id).equals(expected), table_id


def test_seed_lands_what_it_says(tmp_path: Path) -> None:
    zone = LandingZone(str(tmp_path / "landing"), SOURCE)
    counts = SEEDER.seed(zone, days=3, anomalies=False, changes=False)
    assert zone.batches() == [START + timedelta(days=d) for d in range(3)]
    assert counts == {"stations": 12, "trips": 3 * SEEDER.TRIPS_PER_DAY}
    assert len(landed_lines(zone, "trips")) == counts["trips"]
    assert all(json.loads(x)["bike_type"] in ("classic", "electric") for x in landed_lines(zone, "trips"))
