"""The TPC-H seeder, against the real tpchgen-cli at SF0.01 (and SF0.001 for the CLI)."""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from flows.seed import main
from lakehouse.errors import ConfigurationError
from lakehouse.landing import LandingZone
from tests.declared import TABLES, TPCH_SEED, read_report, seed
from tests.declared import TPCH as TPCH_SOURCE

CHANGE_EVERY_DAYS, CHANGE_SHARE, CHANGED_COLUMNS = (
    TPCH_SEED.CHANGE_EVERY_DAYS,
    TPCH_SEED.CHANGE_SHARE,
    TPCH_SEED.CHANGED_COLUMNS,
)
MANIFEST, RULES, SEGMENTS, SeedReport = (
    TPCH_SEED.MANIFEST,
    TPCH_SEED.RULES,
    TPCH_SEED.SEGMENTS,
    TPCH_SEED.SeedReport,
)

SCALE = 0.01
START = date(1995, 3, 1)
DAYS = 45
META = ["_file", "_dt", "_row"]


@dataclass(frozen=True)
class Seeded:
    root: Path  # the landing zone
    work: Path  # tpchgen's CSV files
    report: SeedReport
    cache: dict[tuple[str, str], pl.DataFrame] = field(default_factory=dict, compare=False, repr=False)

    def tpch(self, table: str) -> pl.DataFrame:
        return pl.read_csv(self.work / f"{table}.csv", infer_schema=False)

    def landed(self, table: str, file: str) -> pl.DataFrame:
        """Every landed ``file`` of ``table``, as strings, with its file, batch date and row number."""
        if (table, file) not in self.cache:
            self.cache[table, file] = self._read(table, file)
        return self.cache[table, file]

    def _read(self, table: str, file: str) -> pl.DataFrame:
        pattern = str(self.root / "tpch" / table / "dt=*" / file)
        if file.endswith(".csv"):
            frame = pl.scan_csv(pattern, infer_schema=False, include_file_paths="_file")
        else:
            schema = dict.fromkeys(TABLES[table].column_names, pl.String)
            frame = pl.scan_ndjson(pattern, schema=schema, include_file_paths="_file")
        return frame.with_columns(
            pl.col("_file").str.extract(r"dt=([0-9-]{10})").str.to_date().alias("_dt"),
            pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("_file").alias("_row"),
        ).collect()

    def anomalies(self, table: str) -> pl.DataFrame:
        rows = [(a.batch, a.row, a.rule) for a in self.report.anomalies if a.table == table]
        return pl.DataFrame(rows, schema={"_dt": pl.Date, "_row": pl.Int64, "_rule": pl.String}, orient="row")

    def without_anomalies(self, table: str, file: str) -> pl.DataFrame:
        return self.landed(table, file).join(self.anomalies(table), on=["_dt", "_row"], how="anti")


def _seed(root: Path, **options: object) -> Seeded:
    zone = LandingZone(str(root / "landing"), TPCH_SOURCE)
    report = seed(zone, scale=SCALE, workdir=root / "work", **options)  # type: ignore[arg-type]
    return Seeded(root / "landing", root / "work", report)


@pytest.fixture(scope="module")
def dirty(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    """The whole TPC-H range with anomalies and changes (the defaults)."""
    return _seed(tmp_path_factory.mktemp("dirty"))


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    """The whole TPC-H range, no anomalies, no changes."""
    return _seed(tmp_path_factory.mktemp("clean"), anomalies=False, changes=False)


@pytest.fixture(scope="module")
def ranged(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    """DAYS days from START, with anomalies and changes."""
    return _seed(tmp_path_factory.mktemp("ranged"), start=START, days=DAYS)


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    frame = frame.drop([c for c in META if c in frame.columns])
    return frame.sort(frame.columns)


def test_facts_land_by_order_date_and_lineitem_with_its_order(clean: Seeded) -> None:
    orders = clean.landed("orders", "orders.csv")
    assert (orders["o_orderdate"].str.to_date() == orders["_dt"]).all()
    items = clean.landed("lineitem", "lineitem.csv").join(
        clean.tpch("orders").select(pl.col("o_orderkey").alias("l_orderkey"), "o_orderdate"),
        on="l_orderkey",
        how="left",
    )
    assert items["o_orderdate"].null_count() == 0
    assert (items["o_orderdate"].str.to_date() == items["_dt"]).all()
    assert orders["_dt"].n_unique() > 2000  # every TPC-H order date is a batch


def test_clean_seed_lands_tpch_exactly(clean: Seeded) -> None:
    for table in ("orders", "lineitem"):
        assert_frame_equal(_sorted(clean.landed(table, f"{table}.csv")), _sorted(clean.tpch(table)))
    start = clean.report.start
    zone = LandingZone(str(clean.root), TPCH_SOURCE)
    for table in ("region", "nation", "part", "supplier", "partsupp", "customer"):
        files = zone.files(table, zone.batches(table))
        assert [(f.batch, Path(f.path).name) for f in files] == [
            (start, f"{table}.parquet" if table in ("region", "nation") else f"{table}.csv")
        ]
        if table in ("region", "nation"):
            parquet = pl.read_parquet(files[0].path)
            assert all(t == pl.String for t in parquet.dtypes)
            assert_frame_equal(parquet, clean.tpch(table))
        else:  # tpchgen's file as is
            assert Path(files[0].path).read_bytes() == (clean.work / f"{table}.csv").read_bytes()
    assert clean.report.anomalies == ()
    assert start == date(1992, 1, 1)
    assert clean.report.end == date(1998, 8, 3)
    for table, by_day in clean.report.rows.items():
        assert sum(by_day.values()) == clean.tpch(table).height, table


FACT_FILES = (("orders", "orders.csv"), ("lineitem", "lineitem.csv"))
BAD_ROW_FILES = (*FACT_FILES, ("customer", "changes.jsonl"))


def _parses(table: str, column: str, value: str) -> bool:
    """Whether ``value`` parses as the silver type of ``table.column`` (a date or a decimal here)."""
    type_ = next(c.kind for c in TABLES[table].columns if c.name == column)
    series = pl.Series([value])
    parsed = (
        series.str.to_date("%Y-%m-%d", strict=False)
        if type_ == "date"
        else series.cast(pl.Decimal(15, 2), strict=False)
    )
    return parsed.null_count() == 0


def test_every_manifest_anomaly_is_a_row_broken_by_its_rule_only(dirty: Seeded) -> None:
    customers = set(dirty.tpch("customer")["c_custkey"])
    orderkeys = set(dirty.tpch("orders")["o_orderkey"])
    items = set(dirty.tpch("lineitem").select("l_orderkey", "l_linenumber").iter_rows())
    landed_orderkeys = set(dirty.landed("orders", "orders.csv")["o_orderkey"].drop_nulls())
    is_fresh = {  # the row's key is beyond TPC-H's
        "orders": lambda r: r["o_orderkey"] not in orderkeys,
        "lineitem": lambda r: (r["l_orderkey"], r["l_linenumber"]) not in items,
        "customer": lambda r: r["c_custkey"] not in customers,
    }
    refs_ok = {  # the row's foreign key points at a real row
        "orders": lambda r: r["o_custkey"] in customers,
        "lineitem": lambda r: r["l_orderkey"] in orderkeys,
        "customer": lambda r: True,
    }
    bad_orderkeys = set()
    for table, file in BAD_ROW_FILES:
        spec = TABLES[table]
        files: dict[date, list[dict[str, str | None]]] = defaultdict(list)  # rows in file order
        for r in dirty.landed(table, file).sort("_dt", "_row").iter_rows(named=True):
            files[r.pop("_dt")].append({c: v for c, v in r.items() if c not in META})
        anomalies = [a for a in dirty.report.anomalies if a.table == table]
        assert {a.rule for a in anomalies} == set(RULES[table]), table  # every kind occurs
        for a in anomalies:
            assert a.file == file
            row = files[a.batch][a.row - 1]
            kind, _, column = a.rule.partition(":")
            if kind == "null_key":
                assert row[spec.key[0]] is None, a
            elif kind == "duplicate_key":
                assert row in files[a.batch][: a.row - 1], a
            else:
                assert is_fresh[table](row), a
                if table == "orders":
                    bad_orderkeys.add(row["o_orderkey"])
                value = row[column]
                assert value is not None
                if kind == "orphan_key":
                    assert value not in (customers if column == "o_custkey" else orderkeys | landed_orderkeys)
                    continue
                assert refs_ok[table](row), a
                if kind == "unparseable":
                    assert not _parses(table, column, value), a
                else:
                    assert kind == "out_of_range" and float(value) < 0, a
    assert not bad_orderkeys & set(dirty.landed("lineitem", "lineitem.csv")["l_orderkey"].drop_nulls())


def test_anomalies_follow_the_real_rows_of_some_batches_and_dropping_them_gives_tpch(dirty: Seeded) -> None:
    for table, file in BAD_ROW_FILES:
        real = dirty.without_anomalies(table, file)
        last_real = dict(real.group_by("_dt").agg(pl.col("_row").max()).iter_rows())
        anomalies = [a for a in dirty.report.anomalies if a.table == table]
        assert all(a.row > last_real[a.batch] for a in anomalies), table
        assert 0 < len({a.batch for a in anomalies}) < len(last_real), table  # some batches, not all
        if (table, file) in FACT_FILES:
            assert_frame_equal(_sorted(real.drop("_row")), _sorted(dirty.tpch(table)))
    assert len(dirty.report.anomalies) < 0.05 * sum(len(dirty.tpch(t)) for t in ("orders", "lineitem"))


def test_customer_change_sets_hold_valid_changes(dirty: Seeded) -> None:
    tpch = {r["c_custkey"]: r for r in dirty.tpch("customer").iter_rows(named=True)}
    changes = dirty.without_anomalies("customer", "changes.jsonl").sort("_dt", "_row")
    start, end = dirty.report.start, dirty.report.end
    expected_days = [
        start + timedelta(days=n) for n in range(CHANGE_EVERY_DAYS, (end - start).days, CHANGE_EVERY_DAYS)
    ]
    assert sorted(changes["_dt"].unique()) == expected_days
    current = dict(tpch)
    times: dict[str, int] = defaultdict(int)
    for row in changes.drop(META).iter_rows(named=True):
        before = current[row["c_custkey"]]
        changed = {c for c in row if row[c] != before[c]}
        assert changed and changed <= set(CHANGED_COLUMNS), row
        assert row["c_mktsegment"] in SEGMENTS
        assert re.fullmatch(r"-?\d{1,4}\.\d{2}", row["c_acctbal"])
        assert -999.99 <= float(row["c_acctbal"]) <= 9999.99
        assert re.fullmatch(rf"{int(row['c_nationkey']) + 10}-\d{{3}}-\d{{3}}-\d{{4}}", row["c_phone"])
        assert 10 <= len(row["c_address"]) <= 40
        current[row["c_custkey"]] = row
        times[row["c_custkey"]] += 1
    assert max(times.values()) > 1  # a customer may change more than once
    per_set = changes.group_by("_dt").len()["len"]
    assert per_set.min() >= 1 and per_set.max() == round(len(tpch) * CHANGE_SHARE)


def test_start_and_days_restrict_the_range(ranged: Seeded) -> None:
    end = START + timedelta(days=DAYS)
    zone = LandingZone(str(ranged.root), TPCH_SOURCE)
    assert zone.batches()[0] == START and zone.batches()[-1] < end
    assert zone.batches("region") == [START] == zone.batches("partsupp")
    assert zone.batches("customer") == [START, START + timedelta(days=CHANGE_EVERY_DAYS)]
    orders = ranged.without_anomalies("orders", "orders.csv")
    tpch = ranged.tpch("orders").filter(
        pl.col("o_orderdate").str.to_date().is_between(START, end, closed="left")
    )
    assert_frame_equal(_sorted(orders.drop("_row")), _sorted(tpch))
    assert (ranged.report.start, ranged.report.days) == (START, DAYS)


def test_a_seed_is_deterministic_and_its_manifest_reads_back(ranged: Seeded, tmp_path: Path) -> None:
    again = _seed(tmp_path, start=START, days=DAYS)

    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    assert files(again.root) == files(ranged.root)
    assert again.report == ranged.report
    assert read_report(LandingZone(str(ranged.root), TPCH_SOURCE)) == ranged.report
    assert (ranged.root / "tpch" / MANIFEST).is_file()
    for table, by_day in ranged.report.rows.items():
        for day, rows in by_day.items():
            files_of_day = LandingZone(str(ranged.root), TPCH_SOURCE).files(table, [day])
            assert len(files_of_day) == 1
            if files_of_day[0].path.endswith(".csv"):
                assert pl.read_csv(files_of_day[0].path, infer_schema=False).height == rows


def test_a_large_snapshot_lands_in_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TPCH_SEED, "SNAPSHOT_PART_ROWS", 3000)  # partsupp at SF0.01: 8,000 rows
    seeded = _seed(tmp_path, start=START, days=2, anomalies=False, changes=False)
    zone = LandingZone(str(seeded.root), TPCH_SOURCE)
    parts = zone.files("partsupp", [START])
    assert [Path(f.path).name for f in parts] == [
        "partsupp-00000.csv",
        "partsupp-00001.csv",
        "partsupp-00002.csv",
    ]
    frames = [pl.read_csv(f.path, infer_schema=False) for f in parts]
    assert [f.height for f in frames] == [3000, 3000, 2000]
    assert_frame_equal(pl.concat(frames), seeded.tpch("partsupp"))  # in tpchgen's order
    assert seeded.report.rows["partsupp"] == {START: 8000}
    assert [Path(f.path).name for f in zone.files("supplier", [START])] == ["supplier.csv"]  # 100 rows


def test_bad_arguments_and_a_missing_tpchgen_are_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    zone = LandingZone(str(tmp_path / "landing"), TPCH_SOURCE)
    with pytest.raises(ValueError, match="days"):
        seed(zone, scale=SCALE, days=0, workdir=tmp_path)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigurationError, match="tpchgen-cli"):
        seed(zone, scale=SCALE, workdir=tmp_path)
    assert zone.is_empty()


def test_cli_seeds_the_configured_zone_and_refuses_a_seeded_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    landing = tmp_path / "landing"
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LAKEHOUSE_LANDING_URI", str(landing))
    monkeypatch.setenv("SODA_CORE_TELEMETRY_ENABLED", "false")
    args = ["--scale", "0.001", "--start", "1995-03-01", "--days", "10", "--no-changes"]
    assert main(args) == 0
    report = read_report(LandingZone(str(landing), TPCH_SOURCE))
    assert (report.scale, report.start, report.days, report.with_changes) == (0.001, START, 10, False)
    assert main(args) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["--scale", "0.001", "--start", "2001-01-01", "--force"]) == 1  # not refused: it ran
    assert "no TPC-H order date" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["--scale", "0"])
    assert exit_.value.code == 2
    assert not (tmp_path / "home").exists()  # seeding leaves no state besides the zone
