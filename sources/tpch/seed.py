"""Seed a landing zone with TPC-H: facts by order date, reference snapshots, customer changes, bad rows.

``tpchgen-cli`` writes the TPC-H tables as CSV into a work directory; this module lands them as
daily batches:

- orders land by ``o_orderdate`` and each lineitem with its order, one CSV per day whose rows are
  tpchgen's lines, byte for byte, in tpchgen's order;
- reference tables land as one full snapshot on the first day (region and nation as Parquet,
  every column a string; the others as tpchgen's CSV);
- customer change sets (JSON lines) land every ``CHANGE_EVERY_DAYS`` days after the first;
- on about ``DIRTY_DAY_SHARE`` of the days, orders, lineitem and the customer change set get
  ``ANOMALY_SHARE`` of their rows (at least one) as *extra* bad rows appended to the file.
  Real rows are never modified, so dropping exactly the anomalies leaves exact TPC-H data.

A manifest ``<landing>/<source>/_seed.json`` records what landed and where every anomaly is. All
choices come from RNGs seeded by the scale and the day, so a seed is reproducible byte for byte.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from lakehouse.errors import ConfigurationError, LakehouseError
from lakehouse.landing import LandingZone
from lakehouse.spec import SourceTable

log = logging.getLogger(__name__)

MANIFEST = "_seed.json"
TPCHGEN = "tpchgen-cli"
PARQUET_TABLES = frozenset({"region", "nation"})
CHANGES_FILE = "changes.jsonl"
SNAPSHOT_PART_ROWS = 1_000_000
"""Rows per landed file of a snapshot, as a source's export would split it: partsupp at SF10 is 8M
rows, 1.2 GB, which the readers reject whole (``ReadLimits.max_file_bytes``, 256 MiB)."""

CHANGE_EVERY_DAYS = 30
CHANGE_SHARE = 0.005  # of all customers, per change set
CHANGED_COLUMNS = ("c_address", "c_phone", "c_acctbal", "c_mktsegment")
SEGMENTS = ("AUTOMOBILE", "BUILDING", "FURNITURE", "HOUSEHOLD", "MACHINERY")
_ADDRESS_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,."

DIRTY_DAY_SHARE = 0.1  # share of days whose files get anomalies (a whole-range chunk stays under 5%)
ANOMALY_SHARE = 0.002  # of a file's rows on a dirty day (at least one row)
NULL_KEY = "null_key"
DUPLICATE_KEY = "duplicate_key"
RULES: dict[str, tuple[str, ...]] = {
    "orders": (
        NULL_KEY,
        DUPLICATE_KEY,
        "unparseable:o_totalprice",
        "unparseable:o_orderdate",
        "orphan_key:o_custkey",
    ),
    "lineitem": (
        NULL_KEY,
        DUPLICATE_KEY,
        "unparseable:l_extendedprice",
        "unparseable:l_shipdate",
        "out_of_range:l_quantity",
        "orphan_key:l_orderkey",
    ),
    "customer": (NULL_KEY, DUPLICATE_KEY, "unparseable:c_acctbal"),
}
BAD_NUMBERS = ("12,5x", "1.2.3", "n/a")
BAD_DATES = ("1995-13-45", "1996-02-30", "31/12/1995")
# The column given a fresh key (beyond TPC-H's keys) in a bad row that is neither a null key nor a
# duplicate: lineitem keeps a real l_orderkey and gets a line number past TPC-H's 1..7.
_FRESH_KEY = {"orders": "o_orderkey", "lineitem": "l_linenumber", "customer": "c_custkey"}
# Fresh values of these columns are drawn from one counter per key space, so a bad order's key is
# never an orphan lineitem's order key, and an orphan o_custkey is no bad customer row's key.
_KEY_SPACE = {
    "o_orderkey": "o_orderkey",
    "l_orderkey": "o_orderkey",
    "c_custkey": "c_custkey",
    "o_custkey": "c_custkey",
    "l_linenumber": "l_linenumber",
}
_MAX_LINENUMBER = 7

_DATE = "_date"
_LINE = "_line"
_UNIT_SEPARATOR = "\x1f"  # never in TPC-H text: reading with it as delimiter yields whole lines

_Row = dict[str, str | None]


@dataclass(frozen=True)
class Anomaly:
    """A bad row appended to a landed file, and the rule the pipeline rejects it by."""

    table: str
    batch: date
    file: str
    row: int  # 1-based data row within the file (the header is not counted)
    rule: str


@dataclass(frozen=True)
class SeedReport:
    """What a seed landed: its parameters, the rows per table and batch, and every anomaly."""

    scale: float
    start: date
    days: int
    with_anomalies: bool
    with_changes: bool
    rows: Mapping[str, Mapping[date, int]]  # landed rows (anomalies included) per table and batch
    anomalies: tuple[Anomaly, ...]

    @property
    def end(self) -> date:
        """The first day after the seeded range."""
        return self.start + timedelta(days=self.days)

    def to_json(self) -> bytes:
        """The manifest document (UTF-8 JSON)."""
        doc = {
            "source": "tpch",
            "scale": self.scale,
            "start": self.start.isoformat(),
            "days": self.days,
            "with_anomalies": self.with_anomalies,
            "with_changes": self.with_changes,
            "rows": {t: {d.isoformat(): n for d, n in by_day.items()} for t, by_day in self.rows.items()},
            "anomalies": [
                {"table": a.table, "batch": a.batch.isoformat(), "file": a.file, "row": a.row, "rule": a.rule}
                for a in self.anomalies
            ],
        }
        return (json.dumps(doc, indent=1) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> SeedReport:
        """Parse a manifest written by :meth:`to_json`.

        Raises:
            ValueError: if ``data`` is not a seed manifest.

        """
        try:
            doc = json.loads(data)
            return cls(
                scale=float(doc["scale"]),
                start=date.fromisoformat(doc["start"]),
                days=int(doc["days"]),
                with_anomalies=bool(doc["with_anomalies"]),
                with_changes=bool(doc["with_changes"]),
                rows={
                    t: {date.fromisoformat(d): int(n) for d, n in by_day.items()}
                    for t, by_day in doc["rows"].items()
                },
                anomalies=tuple(
                    Anomaly(a["table"], date.fromisoformat(a["batch"]), a["file"], int(a["row"]), a["rule"])
                    for a in doc["anomalies"]
                ),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a seed manifest: {exc!r}") from exc


def read_report(zone: LandingZone) -> SeedReport:
    """The report of the last seed of ``zone``, read from its manifest.

    Raises:
        LandingError: if the zone has no manifest.
        ValueError: if the manifest cannot be parsed.

    """
    return SeedReport.from_json(zone.read_meta(MANIFEST))


def seed(
    zone: LandingZone,
    *,
    scale: float,
    start: date | None = None,
    days: int | None = None,
    anomalies: bool = True,
    changes: bool = True,
    workdir: Path,
) -> SeedReport:
    """Generate TPC-H at ``scale`` and land it in ``zone`` as daily batches; return what landed.

    The range is ``[start, start + days)``; ``start`` defaults to TPC-H's first order date and
    ``days`` to the rest of TPC-H's order dates. Only orders (and their lineitems) dated in the range
    land; the reference snapshot lands on ``start``. tpchgen's CSV files are written into
    ``workdir`` (created if missing) and left there. Files already in the zone under the same names
    are overwritten; the manifest is written last.

    Raises:
        ValueError: if ``scale`` or ``days`` is not positive, or no TPC-H order falls in the range.
        ConfigurationError: if ``tpchgen-cli`` is not installed.
        LakehouseError: if ``tpchgen-cli`` fails or writes something unexpected.

    """
    if not 0 < scale < math.inf:
        raise ValueError(f"scale must be a positive number, got {scale}")
    scale = float(scale)  # 1 and 1.0 seed the same RNGs
    if days is not None and days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    began = time.perf_counter()
    paths = _generate(scale, workdir, zone.spec.tables)

    orders = (
        pl.scan_csv(paths["orders"], infer_schema=False)
        .select("o_orderkey", pl.col("o_orderdate").str.to_date().alias(_DATE))
        .collect()
    )
    first, last = orders.get_column(_DATE).min(), orders.get_column(_DATE).max()
    assert isinstance(first, date) and isinstance(last, date)
    begin = start or first
    end = begin + timedelta(days=days) if days is not None else last + timedelta(days=1)
    in_range = pl.col(_DATE).is_between(begin, end, closed="left")
    if orders.filter(in_range).is_empty():
        raise ValueError(f"no TPC-H order date in [{begin}, {end}) (TPC-H orders span {first}..{last})")

    customers = pl.read_csv(paths["customer"], infer_schema=False)
    keys = _FreshKeys(
        {
            "o_orderkey": _max_key(orders, "o_orderkey"),
            "c_custkey": _max_key(customers, "c_custkey"),
            "l_linenumber": _MAX_LINENUMBER,
        }
    )
    run = _Run(zone, scale, anomalies, keys)
    for table, spec in zone.spec.tables.items():
        if spec.kind == "reference":
            run.land_snapshot(table, paths[table], begin)
    if changes:
        run.land_changes(customers.rows(named=True), begin, end)

    run.land_facts("orders", paths["orders"], orders.select(_DATE), in_range)
    order_dates = orders.lazy().rename({"o_orderkey": "l_orderkey"})
    item_dates = (
        pl.scan_csv(paths["lineitem"], infer_schema=False)
        .select("l_orderkey")
        .join(order_dates, on="l_orderkey", how="left", maintain_order="left")
        .select(_DATE)
        .collect()
    )
    run.land_facts("lineitem", paths["lineitem"], item_dates, in_range)

    report = SeedReport(
        scale=scale,
        start=begin,
        days=(end - begin).days,
        with_anomalies=anomalies,
        with_changes=changes,
        rows={t: dict(sorted(run.rows[t].items())) for t in zone.spec.tables if t in run.rows},
        anomalies=tuple(run.bad),
    )
    uri = zone.write_meta(MANIFEST, report.to_json())
    log.info(
        "seeded TPC-H SF%s, %s..%s, %d anomalies in %.1f s; manifest %s",
        scale,
        begin,
        end - timedelta(days=1),
        len(run.bad),
        time.perf_counter() - began,
        uri,
    )
    return report


def _tpchgen() -> str:
    """The tpchgen-cli executable: the one next to this Python first, else the one on PATH.

    Raises:
        ConfigurationError: if there is none.

    """
    venv_bin = str(Path(sys.executable).parent)
    found = shutil.which(TPCHGEN, path=os.pathsep.join([venv_bin, os.environ.get("PATH", "")]))
    if found is None:
        raise ConfigurationError(
            f"{TPCHGEN} not found in {venv_bin} nor on PATH: install the project (pip install -e .)"
        )
    return found


def _generate(scale: float, workdir: Path, tables: Mapping[str, SourceTable]) -> dict[str, Path]:
    """Run tpchgen-cli into ``workdir``; the path of each table's CSV, its header checked."""
    workdir.mkdir(parents=True, exist_ok=True)
    command = [
        _tpchgen(),
        "csv",
        f"--scale-factor={scale}",
        f"--output-dir={workdir}",
        "--overwrite",
        "--quiet",
    ]
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise LakehouseError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    log.info("tpchgen-cli SF%s wrote %s in %.1f s", scale, workdir, time.perf_counter() - began)
    paths = {}
    for table, spec in tables.items():
        path = workdir / f"{table}.csv"
        expected = ",".join(spec.column_names)
        with path.open(encoding="utf-8") as f:
            header = f.readline().rstrip("\n")
        if header != expected:
            raise LakehouseError(f"{path}: unexpected header {header!r}, expected {expected!r}")
        paths[table] = path
    return paths


def _max_key(frame: pl.DataFrame, column: str) -> int:
    top = frame.get_column(column).cast(pl.Int64).max()
    assert isinstance(top, int)
    return top


def _rng(scale: float, *parts: object) -> random.Random:
    """An RNG determined by the scale and ``parts`` (string seeds are hashed stably by ``random``)."""
    return random.Random(":".join(map(str, (scale, *parts))))


def _is_dirty_day(scale: float, day: date) -> bool:
    return _rng(scale, "dirty", day).random() < DIRTY_DAY_SHARE


def _anomaly_count(rows: int) -> int:
    return max(1, round(rows * ANOMALY_SHARE))


class _FreshKeys:
    """Hands out keys beyond TPC-H's, one counter per key space."""

    def __init__(self, maxima: dict[str, int]) -> None:
        self._last = dict(maxima)

    def take(self, column: str) -> str:
        space = _KEY_SPACE[column]
        self._last[space] += 1
        return str(self._last[space])


def _bad_row(
    spec: SourceTable, rule: str, row: Mapping[str, str], rng: random.Random, keys: _FreshKeys
) -> _Row:
    """A copy of ``row`` broken by ``rule`` (and nothing else)."""
    bad: _Row = dict(row)
    if rule == DUPLICATE_KEY:
        return bad
    if rule == NULL_KEY:
        bad[spec.key[0]] = None
        return bad
    bad[_FRESH_KEY[spec.name]] = keys.take(_FRESH_KEY[spec.name])
    kind, _, column = rule.partition(":")
    if kind == "unparseable":
        is_date = spec.column(column).kind == "date"
        bad[column] = rng.choice(BAD_DATES if is_date else BAD_NUMBERS)
    elif kind == "out_of_range":
        bad[column] = f"-{row[column]}"
    else:
        bad[column] = keys.take(column)
    return bad


def _csv_line(row: _Row) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(row.values())
    return out.getvalue()


def _changed(column: str, row: Mapping[str, str], rng: random.Random) -> str:
    """A valid new value of ``column`` for customer ``row``, different from the current one."""
    while True:
        if column == "c_address":
            value = "".join(rng.choice(_ADDRESS_CHARS) for _ in range(rng.randint(10, 40)))
        elif column == "c_phone":
            country = int(row["c_nationkey"]) + 10
            value = f"{country}-{rng.randint(100, 999)}-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}"
        elif column == "c_acctbal":
            cents = rng.randint(-99_999, 999_999)
            value = f"{'-' if cents < 0 else ''}{abs(cents) // 100}.{abs(cents) % 100:02d}"
        else:
            value = rng.choice(SEGMENTS)
        if value != row[column]:
            return value


@dataclass
class _Run:
    """One seed in progress: where it lands, what it decided, and what has landed so far."""

    zone: LandingZone
    scale: float
    anomalies: bool
    keys: _FreshKeys
    rows: dict[str, dict[date, int]] = field(default_factory=dict)
    bad: list[Anomaly] = field(default_factory=list)

    def _landed(self, table: str, day: date, rows: int) -> None:
        self.rows.setdefault(table, {})[day] = rows

    def _note(self, table: str, day: date, file: str, first_row: int, rules: Sequence[str]) -> None:
        self.bad.extend(Anomaly(table, day, file, first_row + i, rule) for i, rule in enumerate(rules))

    def _rules(self, table: str, day: date, rows: int, rng: random.Random) -> list[str]:
        if not self.anomalies or rows == 0 or not _is_dirty_day(self.scale, day):
            return []
        return [rng.choice(RULES[table]) for _ in range(_anomaly_count(rows))]

    def land_snapshot(self, table: str, path: Path, day: date) -> None:
        """Land tpchgen's ``table`` as one snapshot on ``day``: Parquet of strings or the CSV as is.

        A CSV of more than :data:`SNAPSHOT_PART_ROWS` rows lands in parts, ``<table>-00000.csv``, ...
        """
        frame = pl.scan_csv(path, infer_schema=False)
        rows: int = frame.select(pl.len()).collect().item()
        if table in PARQUET_TABLES:
            buffer = io.BytesIO()
            frame.collect().write_parquet(buffer)
            self.zone.write(table, day, f"{table}.parquet", buffer.getvalue())
        elif rows <= SNAPSHOT_PART_ROWS:
            self.zone.write(table, day, f"{table}.csv", path.read_bytes())
        else:
            whole = frame.collect()
            for number, offset in enumerate(range(0, rows, SNAPSHOT_PART_ROWS)):
                part = whole.slice(offset, SNAPSHOT_PART_ROWS).write_csv()
                self.zone.write(table, day, f"{table}-{number:05d}.csv", part.encode())
        self._landed(table, day, rows)
        log.info("landed %s: %d rows on %s", table, rows, day)

    def land_changes(self, customers: list[dict[str, Any]], begin: date, end: date) -> None:
        """Land a customer change set every ``CHANGE_EVERY_DAYS`` days after ``begin``, before ``end``.

        Each set holds ``CHANGE_SHARE`` of the customers (at least one), each row the customer's
        current state with one to four of ``CHANGED_COLUMNS`` changed to new valid values.
        """
        size = max(1, round(len(customers) * CHANGE_SHARE))
        current: dict[int, dict[str, str]] = {}
        day, sets = begin + timedelta(days=CHANGE_EVERY_DAYS), 0
        while day < end:
            rng = _rng(self.scale, "changes", day)
            changed = []
            for i in sorted(rng.sample(range(len(customers)), size)):
                before = current.get(i, customers[i])
                after = dict(before)
                for column in rng.sample(CHANGED_COLUMNS, rng.randint(1, len(CHANGED_COLUMNS))):
                    after[column] = _changed(column, before, rng)
                current[i] = after
                changed.append(after)
            rng = _rng(self.scale, "customer", day)
            rules = self._rules("customer", day, len(changed), rng)
            bad = [
                _bad_row(self.zone.spec.tables["customer"], r, rng.choice(changed), rng, self.keys)
                for r in rules
            ]
            data = "".join(json.dumps(row) + "\n" for row in [*changed, *bad])
            self.zone.write("customer", day, CHANGES_FILE, data.encode())
            self._landed("customer", day, len(changed) + len(bad))
            self._note("customer", day, CHANGES_FILE, len(changed) + 1, rules)
            day, sets = day + timedelta(days=CHANGE_EVERY_DAYS), sets + 1
        log.info("landed customer changes: %d sets of %d rows", sets, size)

    def land_facts(self, table: str, path: Path, dates: pl.DataFrame, in_range: pl.Expr) -> None:
        """Land the lines of tpchgen's ``table`` CSV in range, one file per date, in file order.

        ``dates`` yields the batch date (column ``_date``) of each data row of ``path``, in order.
        Each landed file holds the header and the rows' original lines, then any anomalies.

        Raises:
            LakehouseError: if a row has no batch date or spans several lines.

        """
        # Collected on its own: in one lazy plan with the scan that made ``dates``, Polars 2.1 merges
        # the two scans of ``path`` although their options differ.
        lines = pl.scan_csv(
            path, separator=_UNIT_SEPARATOR, quote_char=None, new_columns=[_LINE], infer_schema=False
        ).collect()
        if lines.height != dates.height:
            raise LakehouseError(f"{path}: {lines.height} lines for {dates.height} rows: a row spans lines")
        if dates.get_column(_DATE).null_count():
            raise LakehouseError(f"{path}: a row has no batch date (its order is missing)")
        frame = pl.concat([dates, lines], how="horizontal").filter(in_range).sort(_DATE, maintain_order=True)
        counts = frame.group_by(_DATE, maintain_order=True).len()
        columns = self.zone.spec.tables[table].column_names
        header = ",".join(columns)
        name = f"{table}.csv"
        offset, before = 0, len(self.bad)
        all_lines = frame.get_column(_LINE)
        for day, count in counts.iter_rows():
            part = all_lines.slice(offset, count)
            offset += count
            rng = _rng(self.scale, table, day)
            rules = self._rules(table, day, count, rng)
            extra = []
            for rule in rules:
                template = part[rng.randrange(count)]
                if rule == DUPLICATE_KEY:
                    extra.append(template)  # the very same line
                else:
                    row = dict(zip(columns, next(csv.reader([template])), strict=True))
                    extra.append(_csv_line(_bad_row(self.zone.spec.tables[table], rule, row, rng, self.keys)))
            data = "\n".join([header, part.str.join("\n").item(), *extra]) + "\n"
            self.zone.write(table, day, name, data.encode())
            self._landed(table, day, count + len(extra))
            self._note(table, day, name, count + 1, rules)
        log.info(
            "landed %s: %d rows in %d batches, %d anomalies",
            table,
            offset,
            counts.height,
            len(self.bad) - before,
        )
