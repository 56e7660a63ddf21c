"""Saving and setting every table's ``main``: how the incremental stage alternates 1x and 10x runs."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog

from bench.replicate import save_mains, set_mains


def _values(catalog: SqlCatalog) -> list[int]:
    return sorted(catalog.load_table("silver.t").scan().to_arrow().column("x").to_pylist())


def test_mains_go_back_and_forth_between_saved_states(tmp_path: Path) -> None:
    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/catalog.db", warehouse=(tmp_path / "wh").as_uri())
    catalog.create_namespace("silver")
    rows = pa.schema([pa.field("x", pa.int64())])
    catalog.create_table("silver.t", rows).append(pa.table({"x": [1]}, schema=rows))
    catalog.create_table("silver.empty", rows)  # no snapshot: left alone
    one, many = tmp_path / "1x.json", tmp_path / "10x.json"
    save_mains(catalog, one)
    catalog.load_table("silver.t").append(pa.table({"x": [2, 3]}, schema=rows))
    save_mains(catalog, many)

    set_mains(catalog, one)
    assert _values(catalog) == [1]
    catalog.load_table("silver.t").append(pa.table({"x": [4]}, schema=rows))  # a run on the 1x state
    set_mains(catalog, many)
    assert _values(catalog) == [1, 2, 3]
    set_mains(catalog, one)
    assert _values(catalog) == [1]
    assert catalog.load_table("silver.empty").current_snapshot() is None
