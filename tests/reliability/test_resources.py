"""Resource bounds: a full or read-only warehouse fails a step cleanly; memory does not grow with the batch.

The storage tests mount a small tmpfs as the warehouse (root only; skipped elsewhere with the
reason). The memory test runs steps in subprocesses and compares their peak RSS on a batch of two
landed files and of six (see :func:`test_python_memory_does_not_grow_with_the_batch_on_spark`).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import SqlCatalog

from lakehouse.catalog import ensure_tables
from lakehouse.errors import WarehouseError
from lakehouse.landing import LandingZone
from lakehouse.pipeline import Lakehouse, RunInfo, build_silver, load_bronze
from lakehouse.publish import AUDIT_BRANCH_PREFIX, remove_stale_branches
from lakehouse.tables import bronze_table, quarantine_table, silver_table
from tests.conftest import ROOT, SPARK_MASTER, TEST_CONF
from tests.declared import REGISTRY
from tests.declared import TABLES as SPECS
from tests.declared import TPCH as TPCH_SOURCE

D1, D2 = date(1995, 1, 1), date(1995, 1, 2)
TABLES = ["bronze.part", "silver.part", "quarantine.part"]


def part_csv(first_key: int, rows: int) -> bytes:
    """``rows`` valid TPC-H part rows with keys from ``first_key``, as landed CSV."""
    keys = pl.int_range(first_key, first_key + rows, eager=True).alias("p_partkey")
    frame = pl.select(
        keys,
        pl.format("part {} of a long enough descriptive name", keys).alias("p_name"),
        pl.lit("Manufacturer#1").alias("p_mfgr"),
        pl.lit("Brand#13").alias("p_brand"),
        pl.lit("PROMO BURNISHED COPPER").alias("p_type"),
        ((keys % 50) + 1).alias("p_size"),
        pl.lit("JUMBO PKG").alias("p_container"),
        pl.format("{}.99", (keys % 1000) + 900).alias("p_retailprice"),
        pl.format("comment {} ly final dependencies", keys).alias("p_comment"),
    )
    assert frame.columns == SPECS["part"].column_names
    return frame.write_csv().encode()


# ------------------------------------------------------------------------------- storage errors


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs mounted for the test (the warehouse), unmounted after."""
    mount = tmp_path / "warehouse"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small file system here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _remount(mount: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(mount)], check=True)


def _fill(mount: Path) -> Path:
    """Fill the file system until it refuses a byte more; returns the filler file."""
    filler = mount / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    return filler


def _heads(catalog: Catalog) -> dict[str, int | None]:
    return {t: catalog.load_table(t).metadata.current_snapshot_id for t in TABLES}


@pytest.fixture
def lakehouse_on(small_disk: Path, tmp_path: Path) -> Lakehouse:
    """Tables of ``part`` on the small disk (catalog database elsewhere), day 1 landed and promoted."""
    catalog = SqlCatalog(
        "disk", uri=f"sqlite:///{tmp_path}/catalog.db", warehouse=small_disk.resolve().as_uri()
    )
    ensure_tables(
        catalog,
        [bronze_table(SPECS["part"]), quarantine_table(SPECS["part"]), silver_table(SPECS["part"])],
    )
    zone = LandingZone(str(tmp_path / "landing"), TPCH_SOURCE)
    zone.write("part", D1, "part.csv", part_csv(1, 1000))
    zone.write("part", D2, "part.csv", part_csv(1001, 20_000))
    lh = Lakehouse(catalog, REGISTRY, zone.uri, RunInfo("disk-run", "test", "dev"))
    load_bronze(lh, "bronze.part", [D1], None)
    build_silver(lh, "silver.part", [D1], None)
    return lh


def _rows(lh: Lakehouse, table_id: str) -> int:
    return len(lh.table(table_id).scan().to_arrow())


@pytest.mark.parametrize("step", [load_bronze, build_silver])
def test_a_full_disk_fails_the_step_cleanly_and_a_rerun_converges(
    lakehouse_on: Lakehouse, small_disk: Path, step: object
) -> None:
    lh = lakehouse_on
    if step is build_silver:
        load_bronze(lh, "bronze.part", [D2], None)
    before = _heads(lh.catalog)
    filler = _fill(small_disk)
    with pytest.raises(
        WarehouseError, match=r"\.part: the warehouse refused a write: .*No space left on device"
    ):
        step(lh, "bronze.part" if step is load_bronze else "silver.part", [D2], None)  # type: ignore[operator]
    assert _heads(lh.catalog) == before  # main untouched
    filler.unlink()
    for table_id in TABLES:  # a branch the full disk kept from being removed goes with stale-branch removal
        remove_stale_branches(lh.table(table_id), older_than=timedelta(0))
        assert not [r for r in lh.table(table_id).metadata.refs if r.startswith(AUDIT_BRANCH_PREFIX)]
    load_bronze(lh, "bronze.part", [D2], None)
    build_silver(lh, "silver.part", [D2], None)
    assert _rows(lh, "bronze.part") == 21_000
    assert _rows(lh, "silver.part") == 21_000


def test_a_read_only_warehouse_fails_the_step_cleanly(lakehouse_on: Lakehouse, small_disk: Path) -> None:
    lh = lakehouse_on
    before = _heads(lh.catalog)
    _remount(small_disk, "ro")
    try:
        with pytest.raises(
            WarehouseError, match=r"bronze\.part: the warehouse refused a write: .*Read-only file system"
        ):
            load_bronze(lh, "bronze.part", [D2], None)
        assert _heads(lh.catalog) == before
    finally:
        _remount(small_disk, "rw")
    load_bronze(lh, "bronze.part", [D2], None)
    assert _rows(lh, "bronze.part") == 21_000


# ------------------------------------------------------------------------------------- memory

_STEPS = textwrap.dedent(
    """
    import json, sys
    from datetime import date
    from pyiceberg.catalog.sql import SqlCatalog
    from lakehouse.catalog import ensure_tables
    from lakehouse.landing import LandingZone
    from lakehouse.pipeline import Lakehouse, RunInfo, build_silver, load_bronze
    from lakehouse.router import Router
    from lakehouse.tables import bronze_table, quarantine_table, silver_table
    from tests.declared import REGISTRY, TABLES

    home, landing, engine, master, conf = sys.argv[1:6]
    catalog = SqlCatalog("m", uri=f"sqlite:///{home}/catalog.db", warehouse=f"file://{home}/warehouse")
    ensure_tables(catalog, [make(TABLES["part"]) for make in (bronze_table, quarantine_table, silver_table)])
    router = Router(engine, 0, master, json.loads(conf))
    lh = Lakehouse(catalog, REGISTRY, str(landing), RunInfo("memory", "test", "dev"), router=router)
    day = date(1995, 1, 1)
    bronze = load_bronze(lh, "bronze.part", [day], None)
    silver = build_silver(lh, "silver.part", [day], None)
    # This process's own peak (VmHWM): ru_maxrss would keep the parent's peak across exec.
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    rss = int(status["VmHWM"].split()[0]) * 1024
    print(json.dumps({"rss": rss, "bronze": bronze.rows_out, "silver": silver.rows_out}))
    """
)
FILE_ROWS = 150_000  # about 20 MB of CSV a file


def _peak(tmp_path: Path, files: int, engine: str) -> dict[str, int]:
    """Peak RSS of a process running bronze and silver of ``part`` on ``files`` landed files."""
    root = tmp_path / f"{engine}-{files}"
    zone = LandingZone(str(root / "landing"), TPCH_SOURCE)
    for i in range(files):
        zone.write("part", D1, f"part-{i}.csv", part_csv(1 + i * FILE_ROWS, FILE_ROWS))
    (root / "home").mkdir()
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            _STEPS,
            str(root / "home"),
            zone.uri,
            engine,
            SPARK_MASTER,
            json.dumps(TEST_CONF),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, int] = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["bronze"] == result["silver"] == files * FILE_ROWS
    return result


@pytest.mark.slow
@pytest.mark.spark
@pytest.mark.usefixtures("spark")
def test_python_memory_does_not_grow_with_the_batch_on_spark(tmp_path: Path) -> None:
    """Three times the batch: Polars' peak grows with it, the Spark route's stays (two files at a time).

    Bronze holds two landed files at a time (one parsed while the one before is encoded; a file of
    this size is a bronze group of its own), so both batches fill that window; silver runs on Spark
    (its JVM bounded by ``spark.driver.memory``), so the Python process does not hold the batch. The
    Polars run is the control that shows the batch is large enough to matter.
    """
    polars_growth = _peak(tmp_path, 6, "polars")["rss"] - _peak(tmp_path, 2, "polars")["rss"]
    spark_growth = _peak(tmp_path, 6, "auto")["rss"] - _peak(tmp_path, 2, "auto")["rss"]
    mib = 1024 * 1024
    figures = f"Polars {polars_growth / mib:.0f} MiB, Spark route {spark_growth / mib:.0f} MiB"
    logging.getLogger(__name__).info("peak RSS growth for 4 more landed files: %s", figures)
    assert polars_growth > 150 * mib, f"control: Polars grew only {polars_growth / mib:.0f} MiB"
    assert spark_growth < polars_growth / 4, f"peak RSS growth for 4 more files: {figures}"
