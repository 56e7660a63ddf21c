"""Hostile landing input: every landed record ends in silver or in quarantine with its reason.

The corpus (``tests/fixtures/hostile/corpus.py``) lands one orders file per kind in one batch;
``load_bronze`` and ``build_silver`` run once over it against a real SqlCatalog on SQLite, then
each kind is checked for exact conservation and its rule per row.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.schema import Schema

from lakehouse.catalog import ensure_tables
from lakehouse.errors import LandingError
from lakehouse.landing import LandedFile, LandingZone, ReadLimits
from lakehouse.pipeline import Lakehouse, RunInfo, build_silver, load_bronze
from lakehouse.readers import (
    UnreadableFileError,
    landed_columns,
    parse_landed,
    read_landed,
    read_landed_files,
)
from lakehouse.tables import (
    ERROR,
    ROW_NUMBER,
    RULE,
    SOURCE_FILE,
    TableDef,
    bronze_table,
    quarantine_table,
    silver_table,
)
from tests.declared import REGISTRY, TABLES
from tests.declared import TPCH as TPCH_SOURCE
from tests.fixtures.hostile.corpus import (
    COLUMNS,
    HUGE,
    IGNORED,
    TABLE,
    Kind,
    corpus,
    csv_bytes,
    jsonl_bytes,
    land,
    land_parents,
    matches,
    order,
    parquet_bytes,
)

DAY = date(1995, 3, 1)
KINDS = corpus()
LOADED = ("region", "nation", "customer", TABLE)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module", autouse=True)
def _no_prefect_api_logging() -> Iterator[None]:
    """Detach Prefect's API log handler from ``lakehouse`` while these tests run (no flow run here).

    Once another test configured Prefect logging, it warns for every warning logged outside a flow
    run, and warnings are errors in this suite.
    """
    logger = logging.getLogger("lakehouse")
    prefect = [h for h in logger.handlers if type(h).__module__.startswith("prefect.")]
    for handler in prefect:
        logger.removeHandler(handler)
    yield
    for handler in prefect:
        logger.addHandler(handler)


@dataclass(frozen=True)
class Run:
    """The corpus after bronze and silver: the three tables' rows of orders, and the log."""

    bronze: pl.DataFrame
    silver: pl.DataFrame
    quarantine: pl.DataFrame
    log: list[str]


def _rows(catalog: Catalog, table_id: str) -> pl.DataFrame:
    frame = pl.from_arrow(catalog.load_table(table_id).scan().to_arrow())
    assert isinstance(frame, pl.DataFrame)
    return frame


def _catalog(root: Path, tables: list[TableDef]) -> Catalog:
    catalog = SqlCatalog("t", uri=f"sqlite:///{root}/c.db", warehouse=f"file://{root}/wh")
    ensure_tables(catalog, tables)
    return catalog


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    root = tmp_path_factory.mktemp("hostile")
    zone = LandingZone(str(root / "landing"), TPCH_SOURCE)
    land_parents(zone, DAY)
    land(zone, DAY, KINDS, root / "outside")
    tables = [make(TABLES[n]) for n in LOADED for make in (bronze_table, quarantine_table, silver_table)]
    catalog = _catalog(root, tables)
    lh = Lakehouse(catalog, REGISTRY, zone.uri, RunInfo("hostile-run", "test", "dev"))
    handler = _Records()
    logger = logging.getLogger("lakehouse")
    logger.addHandler(handler)
    try:
        for name in LOADED:
            load_bronze(lh, f"bronze.{name}", [DAY], None)
            build_silver(lh, f"silver.{name}", [DAY], None)
    finally:
        logger.removeHandler(handler)
    yield Run(
        _rows(catalog, f"bronze.{TABLE}"),
        _rows(catalog, f"silver.{TABLE}"),
        _rows(catalog, f"quarantine.{TABLE}"),
        [r.getMessage() for r in handler.records],
    )


def _of(frame: pl.DataFrame, kind: Kind) -> pl.DataFrame:
    return frame.filter(pl.col(SOURCE_FILE).str.ends_with(f"/{kind.filename}")).sort(ROW_NUMBER)


def test_the_corpus_covers_twenty_kinds_and_every_outcome() -> None:
    assert len(KINDS) >= 20
    assert len({k.filename for k in KINDS}) == len(KINDS)
    outcomes = {(e or "loaded").split(":")[0] for k in KINDS for e in k.expected}
    assert {"loaded", "unreadable_file", "malformed_row", "oversized_field", "null_key"} <= outcomes


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_every_landed_record_is_loaded_or_quarantined_with_its_reason(run: Run, kind: Kind) -> None:
    bronze, silver, quarantine = _of(run.bronze, kind), _of(run.silver, kind), _of(run.quarantine, kind)
    rejected_whole = len(kind.expected) == 1 and (kind.expected[0] or "").startswith("unreadable_file:")
    # bronze holds exactly one record per landed row, or one for a file rejected as a whole
    assert bronze.height == len(kind.expected)
    numbers = [0] if rejected_whole else list(range(1, len(kind.expected) + 1))
    assert bronze.get_column(ROW_NUMBER).to_list() == numbers
    # exact conservation: landed = silver + quarantine
    assert silver.height + quarantine.height == len(kind.expected)
    assert silver.height == sum(e is None for e in kind.expected)
    # each quarantined record has the expected rule, at its row
    expected = [(n, e) for n, e in zip(numbers, kind.expected, strict=True) if e is not None]
    got = list(
        zip(quarantine.get_column(ROW_NUMBER).to_list(), quarantine.get_column(RULE).to_list(), strict=True)
    )
    assert [n for n, _ in got] == [n for n, _ in expected]
    for (_, actual), (_, rule) in zip(got, expected, strict=True):
        assert matches(actual, rule), (actual, rule)
    if rejected_whole:  # the file is named, its values are all null, and the warning names it
        assert quarantine.select(COLUMNS).null_count().row(0) == (1,) * len(COLUMNS)
        reason = quarantine.get_column(RULE).item().removeprefix("unreadable_file: ")
        assert any(kind.filename in m and reason in m for m in run.log)


def test_values_survive_quoting_json_text_and_parquet_types(run: Run) -> None:
    by_kind = {k.name: k for k in KINDS}
    quoted = _of(run.silver, by_kind["quoted_newlines"]).get_column("o_comment").to_list()
    assert quoted[0] == 'line one\nline two, with "quotes"\r\nand a comma, too'
    mixed = _of(run.bronze, by_kind["jsonl_mixed_types"])
    assert mixed.get_column("o_totalprice").to_list()[0] == "1234.50"  # the JSON text, not a float
    assert mixed.get_column("o_comment").to_list()[2] == "true"
    typed = _of(run.bronze, by_kind["parquet_other_types"]).row(0, named=True)
    assert (typed["o_orderkey"], typed["o_totalprice"], typed["o_orderdate"], typed["o_shippriority"]) == (
        "26001",
        "1234.50",
        "1995-03-01",
        "0",
    )
    assert (
        _of(run.silver, by_kind["reordered_columns"]).get_column("o_clerk").to_list()
        == ["Clerk#000000001"] * 2
    )


def test_a_huge_value_is_quarantined_truncated_and_the_rest_of_its_file_loads(run: Run) -> None:
    kind = next(k for k in KINDS if k.name == "huge_string")
    assert len(kind.data) > HUGE
    comment = _of(run.quarantine, kind).get_column("o_comment").item()
    assert comment == "x" * ReadLimits().max_field_chars
    assert _of(run.silver, kind).height == 1


def test_hidden_and_marker_files_are_skipped_with_a_warning(run: Run) -> None:
    for name in IGNORED:
        assert not run.bronze.get_column(SOURCE_FILE).str.ends_with(f"/{name}").any()
        assert any(f"/{name} is not read: names starting with '.' or '_' are not data" in m for m in run.log)


def test_good_rows_of_the_batch_all_reach_silver(run: Run) -> None:
    # nothing else was lost: silver holds every row the corpus expects loaded, and no other
    assert run.silver.height == sum(e is None for k in KINDS for e in k.expected)
    assert run.bronze.get_column(ERROR).is_null().sum() == run.bronze.height - sum(
        e is not None and e.split(":")[0] in ("unreadable_file", "malformed_row", "oversized_field")
        for k in KINDS
        for e in k.expected
    )


# -- the landing zone layout ------------------------------------------------------------------------


def test_unknown_tables_and_path_like_partitions_are_never_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    zone = LandingZone(str(tmp_path / "landing"), TPCH_SOURCE)
    zone.write(TABLE, DAY, "orders.csv", csv_bytes([order(1)]))
    source = tmp_path / "landing" / "tpch"
    odd = [
        source / "unknown" / "dt=1995-03-01",  # no such table
        source / TABLE / "dt=.." / "x",  # a partition name that looks like a path
        source / TABLE / "dt=1995-13-45",  # not a calendar day
        source / TABLE / "dt=1995-3-1",  # not zero-padded
        source / TABLE / "dt=1995-03-01" / "nested",  # a directory inside a partition
    ]
    for directory in odd:
        directory.mkdir(parents=True)
        (directory / "orders.csv").write_bytes(csv_bytes([order(2)]))
    (source / TABLE / "stray.csv").write_bytes(csv_bytes([order(3)]))  # outside any partition
    with caplog.at_level(logging.WARNING, logger="lakehouse.landing"):
        assert zone.unknown_tables() == ["unknown"]
        assert zone.batches() == [DAY]
        assert zone.batches(TABLE) == [DAY]
        files = zone.files(TABLE, [DAY])
    assert [Path(f.path).name for f in files] == ["orders.csv"]
    messages = [r.getMessage() for r in caplog.records]
    for what in (
        "tpch/unknown is not read: no such table",
        "dt=.. is not read",
        "dt=1995-13-45 is not read: 1995-13-45 is not a calendar date",
        "dt=1995-3-1 is not read",
        "nested is not read",
        "stray.csv is not read",
    ):
        assert sum(what in m for m in messages) == 1, what  # once per zone, however often listed
    # chunk planning counts the bytes of the files read, and only those
    zone.write("customer", date(1995, 3, 2), "changes.jsonl", b"{}\n")
    assert zone.landed_bytes() == {DAY: files[0].size, date(1995, 3, 2): 3}


def test_a_partition_linked_outside_the_zone_is_rejected_file_by_file(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "orders.csv").write_bytes(csv_bytes([order(1)]))
    zone = LandingZone(str(tmp_path / "landing"), TPCH_SOURCE)
    (tmp_path / "landing" / "tpch" / TABLE).mkdir(parents=True)
    (tmp_path / "landing" / "tpch" / TABLE / f"dt={DAY}").symlink_to(outside)
    (landed,) = zone.files(TABLE, [DAY])
    frame = read_landed(zone, landed)
    assert frame.get_column(ERROR).to_list() == ["unreadable_file: a link resolving outside the landing zone"]


def _landed(zone: LandingZone, name: str, data: bytes) -> LandedFile:
    zone.write(TABLE, DAY, name, data)
    (landed,) = (f for f in zone.files(TABLE, [DAY]) if f.path.endswith(f"/{name}"))
    return landed


def test_files_over_the_size_limit_are_rejected_unread(tmp_path: Path) -> None:
    zone = LandingZone(str(tmp_path), TPCH_SOURCE, limits=ReadLimits(max_file_bytes=100))
    landed = _landed(zone, "big.csv", csv_bytes([order(1), order(2)]))
    with pytest.raises(UnreadableFileError, match=r"big\.csv: file too large: \d+ bytes \(limit 100\)"):
        parse_landed(zone, landed)


def test_parquet_decompressing_beyond_the_limit_is_rejected(tmp_path: Path) -> None:
    rows = [order(1, o_comment="y" * 5000) for _ in range(20)]
    data = parquet_bytes(pa.table({c: [r[c] for r in rows] for c in COLUMNS}))
    zone = LandingZone(str(tmp_path), TPCH_SOURCE, limits=ReadLimits(max_file_bytes=len(data) + 1000))
    landed = _landed(zone, "bomb.parquet", data)
    with pytest.raises(UnreadableFileError, match=r"decompresses to \d+ bytes"):
        parse_landed(zone, landed)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_chunked_reading_numbers_rows_across_chunks(tmp_path: Path, suffix: str) -> None:
    rows = [order(n) for n in range(1, 8)]
    rows[4] = order(5, o_comment="z" * 50)
    data = {
        ".csv": csv_bytes(rows),
        ".jsonl": jsonl_bytes(rows),
        ".parquet": parquet_bytes(pa.table({c: [r[c] for r in rows] for c in COLUMNS})),
    }[suffix]
    zone = LandingZone(str(tmp_path), TPCH_SOURCE, limits=ReadLimits(max_field_chars=20, chunk_rows=3))
    frame = read_landed(zone, _landed(zone, f"chunked{suffix}", data))
    assert frame.columns == landed_columns(TABLES[TABLE])
    assert frame.get_column(ROW_NUMBER).to_list() == list(range(1, 8))
    assert frame.get_column("o_orderkey").to_list() == [str(n) for n in range(1, 8)]
    assert frame.get_column(ERROR).to_list() == [None] * 4 + ["oversized_field:o_comment"] + [None] * 2


def test_a_file_that_vanished_fails_the_step_instead_of_being_quarantined(tmp_path: Path) -> None:
    zone = LandingZone(str(tmp_path), TPCH_SOURCE)
    landed = _landed(zone, "gone.csv", csv_bytes([order(1)]))
    Path(landed.path).unlink()
    with pytest.raises(LandingError, match=r"gone\.csv: cannot be fetched") as info:
        read_landed(zone, landed)
    assert not isinstance(info.value, UnreadableFileError)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_a_file_without_read_permission_is_rejected(tmp_path: Path) -> None:
    zone = LandingZone(str(tmp_path), TPCH_SOURCE)
    landed = _landed(zone, "locked.csv", csv_bytes([order(1)]))
    Path(landed.path).chmod(0)
    assert read_landed(zone, landed).get_column(ERROR).item().startswith("unreadable_file: permission denied")


def test_read_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        ReadLimits(max_field_chars=0)


def test_a_bronze_table_from_before_error_gets_the_column(tmp_path: Path) -> None:
    current = bronze_table(TABLES["region"])
    old = TableDef(
        current.namespace,
        current.name,
        Schema(*(f for f in current.schema.fields if f.name != ERROR)),
        current.partition,
    )
    catalog = _catalog(tmp_path, [old])
    zone = LandingZone(str(tmp_path / "landing"), TPCH_SOURCE)
    zone.write("region", DAY, "region.csv", b"")  # an unreadable file: its reason must be kept
    load_bronze(
        Lakehouse(catalog, REGISTRY, zone.uri, RunInfo("r", "test", "dev")), "bronze.region", [DAY], None
    )
    rows = _rows(catalog, "bronze.region")
    assert rows.get_column(ERROR).to_list() == ["unreadable_file: empty file"]


# -- the two CSV paths ------------------------------------------------------------------------------

REGION = "r_regionkey,r_name,r_comment\n"
CSV_CASES = [
    REGION.encode() + b'1,"",x\n2,,"y"\n',  # quoted and unquoted empty fields
    b'r_regionkey,r_name,r_comment\r\n1,"a""b",  spaced  \r\n\r\n2,b,c\r\n',  # CRLF, escaped quote, blank
    b'\n\n r_regionkey , r_name,r_comment,extra,extra\n1,a,b,c,d\n   \n2,\xc3\xa9,"q,r",,\n\n',
    b'r_comment,r_name,r_regionkey\n"x",y,1',  # reordered, no final newline
    REGION.encode() + b'1,a,b\n2,"multi\nline",c\n',  # a quoted line break: exact reader only
    REGION.encode() + b"1,a\n2,b,c\n",  # ragged: exact reader only
    # no quotes and no CR: the field counts are checked by counting commas
    REGION.encode() + b"1,a,b\n2,b,c",  # no final newline
    REGION.encode() + b"1,a\n2,b,c,d\n",  # one short and one long record: as many commas as two good ones
    REGION.encode() + b"1,a,b\n\n2,b,c\n\n",  # blank lines
    REGION.encode() + b"1,a,b\n \t \n2,b,c\n",  # a whitespace line
    b"\nr_regionkey,r_name,r_comment\n1,a,b\n",  # a blank line before the header
    REGION.encode() + b"1,\xff,b\n",  # not UTF-8
    REGION.encode().rstrip(b"\n"),  # a header only
    *(k.data for k in KINDS if k.filename.endswith(".csv")),
]


@pytest.mark.parametrize("data", CSV_CASES, ids=range(len(CSV_CASES)))
def test_the_native_csv_path_reads_exactly_what_the_exact_reader_reads(data: bytes) -> None:
    from lakehouse import readers  # private functions: the two paths side by side

    spec = TABLES["region" if b"r_regionkey" in data[:60] else TABLE]
    try:
        body = readers._body(data, ".csv")
    except readers._Rejected:
        return  # rejected before either parser runs
    native, handled = readers._csv_native([body], spec)
    try:
        chunks = list(readers._csv_chunks(readers._decode(body), spec, ReadLimits()))
    except readers._Rejected:
        assert not handled  # what the exact reader rejects, the native path leaves to it
        return
    if handled:
        assert native.drop("_file").equals(pl.concat(chunks))


def test_files_read_together_read_as_each_alone(tmp_path: Path) -> None:
    """The CSV cases, the corpus' files and an unreadable one, read in one call: each file's rows as alone."""
    zone = LandingZone(str(tmp_path), TPCH_SOURCE)
    cases = [d for d in CSV_CASES if b"r_regionkey" in d[:60]]
    for number, data in enumerate([*cases, b"\x1f\x8b gzip", cases[0]]):
        zone.write("region", DAY, f"case-{number:02d}.csv", data)
    zone.write(
        "region", DAY, "case-99.jsonl", b'{"r_regionkey": "7", "r_name": "x", "r_comment": ""}\nnot json\n'
    )
    files = zone.files("region", [DAY])
    alone = pl.concat([read_landed(zone, f) for f in files])
    together = read_landed_files(zone, files)
    assert together.equals(alone)
    sources = together.get_column(SOURCE_FILE).unique(maintain_order=True).to_list()
    assert sources == [f.uri for f in files if f.uri in sources]  # in the files' order
    assert len(sources) == len(files) - 1  # all but the header-only file
    assert together.filter(pl.col(ERROR).is_null()).height > 10


def test_tpch_shaped_csv_takes_the_native_path() -> None:
    from lakehouse import readers

    good = next(k for k in KINDS if k.name == "good")
    assert readers._csv_native([good.data], TABLES[TABLE])[1] == {0}
    quoted = REGION + '0,AFRICA,"lar deposits. blithely final packages cajole, regular waters"\n'
    plain = f"{REGION}0,AFRICA,x\n1,AMERICA,\n"
    native, handled = readers._csv_native([quoted.encode(), None, plain.encode()], TABLES["region"])
    assert handled == {0, 2}
    assert native.rows() == [
        ("0", "AFRICA", "lar deposits. blithely final packages cajole, regular waters", 1, None, 0),
        ("0", "AFRICA", "x", 1, None, 2),
        ("1", "AMERICA", None, 2, None, 2),
    ]


def test_rows_with_bytes_that_are_not_utf8_are_malformed_not_the_file(tmp_path: Path) -> None:
    zone = LandingZone(str(tmp_path), TPCH_SOURCE)
    good, bad = order(1), order(2, o_comment="LATIN1")
    lines = jsonl_bytes([good, bad]).replace(b"LATIN1", b"caf\xe9")
    frame = read_landed(zone, _landed(zone, "latin1.jsonl", lines))
    assert frame.get_column(ERROR).to_list() == [None, "malformed_row: not UTF-8: invalid byte 0xe9"]
    assert frame.get_column("o_comment").to_list() == [good["o_comment"], "caf\ufffd"]
    header = csv_bytes([good]).replace(b"o_comment", b"o_comm\xe9nt", 1)
    (row,) = read_landed(zone, _landed(zone, "header.csv", header)).iter_rows(named=True)
    assert row[ERROR] == "unreadable_file: not UTF-8 in the header: invalid byte 0xe9"
