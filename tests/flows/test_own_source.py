"""A team's own source, written in a temporary folder: adding it touches only that folder.

The source lands CSV with ``;`` as delimiter and ``\\N`` for null, has a composite foreign key and a
gold model, and runs end to end through the daily flow with no other sources declared.
"""

from __future__ import annotations

import textwrap
from datetime import date
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from flows.daily import daily, main
from lakehouse.catalog import open_catalog
from lakehouse.landing import LandingZone
from lakehouse.registry import load_registry
from lakehouse.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]
DAY = date(2024, 3, 1)

SPEC = """
name: shop
landing: {format: csv, delimiter: ";", null_values: ["", "\\\\N"]}
tables:
  products:
    kind: reference
    key: [sku, size]
    columns:
      sku: {type: string, not_null: true, pattern: '^[A-Z]{3}-[0-9]{3}$'}
      size: {type: string, not_null: true, accepted_values: [S, M, L]}
      price: {type: 'decimal(8,2)', not_null: true, range: {min: 0}}
  sales:
    kind: fact
    key: [sale_id]
    columns:
      sale_id: {type: bigint, not_null: true}
      sku: {type: string, not_null: true}
      size: string
      quantity: {type: int, not_null: true, range: {min: 1, max: 100}}
      sold_on: {type: date, format: '%d/%m/%Y', not_null: true}
      note: {type: string, length: {max: 20}}
    references:
      - {columns: [sku, size], table: products}
"""

MODELS = """
import narwhals.stable.v2 as nw

from lakehouse.models import batches, model, replace
from lakehouse.transforms.frames import lazy


@model(
    "units_by_sku",
    inputs={"sales": batches("silver.sales")},
    materialization=replace(),
    columns={"sold_on": "date", "sku": "string", "units": "bigint"},
)
def units_by_sku(sales):
    return (
        lazy(sales)
        .group_by("sold_on", "sku")
        .agg(nw.col("quantity").cast(nw.Int64()).sum().alias("units"), nw.col("_batch_date").min())
        .to_native()
    )
"""

PRODUCTS = "sku;size;price\nABC-001;S;9.50\nABC-001;M;10.00\nXYZ-777;L;\\\\N\n"
SALES = (
    "sale_id;sku;size;quantity;sold_on;note\n"
    "1;ABC-001;S;2;01/03/2024;\\\\N\n"
    "2;ABC-001;M;1;01/03/2024;gift\n"
    "3;ABC-001;L;1;01/03/2024;no such size\n"  # (ABC-001, L) is no product: orphan
    "4;ABC-001;S;0;01/03/2024;\n"  # quantity out of range
    "5;ABC-001;S;3;2024-03-01;\n"  # not the declared date format
    "6;ABC-001;M;1;01/03/2024;a note far longer than twenty\n"  # too long
    "1;ABC-001;S;5;01/03/2024;\n"  # sale 1 again
    "7;ABC-001;S;4;01/03/2024;\n"
)


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    sources = tmp_path / "sources"
    folder = sources / "shop"
    folder.mkdir(parents=True)
    (folder / "source.yml").write_text(textwrap.dedent(SPEC).lstrip())
    (folder / "models.py").write_text(textwrap.dedent(MODELS).lstrip())
    zone = LandingZone(str(tmp_path / "landing"), load_registry(sources).sources["shop"])
    zone.write("products", DAY, "products.csv", PRODUCTS.replace("\\\\", "\\").encode())
    zone.write("sales", DAY, "sales.csv", SALES.replace("\\\\", "\\").encode())
    monkeypatch.setenv("LAKEHOUSE_SOURCES", str(sources))
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LAKEHOUSE_LANDING_URI", str(tmp_path / "landing"))
    monkeypatch.setenv("LAKEHOUSE_QUARANTINE_MAX_SHARE", "0.9")  # a tiny batch with many bad rows
    return sources


def test_a_new_source_runs_end_to_end_from_its_folder_alone(shop: Path) -> None:
    summary = daily()
    assert summary.failures == {}
    catalog = open_catalog(Settings())

    def read(table_id: str) -> pl.DataFrame:
        frame = pl.from_arrow(catalog.load_table(table_id).scan().to_arrow())
        assert isinstance(frame, pl.DataFrame)
        return frame

    products = read("silver.products").sort("sku", "size")
    # XYZ-777's price is \N: missing, quarantined
    assert products.select("sku", "size", "price").rows() == [
        ("ABC-001", "M", Decimal("10.00")),
        ("ABC-001", "S", Decimal("9.50")),
    ]
    assert read("quarantine.products").get_column("_rule").to_list() == ["missing:price"]
    sales = read("silver.sales").sort("sale_id")
    assert sales.get_column("sale_id").to_list() == [1, 2, 7]
    assert sales.get_column("note").to_list() == [None, "gift", None]  # \N and empty are null
    assert sales.get_column("sold_on").to_list() == [DAY] * 3
    rejected = dict(read("quarantine.sales").select("sale_id", "_rule").iter_rows())
    assert rejected == {
        "3": "orphan_key:sku+size",
        "4": "out_of_range:quantity",
        "5": "unparseable:sold_on",
        "6": "length:note",
        "1": "duplicate_key",
    }
    assert read("gold.units_by_sku").select("sku", "units").rows() == [("ABC-001", 7)]
    assert main([]) == 0  # run again: nothing pending, nothing changes
    assert read("silver.sales").height == 3


def test_a_bad_spec_stops_the_run_before_anything_is_written(shop: Path, tmp_path: Path) -> None:
    spec = shop / "shop" / "source.yml"
    spec.write_text(spec.read_text().replace("type: 'decimal(8,2)'", "type: money"))
    assert main([]) == 2
    assert not (tmp_path / "home" / "catalog.db").exists()
