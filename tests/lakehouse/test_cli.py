from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.transforms import MonthTransform
from pyiceberg.types import DateType, LongType, NestedField, StringType
from typer.testing import CliRunner, Result

from lakehouse.catalog import open_catalog
from lakehouse.cli import app
from lakehouse.settings import Settings
from lakehouse.tables import BATCH_DATE, PROP_ENGINE, PROP_FLOW, PROP_RUN_ID

SCHEMA = Schema(
    NestedField(1, "id", LongType(), required=False),
    NestedField(2, "name", StringType(), required=False),
    NestedField(3, BATCH_DATE, DateType(), required=False),
)
ARROW = pa.schema([("id", pa.int64()), ("name", pa.string()), (BATCH_DATE, pa.date32())])
BY_MONTH = PartitionSpec(PartitionField(3, 1000, MonthTransform(), "batch_month"))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("LAKEHOUSE_HOME", str(home))
    monkeypatch.setenv("LAKEHOUSE_CATALOG", "clitest")
    monkeypatch.setenv("PYICEBERG_HOME", str(tmp_path))  # no user catalog config
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("TERMINAL_WIDTH", "200")
    return home


@pytest.fixture
def catalog(home: Path) -> Catalog:
    catalog = open_catalog(Settings())
    catalog.create_namespace("silver")
    return catalog


@pytest.fixture
def table(catalog: Catalog) -> Table:
    """``silver.t``: three appends across two months, by run r0..r2."""
    table = catalog.create_table("silver.t", SCHEMA, partition_spec=BY_MONTH)
    for i in range(3):
        data = pa.table(
            {
                "id": [i * 10 + j for j in range(4)],
                "name": [f"n{j}" for j in range(4)],
                BATCH_DATE: [date(2024, 1, 5), date(2024, 1, 6), date(2024, 2, 1), date(2024, 2, 2)],
            },
            schema=ARROW,
        )
        table.append(data, snapshot_properties={PROP_RUN_ID: f"r{i}", PROP_ENGINE: "polars"})
        time.sleep(0.005)
    return table


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(app, list(args), input=input)


def out_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def text(result: Result) -> str:
    """Output with rich panel borders and line wrapping removed."""
    return " ".join(result.output.replace("│", " ").split())


def test_tables(table: Table) -> None:
    rows = out_json(run("tables", "--json"))
    assert [(r["table"], r["records"], r["files"]) for r in rows] == [("silver.t", 12, 6)]
    result = run("tables")
    assert result.exit_code == 0 and "silver.t" in result.stdout


def test_describe(table: Table) -> None:
    info = out_json(run("describe", "silver.t", "--json"))
    assert [c["name"] for c in info["schema"]] == ["id", "name", BATCH_DATE]
    assert info["partition_spec"] == [
        {"name": "batch_month", "transform": "month", "source": BATCH_DATE, "field_id": 1000}
    ]
    assert (info["records"], info["files"], info["snapshots"]) == (12, 6, 3)
    assert info["size_bytes"] > 0 and info["refs"][0]["name"] == "main"
    result = run("describe", "silver.t")
    assert result.exit_code == 0 and "batch_month" in result.stdout


def test_snapshots_partitions_history(table: Table) -> None:
    snaps = out_json(run("snapshots", "silver.t", "--json"))
    assert [(s["run_id"], s["engine"], s["operation"], s["rows_added"]) for s in snaps] == [
        ("r0", "polars", "append", 4),
        ("r1", "polars", "append", 4),
        ("r2", "polars", "append", 4),
    ]
    assert snaps[-1]["refs"] == ["main"] and all(s["in_main"] for s in snaps)
    parts = out_json(run("partitions", "silver.t", "--json"))
    assert [(p["partition"], p["files"], p["records"]) for p in parts] == [
        ("batch_month=2024-01", 3, 6),
        ("batch_month=2024-02", 3, 6),
    ]
    hist = out_json(run("history", "silver.t", "--json"))
    assert [h["run_id"] for h in hist] == ["r0", "r1", "r2"]
    for command in ("snapshots", "partitions", "history"):
        assert run(command, "silver.t").exit_code == 0


def test_checks_reads_every_verification_of_every_run(table: Table, home: Path) -> None:
    def report(run_id: str, name: str, body: str) -> None:
        path = home / "reports" / "runs" / run_id / "gates" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)

    def gate(run_id: str, passed: bool, snapshot: int, finished: str, batches: list[str]) -> str:
        return json.dumps(
            {"table": "silver.t", "passed": passed, "run_id": run_id, "snapshot_id": snapshot}
            | {"finished": finished, "batches": batches}
        )

    # two chunks of one run: both verifications are kept, the failed early one included
    report(
        "run_1", "silver.t.1.json", gate("run/1", False, 1, "2024-01-01T10:00Z", ["1995-01-01", "1995-01-02"])
    )
    report("run_1", "silver.t.2.json", gate("run/1", True, 2, "2024-01-01T10:05Z", ["1995-01-03"]))
    report("run2", "silver.t.3.json", gate("run2", True, 3, "2024-01-02T10:00Z", ["1996-01-01"]))
    report("run3", "silver.t.4.json", "{not json")
    report("run1", "silver.other.1.json", json.dumps({"table": "silver.other", "passed": True}))

    rows = out_json(run("checks", "silver.t", "--json"))

    assert [(r["run_id"], r["batches"], r["passed"], r["snapshot_id"]) for r in rows] == [
        ("run/1", "1995-01-01..1995-01-02", False, 1),
        ("run/1", "1995-01-03", True, 2),
        ("run2", "1996-01-01", True, 3),
        ("run3", None, None, None),
    ]
    assert rows[0]["finished"] == "2024-01-01T10:00Z" and rows[3]["error"]
    result = run("checks", "silver.t")
    assert result.exit_code == 0 and "run2" in result.stdout


def test_tables_piped_through_grep_keeps_ids_whole(catalog: Catalog) -> None:
    long_ids = ["silver.lineitem", "silver.a_table_with_a_rather_long_name_that_used_to_fold_at_80_columns"]
    for table_id in long_ids:
        catalog.create_table(table_id, SCHEMA)
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "TERMINAL_WIDTH", "LINES")}
    for table_id in long_ids:
        # the table goes to a pipe, not a terminal: rich would fold it at 80 columns
        piped = subprocess.run(
            f"{sys.executable} -m lakehouse tables | grep -F {table_id}",
            shell=True,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert piped.returncode == 0, piped.stderr
        (line,) = piped.stdout.splitlines()
        assert f" {table_id} " in line


def test_rollback_by_id_and_by_time(table: Table) -> None:
    snaps = out_json(run("snapshots", "silver.t", "--json"))
    moved = out_json(run("rollback", "silver.t", "--at", snaps[1]["committed_at"], "--json"))
    assert (moved["from_snapshot_id"], moved["to_snapshot_id"]) == (
        snaps[2]["snapshot_id"],
        snaps[1]["snapshot_id"],
    )

    result = run("rollback", "silver.t", "--to", str(snaps[0]["snapshot_id"]))

    assert result.exit_code == 0, result.output
    assert f"back to {snaps[0]['snapshot_id']}" in text(result)
    assert table.refresh().scan().to_arrow().num_rows == 4


def test_compact_expire_and_remove_orphans(table: Table) -> None:
    compacted = out_json(run("compact", "silver.t", "--partition", "batch_month=2024-01", "--json"))
    assert (compacted["files_removed"], compacted["files_added"], compacted["records"]) == (3, 1, 6)
    snapshot = table.refresh().current_snapshot()
    assert snapshot is not None and snapshot.summary is not None
    assert snapshot.summary.operation.value == "replace"
    assert (
        str(snapshot.summary[PROP_RUN_ID]).startswith("cli-") and snapshot.summary[PROP_FLOW] == "cli.compact"
    )

    result = run("compact", "silver.t", "--target-file-size", "64MB")
    assert result.exit_code == 0 and "rewritten into 1" in text(result)

    expired = out_json(run("expire", "silver.t", "--older-than", "0s", "--retain-last", "1", "--json"))
    assert len(expired["expired_snapshot_ids"]) == 4 and expired["deleted_files"]
    assert table.refresh().scan().to_arrow().num_rows == 12

    stray = Path(table.location().removeprefix("file://")) / "data" / "stray.parquet"
    stray.write_bytes(b"x")
    old = time.time() - 86400
    os.utime(stray, (old, old))
    listed = run("remove-orphans", "silver.t", "--older-than", "1h", "--dry-run")
    assert listed.exit_code == 0 and "stray.parquet" in listed.stdout and stray.exists()
    assert "would delete 1 orphan" in text(listed)
    removed = out_json(run("remove-orphans", "silver.t", "--older-than", "1h", "--json"))
    assert [Path(f).name for f in removed["orphan_files"]] == ["stray.parquet"] and not stray.exists()
    assert table.refresh().scan().to_arrow().num_rows == 12


def test_migrate(table: Table) -> None:
    aborted = run("migrate", "silver.t", "--rename", "name=label", input="n\n")
    assert aborted.exit_code == 1 and "nothing changed" in aborted.output
    assert "name" in table.refresh().schema().column_names

    result = run("migrate", "silver.t", "--rename", "name=label", "--yes")
    assert result.exit_code == 0, result.output
    assert table.refresh().schema().column_names == ["id", "label", BATCH_DATE]

    result = run("migrate", "silver.t", "--set-type", "id=int", "--yes")
    assert result.exit_code == 0, result.output
    assert "12 rows rewritten" in text(result)
    assert str(table.refresh().schema().find_field("id").field_type) == "int"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["describe", "nope"], 2, "'nope' is not namespace.table"),
        (["describe", "silver.missing"], 2, "unknown table 'silver.missing'"),
        (["snapshots", "gold.missing"], 2, "unknown table 'gold.missing'"),
        (["expire", "silver.t", "--older-than", "7 years"], 2, "bad duration '7 years'"),
        (["expire", "silver.t", "--retain-last", "0"], 2, "--retain-last"),
        (["remove-orphans", "silver.t", "--older-than", "soon"], 2, "bad duration 'soon'"),
        (["compact", "silver.t", "--target-file-size", "huge"], 2, "bad size 'huge'"),
        (
            ["compact", "silver.t", "--partition", "batch_month=1999-01"],
            1,
            "no partition 'batch_month=1999-01'",
        ),
        (["rollback", "silver.t"], 2, "exactly one of --to"),
        (["rollback", "silver.t", "--to", "1", "--at", "2024-01-01"], 2, "exactly one of --to"),
        (["rollback", "silver.t", "--to", "1"], 1, "has no snapshot 1"),
        (["rollback", "silver.t", "--to", "abc"], 2, "Invalid value for '--to'"),
        (["rollback", "silver.t", "--at", "yesterday"], 2, "'yesterday' is not an ISO timestamp"),
        (["rollback", "silver.t", "--at", "2000-01-01"], 1, "no snapshot in main's history"),
        (["migrate", "silver.t"], 2, "exactly one of --rename"),
        (["migrate", "silver.t", "--rename", "name"], 2, "'name' is not OLD=NEW"),
        (["migrate", "silver.t", "--set-type", "id=bigint", "--yes"], 1, "unknown type 'bigint'"),
        (["migrate", "silver.t", "--drop", "_batch_date", "--yes"], 1, "partitioned by it"),
        (["migrate", "silver.t", "--drop", "nope", "--yes"], 1, "no column 'nope'"),
    ],
)
def test_bad_input_exits_non_zero_with_a_clear_message(
    table: Table, args: list[str], code: int, message: str
) -> None:
    result = run(*args)
    assert result.exit_code == code, result.output
    assert message in text(result)
    assert "Traceback" not in result.output


def test_bad_setting_is_reported(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_MAINTENANCE_RETAIN_LAST", "zero")
    result = run("tables")
    assert result.exit_code == 1 and "bad LAKEHOUSE_* setting" in text(result)


def test_module_entry_point(home: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lakehouse", "describe", "nope"],
        capture_output=True,
        text=True,
        check=False,
        env=os.environ,
    )
    assert done.returncode == 2 and "is not namespace.table" in done.stderr and "Traceback" not in done.stderr
