"""Reports of gate results: JSON, self-contained HTML, the index of runs and markdown."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from checks.report import render_markdown, write_index, write_reports
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
        contract=Path("checks/contracts/silver/orders.yml"),
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


def test_json_and_html_are_written_under_run_date_and_run_id(tmp_path: Path) -> None:
    files = write_reports(result("silver.orders", passed=False), tmp_path)

    assert files.json == tmp_path / "2026-03-04" / "run-1" / "silver.orders.json"
    data = json.loads(files.json.read_text())
    assert data["passed"] is False
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

    page = files.html.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"<script|<link|src=|https?://", page)
    assert "o_totalprice: o_totalprice is not negative" in page
    assert "<td>-12.50</td>" in page
    assert "&lt;b&gt;" in page and "<b>" not in page


def test_index_lists_runs_newest_first_with_pass_fail_per_table(tmp_path: Path) -> None:
    write_reports(result("silver.orders", passed=True, run_id="old"), tmp_path)
    later = STARTED + timedelta(days=1)
    write_reports(result("silver.orders", passed=False, run_id="new/run", started=later), tmp_path)
    write_reports(result("silver.customer", passed=True, run_id="new/run", started=later), tmp_path)

    page = (tmp_path / "index.html").read_text()
    assert page.index("2026-03-05 · run new_run") < page.index("2026-03-04 · run old")
    assert (
        '<a href="2026-03-05/new_run/silver.orders.html">silver.orders</a></td><td class="failed">failed'
        in page
    )
    assert (
        '<a href="2026-03-05/new_run/silver.customer.html">silver.customer</a></td><td class="passed">'
        in page
    )
    assert "2 tables, 1 not passed" in page
    assert "1 tables, all passed" in page


def test_index_of_an_empty_directory_says_so(tmp_path: Path) -> None:
    assert "No reports yet." in write_index(tmp_path).read_text()


def test_markdown_lists_failed_checks_first() -> None:
    text = render_markdown(result("silver.orders", passed=False))
    lines = text.splitlines()
    assert lines[0].startswith(
        "**silver.orders** snapshot `42` (2024-01-02): ❌ not passed — 2 checks, 1 failed"
    )
    assert lines[2] == "| Outcome | Check | Threshold | Measured |"
    assert lines[4] == "| ❌ failed | o_totalprice: o_totalprice is not negative | = 0 | 6 |"
    assert lines[5] == "| ✅ passed | Row count meets expected threshold | > 0 | 7 |"
