"""Fact keys that arrive again in a later batch are quarantined as duplicates, never kept twice."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from flows.daily import daily
from lakehouse.landing import LandingZone
from tests.declared import TPCH as TPCH_SOURCE
from tests.flows.conftest import Landing

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


def test_an_order_landed_again_under_a_new_date_is_a_duplicate(
    clean_landing: Landing,
    use_home,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    zone = LandingZone(str(tmp_path / "landing"), TPCH_SOURCE)
    for name in TPCH_SOURCE.tables:
        for f in clean_landing.zone.files(name, clean_landing.dates):
            zone.write(name, f.batch, Path(f.path).name, Path(f.path).read_bytes())
    catalog = use_home(Landing(zone.uri, zone, zone.batches()))
    assert daily(source=["tpch"]).failures == {}
    landed = [pl.read_csv(f.path, infer_schema=False) for f in zone.files("orders", zone.batches())]
    orders = pl.concat(landed + landed)  # every landed order twice: 2 of them will keep their key
    top = max(int(k) for k in orders.get_column("o_orderkey"))
    again = orders.head(2).get_column("o_orderkey").to_list()
    new_keys = (pl.int_range(pl.len()) + top + 1).cast(pl.String)
    late_orders = orders.with_columns(
        pl.when(pl.int_range(pl.len()) >= 2)
        .then(new_keys)
        .otherwise(pl.col("o_orderkey"))
        .alias("o_orderkey")
    )
    late = clean_landing.dates[-1] + timedelta(days=1)
    zone.write("orders", late, "orders.csv", late_orders.write_csv().encode())

    summary = daily(source=["tpch"])  # only the new batch is pending

    assert summary.failures == {}
    silver = pl.from_arrow(catalog.load_table("silver.orders").scan().to_arrow())
    assert silver.get_column("o_orderkey").is_duplicated().sum() == 0
    assert silver.filter(pl.col("_batch_date") == late).height == late_orders.height - 2
    quarantined = pl.from_arrow(catalog.load_table("quarantine.orders").scan().to_arrow())
    assert sorted(quarantined.select("o_orderkey", "_rule").rows()) == sorted(
        (k, "duplicate_key") for k in again
    )
