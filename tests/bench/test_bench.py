"""The benchmark harness: its pure parts, its measuring, and a smoke run at a tiny scale.

No timing assertions: the figures depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest

from bench import merge_worker, report
from bench.harness import HEADLINES, NOT_AVAILABLE
from bench.measure import run
from bench.png import bar_chart, loglog_chart
from bench.prefect_server import covered, leaves
from bench.router import analyse, crossover

ROOT = Path(__file__).resolve().parents[2]
MEMORY = 8.0  # GiB of the machine, for the analysis


def _points(polars: list[float], spark: list[float]) -> tuple[dict[str, Any], dict[str, Any]]:
    sizes = [10**i for i in range(3, 3 + len(polars))]

    def engine(times: list[float]) -> dict[str, Any]:
        return {
            "peak_rss_gb": 1.0,
            "points": [
                {"days": i, "rows": s // 100, "bytes": s, "seconds": t}
                for i, (s, t) in enumerate(zip(sizes, times, strict=True))
            ],
        }

    return engine(polars), engine(spark)


def test_crossover_is_interpolated_in_log_size_where_spark_starts_to_win() -> None:
    polars, spark = _points([1, 10, 100], [10, 10, 10])
    result = analyse(polars, spark, 10**9, MEMORY)
    assert result["crossover_bytes"] == 10**4  # Spark and Polars tie at the middle size
    polars, spark = _points([1, 4, 100], [4, 8, 10])
    # log ratios 2 (1e3), 1 (1e4), -2.3 (1e5): the zero lies 1/3.3 of the way from 1e4 to 1e5
    assert 10**4 < analyse(polars, spark, 0, MEMORY)["crossover_bytes"] < 10**4.5


def test_no_crossover_when_spark_never_wins_and_the_smallest_size_when_it_always_wins() -> None:
    polars, spark = _points([1, 2, 3], [10, 20, 30])
    assert analyse(polars, spark, 0, MEMORY)["crossover_bytes"] is None
    assert crossover([{"bytes": 5, "polars": 2.0, "spark": 1.0}], "bytes") == 5.0


def test_worst_ratio_compares_the_pick_of_the_threshold_with_the_better_engine() -> None:
    polars, spark = _points([1, 10, 100], [20, 20, 20])
    # threshold between 1e4 and 1e5: Polars picked for the first two sizes, Spark for the last
    result = analyse(polars, spark, 50_000, MEMORY)
    assert [p["picked"] for p in result["points"]] == ["polars", "polars", "spark"]
    assert [p["better"] for p in result["points"]] == ["polars", "polars", "spark"]
    assert result["worst_ratio"] == 1.0
    # a threshold too high leaves the largest size on the slower engine: 100 s against 20 s
    assert analyse(polars, spark, 10**9, MEMORY)["worst_ratio"] == 5.0


def test_recommended_threshold_is_the_crossover_or_else_the_memory_limit_of_polars() -> None:
    polars, spark = _points([1, 10, 100], [10, 10, 10])
    assert analyse(polars, spark, 0, MEMORY)["recommended_threshold_bytes"] == 10**4
    polars, spark = _points([1, 2, 3], [10, 20, 30])  # Spark never wins
    result = analyse(polars, spark, 0, MEMORY)
    # Polars peaked at 1 GiB for 1e5 bytes of work: half of 8 GiB is reached at 4 times that
    assert result["recommended_threshold_bytes"] == 4 * 10**5
    assert "Spark was slower at every size measured" in result["recommended_threshold_basis"]
    # on a large machine a step's budget is STEP_MEMORY_BYTES (6 GB), not half the memory: 1 GiB at 1e5 bytes
    assert analyse(polars, spark, 0, 64.0)["recommended_threshold_bytes"] == round(6e9 * 10**5 / 2**30)


def test_task_work_is_the_union_of_the_leaf_task_runs() -> None:
    assert covered([(0, 2), (1, 3), (5, 6)]) == 4
    assert covered([(0, 10), (2, 3)]) == 10
    runs = [
        {"id": "chunk", "task_inputs": {}},
        {"id": "a", "task_inputs": {"__parents__": [{"input_type": "task_run", "id": "chunk"}]}},
        {"id": "b", "task_inputs": {"x": []}},
    ]
    assert [t["id"] for t in leaves(runs)] == ["a", "b"]


def test_rss_of_the_whole_process_tree_is_sampled(tmp_path: Path) -> None:
    # the parent only waits; a grandchild holds 300 MiB for a while
    child = "import time; b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(1.5)"
    parent = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}], check=True)"
    measured = run([sys.executable, "-c", parent], env={"PATH": "/usr/bin:/bin"}, log_path=tmp_path / "log")
    assert measured.ok
    assert measured.max_processes >= 2
    assert measured.peak_rss_gb >= 0.28
    assert measured.max_process_hwm_gb >= 0.28


def test_a_timed_out_command_is_killed_with_its_children(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-c",
        "import subprocess, sys; subprocess.run([sys.executable, '-c', 'import time; time.sleep(60)'])",
    ]
    measured = run(command, env={"PATH": "/usr/bin:/bin"}, log_path=tmp_path / "log", timeout=2)
    assert measured.timed_out and not measured.ok and measured.returncode is None


def test_an_absent_merge_benchmark_is_not_available(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(merge_worker, "MODULE", "bench.no_such_merge_module")
    assert merge_worker.run(10, 1, tmp_path)["status"] == NOT_AVAILABLE


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert (
        kind == b"IHDR"
        and zlib.crc32(data[12 : 16 + length]) == struct.unpack(">I", data[16 + length : 20 + length])[0]
    )
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_charts_are_valid_png(tmp_path: Path) -> None:
    bar_chart(tmp_path / "bars.png", "Stages", [("bulk", 10.0), ("duckdb", 2.5)], " s")
    loglog_chart(
        tmp_path / "lines.png",
        "Router",
        {"polars": [(1e3, 0.1), (1e6, 2.0)], "spark": [(1e3, 20.0), (1e6, 25.0)]},
        x_label="bytes",
        y_label="seconds",
        markers=[("threshold", 1e5)],
    )
    assert _png_size(tmp_path / "bars.png")[0] >= 900
    assert _png_size(tmp_path / "lines.png") == (960, 620)


def _check_results(results: dict[str, Any]) -> None:
    for key in HEADLINES:
        value = results[key]
        assert value == NOT_AVAILABLE or (isinstance(value, int | float) and not isinstance(value, bool)), key
        if value == NOT_AVAILABLE:
            assert results["notes"][key], f"{key} is not available without a reason"
    assert results["machine"]["cores"] >= 1 and results["machine"]["memory_gb"] > 0
    for package in ("python", "polars", "pyiceberg", "prefect", "duckdb", "pyspark"):
        assert results["versions"][package]


@pytest.mark.slow
def test_smoke_run_at_a_tiny_scale(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    command = [
        *(sys.executable, "-m", "bench", "--scale", "0.01", "--days", "1", "--out", str(out)),
        *("--workdir", str(tmp_path / "work"), "--only", "bulk,duckdb,prefect_overhead", "--engines", "auto"),
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(out.read_text(encoding="utf-8"))
    _check_results(results)
    # what ran produced numbers; what did not run says so
    for key in (
        "bulk_seconds",
        "duckdb_seconds",
        "bulk_vs_duckdb",
        "bulk_peak_rss_gb",
        "prefect_overhead_fraction",
    ):
        assert isinstance(results[key], float | int), (key, results["notes"].get(key))
    assert results["incremental_ratio"] == NOT_AVAILABLE
    assert (
        results["stages"]["bulk"]["auto"]["rows"]["silver.lineitem"]
        == results["stages"]["duckdb"]["rows"]["silver.lineitem"]
    )

    markdown = report.write(out)
    assert markdown == tmp_path / "bench.md"
    text = markdown.read_text(encoding="utf-8")
    assert "bulk_vs_duckdb" in text and "bench-stages.png" in text
    assert _png_size(tmp_path / "bench-stages.png")[1] > 0
