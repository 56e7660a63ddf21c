from datetime import date, timedelta

import pytest

from lakehouse.batches import chunks, format_ranges, parse_ranges


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
