from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.io.pyarrow import schema_to_pyarrow
from pyiceberg.table import Table

from lakehouse.batches import chunks, format_ranges, parse_ranges, runs
from lakehouse.catalog import RetryingSqlCatalog, embedded_default, ensure_tables
from lakehouse.files import MAX_RANGES, batch_filter
from lakehouse.tables import bronze_table
from tests.declared import TABLES


def test_ranges_round_trip_and_collapse_consecutive_days() -> None:
    days = [date(1995, 1, 1), date(1995, 1, 2), date(1995, 1, 3), date(1995, 2, 1), date(1994, 12, 31)]
    text = format_ranges(days)
    assert text == "1994-12-31..1995-01-03,1995-02-01"
    assert parse_ranges(text) == set(days)
    assert parse_ranges(None) == set() == parse_ranges("")


def test_parse_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        parse_ranges("1995-13-01")


def test_chunks_bound_the_calendar_span() -> None:
    days = [date(1995, 1, 1) + timedelta(days=n) for n in range(10)]
    out = chunks(reversed(days), 4)
    assert [len(c) for c in out] == [4, 4, 2]
    assert out[0][0] == date(1995, 1, 1)
    assert all((c[-1] - c[0]).days < 4 for c in out)


def test_chunks_bound_the_landed_bytes() -> None:
    days = [date(1995, 1, 1) + timedelta(days=n) for n in range(6)]
    sizes = dict(zip(days, [10, 50, 30, 200, 20, 20], strict=True))
    out = chunks(days, 366, sizes, 100)
    # 10+50+30 fit; 200 alone is over the bound: its own chunk; then 20+20
    assert out == [days[:3], [days[3]], days[4:]]
    assert chunks(days, 2, sizes, 1000) == [days[0:2], days[2:4], days[4:6]]  # the span still bounds
    assert chunks(days, 366) == [days]


def test_runs_are_consecutive_days() -> None:
    days = [date(1995, 1, 3), date(1995, 1, 1), date(1995, 1, 2), date(1995, 1, 5)]
    assert runs(days) == [(date(1995, 1, 1), date(1995, 1, 3)), (date(1995, 1, 5), date(1995, 1, 5))]
    assert runs([]) == []


@pytest.fixture
def region(tmp_path: Path) -> Table:
    """bronze.region holding one row per day of 1995 and January 1996, in monthly partitions."""
    catalog = RetryingSqlCatalog("t", **embedded_default(tmp_path))
    spec = bronze_table(TABLES["region"])
    ensure_tables(catalog, [spec])
    table = catalog.load_table(spec.identifier)
    days = [date(1995, 1, 1) + timedelta(days=n) for n in range(396)]
    schema = schema_to_pyarrow(table.schema(), include_field_ids=False)
    rows = [{"r_regionkey": str(n), "_batch_date": day} for n, day in enumerate(days)]
    table.append(pa.Table.from_pylist(rows, schema=schema))
    return table


EVERY_OTHER_DAY = [date(1995, 3, 1) + timedelta(days=2 * n) for n in range(MAX_RANGES + 1)]


@pytest.mark.parametrize(
    "batches",
    [
        [date(1995, 1, 1) + timedelta(days=n) for n in range(365)],  # a year: one range
        [date(1995, 1, 31), date(1995, 2, 1), date(1995, 6, 15), date(1995, 12, 31), date(1996, 1, 1)],
        [date(1995, 7, 4)],
        EVERY_OTHER_DAY,  # more runs than MAX_RANGES: a set predicate
        EVERY_OTHER_DAY[:-1],  # exactly MAX_RANGES runs
        [date(1994, 6, 1)],  # no such day
    ],
)
def test_batch_filter_selects_exactly_the_batches(region: Table, batches: list[date]) -> None:
    """Whatever form the filter takes, a scan and a delete by it touch exactly those days."""
    scanned = region.scan(row_filter=batch_filter(batches)).to_arrow()
    assert set(scanned["_batch_date"].to_pylist()) == set(batches) & set(_days(region))
    assert scanned.num_rows == len(set(scanned["_batch_date"].to_pylist()))
    before = set(_days(region))
    region.delete(batch_filter(batches))
    assert set(_days(region)) == before - set(batches)


def _days(table: Table) -> list[date]:
    return table.scan(selected_fields=("_batch_date",)).to_arrow()["_batch_date"].to_pylist()
