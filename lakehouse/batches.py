"""Batch dates: compact range notation for snapshot properties, and chunking of date lists."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, timedelta


def runs(dates: Iterable[date]) -> list[tuple[date, date]]:
    """The dates as sorted ``(first, last)`` runs of consecutive days."""
    out: list[tuple[date, date]] = []
    for day in sorted(set(dates)):
        if out and day - out[-1][1] == timedelta(days=1):
            out[-1] = (out[-1][0], day)
        else:
            out.append((day, day))
    return out


def format_ranges(dates: Iterable[date]) -> str:
    """``1995-01-01..1995-01-03,1995-02-01``: sorted, consecutive days collapsed into ranges."""
    return ",".join(first.isoformat() if first == last else f"{first}..{last}" for first, last in runs(dates))


def parse_ranges(text: str | None) -> set[date]:
    """Inverse of :func:`format_ranges`; ``None`` or empty gives the empty set.

    Raises:
        ValueError: if the text is not in range notation.

    """
    out: set[date] = set()
    for part in (text or "").split(","):
        if not part:
            continue
        first, _, last = part.partition("..")
        start = date.fromisoformat(first)
        end = date.fromisoformat(last) if last else start
        out.update(start + timedelta(days=n) for n in range((end - start).days + 1))
    return out


def chunks(
    dates: Iterable[date], max_days: int, sizes: Mapping[date, int] | None = None, max_bytes: int = 0
) -> list[list[date]]:
    """Split sorted dates into chunks each spanning at most ``max_days`` calendar days.

    With ``sizes`` (bytes per date) and ``max_bytes``, a chunk also holds at most ``max_bytes``,
    unless it is one date larger than that.
    """
    out: list[list[date]] = []
    held = 0
    for day in sorted(set(dates)):
        size = sizes.get(day, 0) if sizes else 0
        if out and (day - out[-1][0]).days < max_days and (not max_bytes or held + size <= max_bytes):
            out[-1].append(day)
            held += size
        else:
            out.append([day])
            held = size
    return out
