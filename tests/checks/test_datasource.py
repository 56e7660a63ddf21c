"""The stock Soda CLI verifies the same contracts against a table's current snapshot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from checks.datasource import main, write_datasource
from tests.checks.conftest import Lakehouse, build_lakehouse, silver_sql

SODA = Path(sys.executable).parent / "soda"


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Lakehouse:
    """region and nation only: enough for the nation contract, which refers to region."""
    return build_lakehouse(tmp_path_factory.mktemp("small"), tables=("region", "nation"))


def soda_verify(contract: Path, data_source: Path, *options: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SODA_CORE_TELEMETRY_ENABLED": "false"}
    command = [str(SODA), "contract", "verify", "-c", str(contract), "-ds", str(data_source), *options]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)


def test_written_data_source_names_the_lakehouse_database(small: Lakehouse, tmp_path: Path) -> None:
    data_source = write_datasource(small.catalog, tmp_path)
    assert data_source.read_text().splitlines()[1:] == [
        "type: duckdb",
        "name: lakehouse",
        "connection:",
        f'  database: "{(tmp_path / "lakehouse.duckdb").resolve()}"',
        "  read_only: true",
    ]


def test_soda_cli_passes_good_data_and_fails_bad_data(
    small: Lakehouse, tmp_path: Path, contracts: dict[str, Path]
) -> None:
    contract = contracts["silver.nation"]
    good = soda_verify(contract, write_datasource(small.catalog, tmp_path / "good"))
    assert good.returncode == 0, good.stdout + good.stderr

    rows = small.batch_rows(
        "silver.nation", f"SELECT * REPLACE (99 AS n_regionkey) FROM ({silver_sql('nation')}) LIMIT 1"
    )
    small.table("silver.nation").append(rows)
    bad = soda_verify(contract, write_datasource(small.catalog, tmp_path / "bad"))
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "n_regionkey exists in silver.region" in bad.stdout + bad.stderr


def test_module_entry_point_writes_the_data_source(
    small: Lakehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("LAKEHOUSE_HOME", str(home))
    assert main([]) == 0
    assert (home / "soda" / "datasource.yml").is_file()
    assert (home / "contracts" / "silver" / "nation.yml").is_file()
    assert main(["--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "lakehouse.duckdb").is_file()
