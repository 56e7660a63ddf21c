"""Write-audit-publish on Iceberg branches.

A write goes to branch ``audit-<run id>`` cut from ``main``; the audit runs on the branch's
snapshot; ``main`` is moved to that snapshot only if it has not moved since the branch was cut
(the commit asserts it), then the branch is removed. A conflict rewrites on the new ``main``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

import pyarrow as pa
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.expressions import AlwaysTrue, BooleanExpression
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table

from lakehouse.batches import format_ranges, parse_ranges
from lakehouse.errors import CommitConflictError, LakehouseError
from lakehouse.tables import PROP_BATCHES, PROP_PROMOTED

log = logging.getLogger(__name__)

AUDIT_BRANCH_PREFIX = "audit-"
MAX_ATTEMPTS = 4


@dataclass(frozen=True)
class Staged:
    """A write committed to an audit branch, not yet on ``main``."""

    table: str
    branch: str
    base_snapshot_id: int  # main when the branch was cut
    snapshot_id: int  # the branch head to audit and publish


Audit = Callable[[Table, Staged], None]
"""Verifies a staged write; raises to reject it (``main`` is then left untouched)."""


def table_id(table: Table) -> str:
    """``namespace.table`` of a loaded table."""
    return ".".join(table.name())


def audit_branch(run_id: str) -> str:
    """The name of a run's audit branch."""
    return f"{AUDIT_BRANCH_PREFIX}{run_id}"


def promoted(table: Table) -> set[str]:
    """Batch dates (ISO) already published on ``main``, from its current snapshot summary."""
    snapshot = table.current_snapshot()
    if snapshot is None or snapshot.summary is None:
        return set()
    return {d.isoformat() for d in parse_ranges(snapshot.summary.additional_properties.get(PROP_PROMOTED))}


def _drop_branch(table: Table, branch: str) -> None:
    table.refresh()
    if branch in table.metadata.refs:
        table.manage_snapshots().remove_branch(branch).commit()


Data: TypeAlias = pa.Table | Callable[[int], pa.Table]
"""Rows to write, or a function computing them from the ``main`` snapshot id the branch is cut from
(for writes derived from the table itself, such as merges: a retry recomputes them)."""


def stage(
    table: Table,
    data: Data,
    *,
    replace: BooleanExpression,
    branch: str,
    properties: dict[str, str],
) -> Staged:
    """Commit ``data`` to ``branch`` cut from the current ``main``, replacing rows matching ``replace``.

    The snapshot is stamped with ``properties`` plus the cumulative promoted batch set.
    """
    _drop_branch(table, branch)  # a leftover of an interrupted attempt of this run
    base = table.current_snapshot()
    if base is None:
        raise LakehouseError(f"{table_id(table)} has no snapshot to cut an audit branch from")
    base_id = base.snapshot_id
    table.manage_snapshots().create_branch(base_id, branch).commit()
    batches = parse_ranges(properties.get(PROP_BATCHES))
    done = parse_ranges(base.summary.additional_properties.get(PROP_PROMOTED)) if base.summary else set()
    props = {**properties, PROP_PROMOTED: format_ranges(done | batches)}
    if callable(data):
        data = data(base_id)
    with table.transaction() as tx, warnings.catch_warnings():
        # A first load of a batch replaces nothing; pyiceberg warns about that, which is expected.
        warnings.filterwarnings("ignore", "Delete operation did not match any records", UserWarning)
        if isinstance(replace, AlwaysTrue):
            tx.overwrite(data, snapshot_properties=props, branch=branch)
        else:
            tx.overwrite(data, overwrite_filter=replace, snapshot_properties=props, branch=branch)
    table.refresh()
    return Staged(table_id(table), branch, base_id, table.metadata.refs[branch].snapshot_id)


def publish(table: Table, staged: Staged) -> None:
    """Move ``main`` to the staged snapshot and remove the audit branch, atomically.

    Raises:
        CommitConflictError: if ``main`` moved since the branch was cut (nothing is published).

    """
    table.refresh()
    current = table.current_snapshot()
    if (current.snapshot_id if current else None) != staged.base_snapshot_id:
        raise CommitConflictError(f"{staged.table}: main moved since the audit branch was cut")
    try:
        table.manage_snapshots().set_current_snapshot(snapshot_id=staged.snapshot_id).remove_branch(
            staged.branch
        ).commit()
    except CommitFailedException as exc:
        raise CommitConflictError(f"{staged.table}: main moved during publish") from exc


def discard(table: Table, staged: Staged) -> None:
    """Remove the audit branch of a write that will not be published."""
    _drop_branch(table, staged.branch)


def write_audited(
    table: Table,
    data: Data,
    *,
    replace: BooleanExpression,
    branch: str,
    properties: dict[str, str],
    audit: Audit | None,
    before_publish: Callable[[], None] | None = None,
    max_attempts: int = MAX_ATTEMPTS,
) -> Staged:
    """Write-audit-publish ``data``; returns the published write.

    ``before_publish`` runs after a passing audit and before ``main`` moves (e.g. to write the
    quarantine rows of the same batch). A conflict with a concurrent commit restarts the write on
    the new ``main``, up to ``max_attempts`` times.

    Raises:
        CommitConflictError: if every attempt met a concurrent commit.
        Exception: whatever ``audit`` raises; the branch is removed and ``main`` is untouched.

    """
    for attempt in range(1, max_attempts + 1):
        staged = stage(table, data, replace=replace, branch=branch, properties=properties)
        try:
            if audit is not None:
                audit(table, staged)
            if before_publish is not None:
                before_publish()
            publish(table, staged)
            return staged
        except CommitConflictError:
            discard(table, staged)
            log.warning(
                "%s: concurrent commit, retrying (attempt %d/%d)", staged.table, attempt, max_attempts
            )
        except BaseException:
            discard(table, staged)
            raise
    raise CommitConflictError(f"{table_id(table)}: still conflicting after {max_attempts} attempts")


@dataclass(frozen=True)
class FileChanges:
    """Data files one commit removes from a table and adds to it (a copy-on-write rewrite)."""

    deleted: tuple[DataFile, ...] = ()
    added: tuple[DataFile, ...] = ()


FilePlan = Callable[[Table, int], FileChanges]
"""Computes a change against snapshot ``base`` of the table, writes its new data files, returns both lists."""


def stage_files(table: Table, plan: FilePlan, *, branch: str, properties: dict[str, str]) -> Staged:
    """Commit ``plan``'s file changes to ``branch`` cut from the current ``main``, as one snapshot.

    ``plan`` runs against the ``main`` snapshot the branch is cut from, so the files it deletes are
    live there. The snapshot is stamped with ``properties`` plus the cumulative promoted batch set,
    as :func:`stage` does; a plan with no change still commits a snapshot (and so stamps it).

    Raises:
        LakehouseError: if the table has no snapshot to cut a branch from.
        ValidationException: if a file ``plan`` deletes is not live on ``main`` (pyiceberg's).

    """
    _drop_branch(table, branch)  # a leftover of an interrupted attempt of this run
    base = table.current_snapshot()
    if base is None:
        raise LakehouseError(f"{table_id(table)} has no snapshot to cut an audit branch from")
    changes = plan(table, base.snapshot_id)
    table.manage_snapshots().create_branch(base.snapshot_id, branch).commit()
    batches = parse_ranges(properties.get(PROP_BATCHES))
    done = parse_ranges(base.summary.additional_properties.get(PROP_PROMOTED)) if base.summary else set()
    props = {**properties, PROP_PROMOTED: format_ranges(done | batches)}
    with (
        table.transaction() as tx,
        tx.update_snapshot(snapshot_properties=props, branch=branch).overwrite() as ow,
    ):
        for deleted in changes.deleted:
            ow.delete_data_file(deleted)
        for added in changes.added:
            ow.append_data_file(added)
    table.refresh()
    return Staged(table_id(table), branch, base.snapshot_id, table.metadata.refs[branch].snapshot_id)


def publish_audited(
    table: Table,
    stage_once: Callable[[], Staged],
    *,
    audit: Audit | None,
    before_publish: Callable[[], None] | None = None,
    max_attempts: int = MAX_ATTEMPTS,
) -> Staged:
    """Stage with ``stage_once``, audit, publish; restart from staging on a concurrent commit.

    The loop of :func:`write_audited` for any way of staging (e.g. ``stage_files`` with a plan
    that recomputes its change on the new ``main``). Data files written by an attempt that is not
    published stay on disk until orphan-file removal.

    Raises:
        CommitConflictError: if every attempt met a concurrent commit.
        Exception: whatever ``stage_once`` or ``audit`` raises; the branch is removed and ``main``
            is untouched.

    """
    for attempt in range(1, max_attempts + 1):
        staged = stage_once()
        try:
            if audit is not None:
                audit(table, staged)
            if before_publish is not None:
                before_publish()
            publish(table, staged)
            return staged
        except CommitConflictError:
            discard(table, staged)
            log.warning(
                "%s: concurrent commit, retrying (attempt %d/%d)", staged.table, attempt, max_attempts
            )
        except BaseException:
            discard(table, staged)
            raise
    raise CommitConflictError(f"{table_id(table)}: still conflicting after {max_attempts} attempts")
