"""The quality gate as the pipeline's audit: verify, report, publish an artifact, pass or raise."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from checks.gate import audit, require_pass
from checks.report import render_markdown
from checks.result import GateResult
from lakehouse.pipeline import AuditRequest, Lakehouse, StepAudit
from tasks import lineage
from tasks.artifacts import publish_markdown

log = logging.getLogger(__name__)


def quality_gate(
    lh: Lakehouse,
    contracts: Mapping[str, Path],
    reports_dir: Path,
    max_quarantine_share: float,
    results: list[GateResult],
) -> StepAudit:
    """An audit that verifies a staged write against its table's Soda contract (a file of ``contracts``).

    Every verification writes its JSON report under ``reports_dir``, is appended to ``results``,
    attached to the running lineage step (its OpenLineage data-quality facet) and published as a
    markdown artifact of the running task.

    Raises (from the returned callable):
        QualityGateFailed: if checks failed (never retried).
        CheckCouldNotRun: if the contract could not be fully evaluated (blocks promotion).
    """

    def verify(request: AuditRequest) -> None:
        result = audit(
            lh.catalog,
            request.table,
            request.snapshot_id,
            list(request.batches),
            variables={"max_quarantine_share": str(max_quarantine_share)},
            references=request.references,
            contract=contracts[request.table],
            reports_dir=reports_dir,
            run_id=lh.run.run_id,
        )
        results.append(result)
        lineage.record_gate(result)
        publish_markdown(
            render_markdown(result),
            name=f"gate-{request.table}",
            description=f"Quality gate of {request.table}",
        )
        log.info(
            "gate %s: %s (%d checks, %d failed) report %s",
            request.table,
            "passed" if result.passed else "FAILED",
            len(result.checks),
            len(result.failed_checks),
            result.report,
        )
        require_pass(result)

    return verify
