"""A daily run over a batch mixing good and hostile files, on the real Prefect engine.

The run ends as the gate decides (the quarantine share is allowed high here); every bad file and
row is in quarantine with its reason, every good row is in silver, and the count of landed records
equals silver plus quarantine, file by file.
"""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import polars as pl
import pytest
from pyiceberg.catalog import Catalog

from flows.daily import daily
from lakehouse.landing import LandingZone
from lakehouse.tables import ROW_NUMBER, RULE, SOURCE_FILE
from tests.declared import LOAD_ORDER
from tests.declared import TPCH as TPCH_SOURCE
from tests.fixtures.hostile.corpus import TABLE, corpus, csv_bytes, land, matches, order
from tests.flows.conftest import Landing

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]
OFFSET = 10_000_000  # corpus order keys, clear of TPC-H's
LINEITEM_BAD = {
    "lineitem_gzip.csv": "unreadable_file: compressed file with .csv extension (gzip)",
    "lineitem_empty.csv": "unreadable_file: empty file",
    "lineitem_notes.txt": "unreadable_file: unsupported file type '.txt' (expected .csv, .jsonl, .parquet)",
}


def _rows(catalog: Catalog, table_id: str) -> pl.DataFrame:
    frame = pl.from_arrow(catalog.load_table(table_id).scan().to_arrow())
    assert isinstance(frame, pl.DataFrame)
    return frame


def _of(frame: pl.DataFrame, filename: str) -> pl.DataFrame:
    return frame.filter(pl.col(SOURCE_FILE).str.ends_with(f"/{filename}")).sort(ROW_NUMBER)


class _Messages(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_a_daily_run_quarantines_every_bad_file_and_row_and_loads_the_rest(
    clean_landing: Landing,
    use_home,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LAKEHOUSE_QUARANTINE_MAX_SHARE", "0.9")
    day = clean_landing.dates[0]
    zone = LandingZone(str(tmp_path / "landing"), TPCH_SOURCE)
    real: dict[str, list[str]] = {}
    for name in LOAD_ORDER:  # the first batch as landed: every reference snapshot and that day's facts
        for f in clean_landing.zone.files(name, [day]):
            zone.write(name, day, Path(f.path).name, Path(f.path).read_bytes())
            real.setdefault(name, []).append(Path(f.path).name)
    kinds = corpus(OFFSET)
    land(zone, day, kinds, tmp_path / "outside")
    lineitem = Path(clean_landing.zone.files("lineitem", [day])[0].path).read_bytes()
    zone.write("lineitem", day, "lineitem_gzip.csv", gzip.compress(lineitem, mtime=0))
    zone.write("lineitem", day, "lineitem_empty.csv", b"")
    zone.write("lineitem", day, "lineitem_notes.txt", b"not data\n")
    # an unknown table and partitions that are no batch: reported, never read, no crash
    source = tmp_path / "landing" / "tpch"
    for odd in (source / "unknown" / f"dt={day}", source / TABLE / "dt=..", source / TABLE / "dt=1995-13-45"):
        odd.mkdir(parents=True)
        (odd / "orders.csv").write_bytes(csv_bytes([order(OFFSET + 1)]))

    catalog = use_home(Landing(zone.uri, zone, [day]))  # (listing here would warn outside a flow run)
    messages = _Messages()
    logging.getLogger("lakehouse").addHandler(messages)
    try:
        summary = daily()  # no RunFailed: the gate passed
    finally:
        logging.getLogger("lakehouse").removeHandler(messages)
    assert summary.batches == [day]
    assert summary.gates and all(g.passed for g in summary.gates)
    assert any("tpch/unknown is not read: no such table" in m for m in messages.messages)
    assert any("dt=1995-13-45 is not read" in m for m in messages.messages)

    bronze, silver, quarantine = (
        _rows(catalog, f"{ns}.{TABLE}") for ns in ("bronze", "silver", "quarantine")
    )
    for kind in kinds:
        assert _of(bronze, kind.filename).height == len(kind.expected), kind.name
        kept, rejected = _of(silver, kind.filename), _of(quarantine, kind.filename)
        assert kept.height + rejected.height == len(kind.expected), kind.name  # conservation
        assert kept.height == sum(e is None for e in kind.expected), kind.name
        rules = [e for e in kind.expected if e is not None]
        got = rejected.get_column(RULE).to_list()
        assert len(got) == len(rules) and all(matches(a, e) for a, e in zip(got, rules, strict=True)), (
            kind.name
        )
    for name in real[TABLE]:  # the real orders all loaded
        assert _of(silver, name).height == _of(bronze, name).height > 0
    assert silver.height + quarantine.height == bronze.height

    bronze, silver, quarantine = (
        _rows(catalog, f"{ns}.lineitem") for ns in ("bronze", "silver", "quarantine")
    )
    assert silver.height + quarantine.height == bronze.height
    assert sorted(quarantine.select(SOURCE_FILE, ROW_NUMBER, RULE).iter_rows()) == sorted(
        (f"{zone.partition_dir('lineitem', day)}/{name}", 0, rule) for name, rule in LINEITEM_BAD.items()
    )
    assert silver.height == sum(_of(bronze, name).height for name in real["lineitem"])
