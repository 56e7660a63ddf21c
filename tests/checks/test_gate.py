"""The gate on real Iceberg tables: good batches pass, bad ones fail with the right error and evidence."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from checks.contracts import gated_tables
from checks.errors import CheckCouldNotRun, QualityGateFailed
from checks.gate import audit, require_pass
from checks.result import CheckOutcome, GateResult
from tests.checks.conftest import REFERENCE_BATCH, Lakehouse, bronze_sql, silver_sql
from tests.declared import REGISTRY, TABLES

TPCH_MODELS = [m.identifier for m in REGISTRY.models.values() if m.source == "tpch"]

TPCH_GATED = {*(f"{ns}.{n}" for ns in ("bronze", "silver") for n in TABLES), *TPCH_MODELS}
GATED = [t for t in gated_tables(REGISTRY) if t in TPCH_GATED]  # the shared lakehouse's tables
Verify = Callable[..., GateResult]
FACTS = ("orders", "lineitem", "dim_date", "fct_sales", "daily_revenue", "pricing_summary")
NEW_DAY = date(2030, 1, 1)


def main_snapshot(lakehouse: Lakehouse, identifier: str) -> int:
    snapshot = lakehouse.table(identifier).metadata.current_snapshot_id
    assert snapshot is not None
    return snapshot


def batch_of(lakehouse: Lakehouse, table: str, where: str, day: date = NEW_DAY, **columns: str) -> pa.Table:
    """Silver rows of ``table`` matching ``where``, landed on ``day``, with some columns replaced."""
    replaced = ", ".join(
        f"{sql} AS {name}" for name, sql in {"_batch_date": f"DATE '{day}'", **columns}.items()
    )
    return lakehouse.batch_rows(
        f"silver.{table}", f"SELECT * REPLACE ({replaced}) FROM ({silver_sql(table)}) WHERE {where}"
    )


def on_branch(lakehouse: Lakehouse, identifier: str, rows: pa.Table) -> int:
    return lakehouse.write_branch(identifier, rows, f"audit-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def verify(contracts: dict[str, Path]) -> Verify:
    """``audit`` with the table's derived contract unless one is given."""

    def run(catalog: object, identifier: str, *args: object, **kwargs: object) -> GateResult:
        kwargs.setdefault("contract", contracts[identifier])
        return audit(catalog, identifier, *args, **kwargs)  # type: ignore[arg-type]

    return run


def check(result: GateResult, name: str) -> CheckOutcome:
    return next(c for c in result.checks if c.name == name)


@pytest.mark.parametrize("identifier", GATED)
def test_good_batch_passes(verify: Verify, lakehouse: Lakehouse, identifier: str) -> None:
    batches = [lakehouse.busy_day] if identifier.split(".")[1] in FACTS else [REFERENCE_BATCH]
    result = verify(lakehouse.catalog, identifier, main_snapshot(lakehouse, identifier), batches, run_id="r1")
    assert result.errors == ()
    assert [c.label for c in result.checks if c.outcome != "passed"] == []
    assert result.passed
    assert (check(result, "Row count meets expected threshold").measured or 0) > 0
    require_pass(result)


def test_whole_snapshot_is_audited_when_batches_is_none(verify: Verify, lakehouse: Lakehouse) -> None:
    snapshot = main_snapshot(lakehouse, "silver.orders")
    result = verify(lakehouse.catalog, "silver.orders", snapshot, None)
    assert result.passed
    assert result.batches is None
    assert (
        check(result, "Row count meets expected threshold").measured
        == lakehouse.tpch.sql("SELECT count(*) FROM orders").fetchone()[0]
    )  # type: ignore[index]
    assert result.references.keys() == {"silver.customer", "quarantine.orders"}


def test_mostly_negative_prices_fail_with_the_check_and_measured_value(
    verify: Verify, lakehouse: Lakehouse, tmp_path: Path
) -> None:
    rows = batch_of(
        lakehouse,
        "orders",
        f"o_orderdate = DATE '{lakehouse.busy_day}'",
        o_orderkey="o_orderkey + 10000000",
        o_totalprice="CASE WHEN row_number() OVER () > 1 THEN -o_totalprice ELSE o_totalprice END",
    )
    negative = rows.num_rows - 1
    snapshot = on_branch(lakehouse, "silver.orders", rows)

    result = verify(
        lakehouse.catalog, "silver.orders", snapshot, [NEW_DAY], reports_dir=tmp_path, run_id="bad-1"
    )

    assert not result.passed
    assert result.errors == ()
    price = check(result, "o_totalprice is at least 0")
    assert (price.outcome, price.measured, price.threshold) == ("failed", negative, "= 0")
    assert [c.name for c in result.failed_checks] == ["o_totalprice is at least 0"]
    assert price.failed_rows is not None
    assert price.failed_rows.columns[:2] == ("o_totalprice", "o_orderkey")
    assert len(price.failed_rows.rows) == min(negative, 5)
    assert all(row[0] is not None and row[0].startswith("-") for row in price.failed_rows.rows)
    with pytest.raises(
        QualityGateFailed, match=rf"silver.orders.*o_totalprice is at least 0: measured {negative}"
    ):
        require_pass(result)

    assert result.report is not None
    assert result.report.parent == tmp_path / "runs" / "bad-1" / "gates"
    assert result.report.name.startswith("silver.orders.")
    report = json.loads(result.report.read_text())
    failed = [c for c in report["checks"] if c["outcome"] == "failed"]
    assert [(c["name"], c["measured"]) for c in failed] == [("o_totalprice is at least 0", negative)]


def test_contract_referencing_a_missing_column_could_not_run(
    verify: Verify, contracts: dict[str, Path], lakehouse: Lakehouse, tmp_path: Path
) -> None:
    contract = tmp_path / "orders.yml"
    contract.write_text(
        contracts["silver.orders"].read_text()
        + "- name: o_discount\n  checks:\n  - invalid:\n      valid_min: 0\n"
    )
    snapshot = main_snapshot(lakehouse, "silver.orders")

    result = verify(lakehouse.catalog, "silver.orders", snapshot, [lakehouse.busy_day], contract=contract)

    assert not result.passed
    assert result.errors
    assert any("o_discount" in e for e in result.errors)
    with pytest.raises(CheckCouldNotRun, match=r"silver.orders.*errors:"):
        require_pass(result)


def test_contract_of_another_dataset_could_not_run(
    verify: Verify, contracts: dict[str, Path], lakehouse: Lakehouse
) -> None:
    snapshot = main_snapshot(lakehouse, "silver.orders")
    result = verify(lakehouse.catalog, "silver.orders", snapshot, None, contract=contracts["silver.customer"])
    assert not result.passed
    assert result.checks == ()
    assert "lakehouse/silver/customer" in result.errors[0]
    with pytest.raises(CheckCouldNotRun):
        require_pass(result)


def test_empty_batch_fails(verify: Verify, lakehouse: Lakehouse) -> None:
    snapshot = main_snapshot(lakehouse, "silver.orders")
    result = verify(lakehouse.catalog, "silver.orders", snapshot, [date(1980, 1, 1)])
    assert not result.passed
    assert result.errors == ()
    assert check(result, "Row count meets expected threshold").measured == 0
    with pytest.raises(QualityGateFailed, match="Row count meets expected threshold: measured 0"):
        require_pass(result)


def test_table_without_snapshot_fails_as_empty(verify: Verify, lakehouse: Lakehouse) -> None:
    result = verify(lakehouse.catalog, "silver.orders", None, None)
    assert not result.passed
    assert check(result, "Row count meets expected threshold").outcome == "failed"
    assert result.errors == ()


def test_quarantine_share_is_checked_against_a_variable_threshold(
    verify: Verify, lakehouse: Lakehouse
) -> None:
    day = date(2030, 2, 1)
    kept = batch_of(lakehouse, "orders", "o_orderkey <= 40", day, o_orderkey="o_orderkey + 20000000")
    snapshot = on_branch(lakehouse, "silver.orders", kept)
    columns = ", ".join(TABLES["orders"].column_names)
    rejected = lakehouse.batch_rows(
        "quarantine.orders",
        f"SELECT {columns}, 'negative price' AS _rule, DATE '{day}' AS _batch_date, "
        f"_source_file, _row_number, _run_id, _loaded_at FROM ({bronze_sql('orders')}) LIMIT 4",
    )
    quarantined = on_branch(lakehouse, "quarantine.orders", rejected)
    share = 4 / (4 + kept.num_rows)

    strict = verify(
        lakehouse.catalog, "silver.orders", snapshot, [day], references={"quarantine.orders": quarantined}
    )
    lenient = verify(
        lakehouse.catalog,
        "silver.orders",
        snapshot,
        [day],
        references={"quarantine.orders": quarantined},
        variables={"max_quarantine_share": "0.5"},
    )

    gate = check(strict, "Share of the batch sent to quarantine")
    assert (gate.outcome, gate.measured, gate.threshold) == ("failed", pytest.approx(share), "≤ 0.05")
    assert strict.references["quarantine.orders"] == quarantined
    assert check(lenient, "Share of the batch sent to quarantine").threshold == "≤ 0.5"
    assert lenient.passed


def test_stale_load_fails_freshness(verify: Verify, lakehouse: Lakehouse) -> None:
    rows = batch_of(
        lakehouse,
        "orders",
        "o_orderkey <= 20",
        _loaded_at="now() - INTERVAL 3 DAY",
        o_orderkey="o_orderkey + 3e7",
    )
    result = verify(
        lakehouse.catalog, "silver.orders", on_branch(lakehouse, "silver.orders", rows), [NEW_DAY]
    )
    fresh = check(result, "Batch loaded less than 24 hours ago")
    assert fresh.outcome == "failed"
    assert fresh.measured is not None and 71 < fresh.measured < 73
    assert [c.name for c in result.failed_checks] == [fresh.name]


def test_broken_references_and_duplicates_show_failing_rows(verify: Verify, lakehouse: Lakehouse) -> None:
    rows = batch_of(
        lakehouse,
        "lineitem",
        "l_orderkey IN (SELECT min(o_orderkey) FROM orders)",
        l_orderkey="99999999",
        l_suppkey="CASE WHEN l_linenumber = 1 THEN 99 ELSE l_suppkey END",
    )
    duplicated = pa.concat_tables([rows, rows.filter(pc.equal(rows["l_linenumber"], 1))])
    result = verify(
        lakehouse.catalog, "silver.lineitem", on_branch(lakehouse, "silver.lineitem", duplicated), [NEW_DAY]
    )

    assert {c.name for c in result.failed_checks} == {
        "l_orderkey exists in silver.orders",
        "l_suppkey exists in silver.supplier",
        "(l_partkey, l_suppkey) exists in silver.partsupp",
        "(l_orderkey, l_linenumber) is unique",
    }
    orders = check(result, "l_orderkey exists in silver.orders")
    assert orders.measured == duplicated.num_rows
    assert orders.failed_rows is not None
    assert orders.failed_rows.columns == (
        "l_orderkey",
        "l_linenumber",
        "_batch_date",
        "_source_file",
        "_row_number",
    )
    assert {row[0] for row in orders.failed_rows.rows} == {"99999999"}
    unique = check(result, "(l_orderkey, l_linenumber) is unique")
    assert unique.failed_rows is not None
    assert unique.failed_rows.columns == ("l_orderkey", "l_linenumber", "copies")
    assert unique.failed_rows.rows == (("99999999", "1", "2"),)
    partsupp = check(result, "(l_partkey, l_suppkey) exists in silver.partsupp")
    assert partsupp.failed_rows is not None
    assert partsupp.failed_rows.rows[0][3] == "99"


def test_references_to_facts_are_read_in_the_audited_batches_only(
    verify: Verify, lakehouse: Lakehouse
) -> None:
    # Line items of an order landed earlier, now landed on their own: silver rejects them (facts land
    # with their parents' batch), and so does the gate, which reads silver.orders of NEW_DAY only.
    first_order = "(SELECT min(o_orderkey) FROM orders)"
    lines = on_branch(
        lakehouse, "silver.lineitem", batch_of(lakehouse, "lineitem", f"l_orderkey = {first_order}")
    )
    alone = verify(lakehouse.catalog, "silver.lineitem", lines, [NEW_DAY])
    assert [c.name for c in alone.failed_checks] == ["l_orderkey exists in silver.orders"]

    order = on_branch(
        lakehouse, "silver.orders", batch_of(lakehouse, "orders", f"o_orderkey = {first_order}")
    )
    with_order = verify(
        lakehouse.catalog, "silver.lineitem", lines, [NEW_DAY], references={"silver.orders": order}
    )
    # silver.supplier, part and partsupp are not partitioned by batch: read whole, they still match.
    assert with_order.failed_checks == ()
    assert with_order.passed


def test_schema_problems_are_listed(
    verify: Verify, contracts: dict[str, Path], lakehouse: Lakehouse, tmp_path: Path
) -> None:
    contract = tmp_path / "region.yml"
    contract.write_text(
        contracts["silver.region"].read_text().replace("data_type: varchar", "data_type: date", 1)
    )
    snapshot = main_snapshot(lakehouse, "silver.region")
    result = verify(lakehouse.catalog, "silver.region", snapshot, None, contract=contract)
    schema = check(result, "Schema matches expected structure")
    assert schema.outcome == "failed"
    assert schema.failed_rows is not None
    assert schema.failed_rows.rows == (("data type", "r_name", "date", "varchar"),)
