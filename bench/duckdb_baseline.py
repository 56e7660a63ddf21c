"""The single-node baseline: the same transforms done by DuckDB from the landing files to Parquet.

No Iceberg, no checks, no orchestration: what a user would write instead of the lakehouse. The
transforms are the plain SQL files of ``bench/sql`` run in name order, with ``${landing}`` and
``${out}`` substituted. Before them, this runner registers one view per TPC-H table,
``landed_<table>``, over every landed file of the table (CSV, JSON lines, Parquet), every column
a string, plus ``_batch_date`` (from the ``dt=`` directory) and ``_source_file``.

``python -m bench.duckdb_baseline --landing DIR --out DIR [--threads N] [--result FILE]`` writes
the seconds of each SQL file and the row counts of the Parquet files as JSON (to stdout or FILE).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from string import Template

import duckdb

from lakehouse.registry import load_registry
from lakehouse.settings import BUNDLED_SOURCES

SOURCE = "tpch"

SQL_DIR = Path(__file__).resolve().parent / "sql"
BATCH_FROM_PATH = r"regexp_extract(filename, 'dt=(\d{4}-\d{2}-\d{2})', 1)::DATE"


def _quote(text: str) -> str:
    """``text`` as the inside of a SQL string literal."""
    return text.replace("'", "''")


def _readers(table_dir: Path, columns: list[str]) -> list[str]:
    """One SELECT per landed file format present under ``table_dir``, all columns as strings."""
    strings = ", ".join(f"CAST({c} AS VARCHAR) AS {c}" for c in columns)
    meta = f"{BATCH_FROM_PATH} AS _batch_date, filename AS _source_file"
    pattern = _quote(str(table_dir))
    types = ", ".join(f"'{c}': 'VARCHAR'" for c in columns)
    selects = []
    if any(table_dir.glob("dt=*/*.csv")):
        # the landed header is TPC-H's: no sniffing (per file, it would dominate the run time)
        selects.append(
            f"SELECT {strings}, {meta} FROM read_csv('{pattern}/dt=*/*.csv', header = true, "
            f"auto_detect = false, columns = {{{types}}}, delim = ',', quote = '\"', escape = '\"', "
            "filename = true)"
        )
    if any(table_dir.glob("dt=*/*.jsonl")):
        selects.append(
            f"SELECT {strings}, {meta} FROM read_json('{pattern}/dt=*/*.jsonl', "
            f"format = 'newline_delimited', columns = {{{types}}}, filename = true)"
        )
    if any(table_dir.glob("dt=*/*.parquet")):
        selects.append(
            f"SELECT {strings}, {meta} FROM read_parquet('{pattern}/dt=*/*.parquet', "
            "union_by_name = true, filename = true)"
        )
    return selects


def register_landing(con: duckdb.DuckDBPyConnection, landing: Path) -> None:
    """Create the ``landed_<table>`` views over the landing zone ``landing`` (a local directory).

    Raises:
        FileNotFoundError: if a table has no landed file.

    """
    for name, spec in load_registry(BUNDLED_SOURCES).sources[SOURCE].tables.items():
        selects = _readers(landing / SOURCE / name, spec.column_names)
        if not selects:
            raise FileNotFoundError(f"no landed file for {name} under {landing / SOURCE / name}")
        con.execute(f"CREATE OR REPLACE TEMP VIEW landed_{name} AS {' UNION ALL '.join(selects)}")


def run(landing: Path, out: Path, threads: int | None = None) -> dict[str, object]:
    """Run every SQL file of ``bench/sql`` against ``landing``, writing Parquet under ``out``.

    Returns the seconds each file took and the rows of each output file.
    """
    for layer in ("silver", "gold"):
        (out / layer).mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    register_landing(con, landing)
    values = {"landing": _quote(str(landing)), "out": _quote(str(out))}
    seconds = {}
    for path in sorted(SQL_DIR.glob("*.sql")):
        began = time.perf_counter()
        con.execute(Template(path.read_text(encoding="utf-8")).substitute(values))
        seconds[path.stem] = round(time.perf_counter() - began, 3)
    rows = {
        f"{layer.name}.{file.stem}": con.execute(
            f"SELECT count(*) FROM read_parquet('{_quote(str(file))}')"
        ).fetchone()[0]  # type: ignore[index]
        for layer in sorted(out.iterdir())
        for file in sorted(layer.glob("*.parquet"))
    }
    return {"seconds_by_file": seconds, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(prog="python -m bench.duckdb_baseline", description=__doc__)
    parser.add_argument("--landing", type=Path, required=True, help="landing zone (local directory)")
    parser.add_argument("--out", type=Path, required=True, help="where the Parquet files go")
    parser.add_argument("--threads", type=int, default=None, help="DuckDB threads (default: all cores)")
    parser.add_argument("--result", type=Path, default=None, help="write the JSON here instead of stdout")
    args = parser.parse_args(argv)
    text = json.dumps(run(args.landing.resolve(), args.out.resolve(), args.threads), indent=1) + "\n"
    if args.result:
        args.result.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
