"""Land a deterministic citybike landing zone: a station feed and a day of trips per batch date.

Day one lands every station; every third day a change set renames a station or changes a
capacity (new SCD2 versions), and station 13 opens on day five although trips start there from
day three (orphan references, kept with a warning). Most days a trip is bad on purpose (an
unknown bike type, a negative duration, an unparseable time, a line that is not JSON): those go
to quarantine with their rule. Free trips have the fare ``"NA"``.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from lakehouse.landing import LandingZone

START = date(2024, 5, 1)
DAYS = 10
TRIPS_PER_DAY = 40
CITIES = ("Lyon", "Nantes", "Lille")
STATIONS = {i: (f"Station {i}", CITIES[i % 3], 10 + 5 * (i % 4)) for i in range(1, 13)}
LATE_STATION = (13, "Gare Nord", "Lille", 30)
LATE_STATION_DAY, FIRST_TRIP_TO_IT = 4, 2
BAD_TRIPS = (
    ("bike_type", "scooter"),
    ("duration_s", -5),
    ("started_at", "yesterday"),
    (None, "{not json"),
)


def _station(key: int, name: str, city: str, capacity: int, at: datetime) -> dict[str, Any]:
    return {"station_id": key, "name": name, "city": city, "capacity": capacity, "updated_at": _iso(at)}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _lines(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def seed(
    zone: LandingZone,
    *,
    scale: float = 0.01,
    workdir: Path | None = None,
    start: date | None = None,
    days: int | None = None,
    anomalies: bool = True,
    changes: bool = True,
) -> dict[str, int]:
    """Land ``days`` batches (default 10) from ``start`` (default 2024-05-01) into ``zone``.

    ``scale`` 0.01 lands 40 trips a day (at least 10). Without ``anomalies`` no trip is bad; without
    ``changes`` the stations land once. ``workdir`` is not used (nothing is generated first).
    Returns the rows landed per table.
    """
    del workdir
    start, days = start or START, days or DAYS
    trips_per_day = max(10, round(TRIPS_PER_DAY * scale / 0.01))
    rng = random.Random(7)
    stations = dict(STATIONS)
    landed = {"stations": 0, "trips": 0}
    for offset in range(days):
        day = start + timedelta(days=offset)
        morning = datetime(day.year, day.month, day.day, 6, tzinfo=UTC)
        changed: list[dict[str, Any]] = []
        if offset == 0:
            changed = [_station(k, *v, morning) for k, v in stations.items()]
        elif changes and offset % 3 == 0:
            key = rng.choice(list(stations))
            name, city, capacity = stations[key]
            stations[key] = (name, city, capacity + 5) if offset % 2 else (f"{name} bis", city, capacity)
            changed = [_station(key, *stations[key], morning)]
        if changes and offset == LATE_STATION_DAY:
            key, *rest = LATE_STATION
            stations[key] = tuple(rest)  # type: ignore[assignment]
            changed.append(_station(key, *rest, morning))  # type: ignore[arg-type]
        if changed:
            zone.write("stations", day, "stations.jsonl", _lines(changed))
            landed["stations"] += len(changed)
        lines = []
        ends = [*stations, *([LATE_STATION[0]] if changes and offset >= FIRST_TRIP_TO_IT else [])]
        for _ in range(trips_per_day):
            started = morning + timedelta(minutes=rng.randrange(16 * 60))
            duration = rng.randrange(120, 3600)
            member = rng.random() < 0.6
            trip = {
                "started_at": _iso(started),
                "ended_at": _iso(started + timedelta(seconds=duration)),
                "start_station_id": rng.choice(ends),
                "end_station_id": rng.choice(ends) if rng.random() > 0.05 else None,
                "bike_type": rng.choice(("classic", "electric")),
                "member": member,
                "duration_s": duration,
                "fare": "NA" if member else round(1 + duration / 600, 2),
            }
            lines.append(json.dumps(trip))
        if anomalies and offset % 5 != 4:  # most days carry one bad trip
            column, value = BAD_TRIPS[offset % len(BAD_TRIPS)]
            bad = json.loads(lines[0])
            if column is None:
                lines.append(str(value))
            else:
                bad[column] = value
                lines.append(json.dumps(bad))
        zone.write("trips", day, "trips.jsonl", ("\n".join(lines) + "\n").encode())
        landed["trips"] += len(lines)
    return landed
