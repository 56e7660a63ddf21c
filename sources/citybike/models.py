"""citybike's gold models: an SCD2 station dimension and trips per station and day."""

from __future__ import annotations

import narwhals.stable.v2 as nw
from narwhals.typing import IntoLazyFrameT

from lakehouse.models import batches, model, replace, scd2, versions
from lakehouse.tables import BATCH_DATE
from lakehouse.transforms.frames import lazy


@model(
    "dim_station",
    inputs={"stations": versions("silver.stations")},
    materialization=scd2("station_id", tracked=("name", "city", "capacity"), surrogate_key="station_key"),
    columns={
        "station_key": "bigint",
        "station_id": "int",
        "name": "string",
        "city": "string",
        "capacity": "int",
    },
    description="Station versions: a new name, city or capacity opens a version",
)
def dim_station(stations: IntoLazyFrameT) -> IntoLazyFrameT:
    """Every landed station version (the feed's own timestamp is not tracked)."""
    return lazy(stations).drop("updated_at").to_native()


@model(
    "station_daily",
    inputs={"trips": batches("silver.trips")},
    materialization=replace(),
    columns={
        "ride_date": "date",
        "start_station_id": "int",
        "trips": "bigint",
        "member_trips": "bigint",
        "ride_seconds": "bigint",
        "revenue_cents": "bigint",
    },
    description="Trips, member trips, ride time and fares (in cents) per start station and day",
)
def station_daily(trips: IntoLazyFrameT) -> IntoLazyFrameT:
    """Trips per start station and the day they started (UTC), with ride time and fares."""
    daily = (
        lazy(trips)
        .with_columns(nw.col("started_at").dt.date().alias("ride_date"))
        .group_by("ride_date", "start_station_id")
        .agg(
            nw.len().cast(nw.Int64()).alias("trips"),
            nw.col("member").cast(nw.Int64()).sum().alias("member_trips"),
            nw.col("duration_s").cast(nw.Int64()).sum().alias("ride_seconds"),
            # in cents, each fare rounded first: a sum of doubles depends on the order of its terms
            (nw.col("fare") * 100).round(0).cast(nw.Int64()).sum().alias("revenue_cents"),
            nw.col(BATCH_DATE).min(),
        )
        .sort("ride_date", "start_station_id")
    )
    return daily.to_native()
