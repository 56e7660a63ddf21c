"""Reports of gate results as data (one JSON file per verification, one per run) and as markdown."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from checks.report import render_markdown, write_report, write_run
from checks.result import CheckOutcome, GateResult
from checks.samples import FailedRows

STARTED = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def result(table: str, passed: bool, run_id: str = "run-1", started: datetime = STARTED) -> GateResult:
    checks = [
        CheckOutcome("Row count meets expected threshold", "row_count", None, "passed", "> 0", 7),
    ]
    if not passed:
        checks.append(
            CheckOutcome(
                "o_totalprice is not negative",
                "invalid",
                "o_totalprice",
                "failed",
                "= 0",
                6,
                {"invalid_percent": 85.7},
                FailedRows(("o_totalprice", "o_orderkey"), (("-12.50", "1"), ("<b>", None))),
            )
        )
    return GateResult(
        table=table,
        contract=Path(".lakehouse/contracts/silver/orders.yml"),
        snapshot_id=42,
        batches=(date(2024, 1, 2),),
        passed=passed,
        checks=tuple(checks),
        errors=(),
        started=started,
        finished=started + timedelta(milliseconds=120),
        run_id=run_id,
        references={"silver.customer": 7},
        variables={"max_quarantine_share": "0.05"},
    )


def test_every_verification_of_a_run_is_written_as_its_own_json_file(tmp_path: Path) -> None:
    path = write_report(result("silver.orders", passed=False, run_id="new/run"), tmp_path)
    later = write_report(
        result("silver.orders", passed=True, run_id="new/run", started=STARTED + timedelta(minutes=1)),
        tmp_path,
    )

    assert path.parent == later.parent == tmp_path / "runs" / "new_run" / "gates"
    assert path.name == "silver.orders.20260304T050607000000Z.json" and later != path
    data = json.loads(path.read_text())
    assert data["passed"] is False and json.loads(later.read_text())["passed"] is True
    assert data["batches"] == ["2024-01-02"]
    failed = data["checks"][1]
    assert (failed["name"], failed["outcome"], failed["threshold"], failed["measured"]) == (
        "o_totalprice is not negative",
        "failed",
        "= 0",
        6,
    )
    assert failed["failed_rows"] == {
        "columns": ["o_totalprice", "o_orderkey"],
        "rows": [["-12.50", "1"], ["<b>", None]],
    }


def test_the_run_record_goes_beside_its_verifications(tmp_path: Path) -> None:
    path = write_run({"run_id": "new/run", "flow": "daily", "started": STARTED}, tmp_path)
    assert path == tmp_path / "runs" / "new_run" / "run.json"
    assert json.loads(path.read_text()) == {"run_id": "new/run", "flow": "daily", "started": str(STARTED)}


def test_markdown_lists_failed_checks_first() -> None:
    text = render_markdown(result("silver.orders", passed=False))
    lines = text.splitlines()
    assert lines[0].startswith(
        "**silver.orders** snapshot `42` (2024-01-02): ❌ not passed — 2 checks, 1 failed"
    )
    assert lines[2] == "| Outcome | Check | Threshold | Measured |"
    assert lines[4] == "| ❌ failed | o_totalprice: o_totalprice is not negative | = 0 | 6 |"
    assert lines[5] == "| ✅ passed | Row count meets expected threshold | > 0 | 7 |"
