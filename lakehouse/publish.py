"""Write-audit-publish on Iceberg branches.

A write goes to branch ``audit-<run id>`` cut from ``main``; the audit runs on the branch's
snapshot; ``main`` is moved to that snapshot only if it has not moved since the branch was cut
(the commit asserts it), then the branch is removed. A conflict rewrites on the new ``main``.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeAlias

from pyiceberg.exceptions import CommitFailedException
from pyiceberg.expressions import BooleanExpression
from pyiceberg.manifest import DataFile
from pyiceberg.serializers import FromInputFile
from pyiceberg.table import Table
from pyiceberg.table.refs import SnapshotRefType

from lakehouse.batches import format_ranges, parse_ranges
from lakehouse.engines import DataFiles, Written, register_files, write_rows
from lakehouse.errors import CommitConflictError, LakehouseError, WarehouseError
from lakehouse.faults import (
    PUBLISH_COMMITTED,
    STAGE_BRANCH_CUT,
    STAGE_COMMITTED,
    STAGE_FILES_WRITTEN,
    WAP_AUDITED,
    WAP_HOOK_DONE,
    fault_point,
)
from lakehouse.tables import PROP_BATCHES, PROP_PROMOTED

log = logging.getLogger(__name__)

AUDIT_BRANCH_PREFIX = "audit-"
MAX_ATTEMPTS = 4
DEFAULT_STALE_BRANCH_AGE = timedelta(hours=1)
"""An audit branch older than this belongs to a run that died (``Settings.stale_branch_age``)."""


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
    """A new audit branch name for one write of a run (writes of one run may run concurrently)."""
    return f"{AUDIT_BRANCH_PREFIX}{run_id}-{secrets.token_hex(4)}"


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


@contextlib.contextmanager
def storage(name: str) -> Iterator[None]:
    """Raise the storage refusing a write (``OSError``: disk full, permission) as :class:`WarehouseError`."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise WarehouseError(f"{name}: the warehouse refused a write: {reason}") from exc


@contextlib.contextmanager
def _staging(table: Table, branch: str) -> Iterator[None]:
    """Raise what failed while staging on ``branch`` as a clear error, removing the branch (best effort).

    pyiceberg retries a snapshot commit itself; when it gives up, :class:`CommitConflictError` is
    raised, so the step is retried like any conflict. A storage error becomes
    :class:`WarehouseError`. ``main`` is never touched by staging.
    """
    try:
        with storage(table_id(table)):
            yield
    except CommitFailedException as exc:
        with contextlib.suppress(CommitFailedException, OSError):
            _drop_branch(table, branch)
        raise CommitConflictError(f"{table_id(table)}: concurrent commits while staging: {exc}") from exc
    except WarehouseError:
        with contextlib.suppress(CommitFailedException, OSError):
            _drop_branch(table, branch)
        raise


Data: TypeAlias = Written | Callable[[int], Written]
"""Rows or data files to write, or a function computing them from the ``main`` snapshot id the branch
is cut from (for writes derived from the table itself, such as merges: a retry recomputes them)."""


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

    Raises:
        LakehouseError: if the table has no snapshot to cut a branch from.
        CommitConflictError: if concurrent commits kept the branch commits from landing (the branch
            is removed; retrying is safe).

    """
    _drop_branch(table, branch)  # a leftover of an interrupted attempt of this run
    base = table.current_snapshot()
    if base is None:
        raise LakehouseError(f"{table_id(table)} has no snapshot to cut an audit branch from")
    base_id = base.snapshot_id
    with _staging(table, branch):
        table.manage_snapshots().create_branch(base_id, branch).commit()
    fault_point(STAGE_BRANCH_CUT)
    batches = parse_ranges(properties.get(PROP_BATCHES))
    done = parse_ranges(base.summary.additional_properties.get(PROP_PROMOTED)) if base.summary else set()
    props = {**properties, PROP_PROMOTED: format_ranges(done | batches)}
    with _staging(table, branch):
        written = data(base_id) if callable(data) else data
        files = written if isinstance(written, DataFiles) else write_rows(table, written)
    with _staging(table, branch), table.transaction() as tx:
        register_files(tx, files, replace=replace, branch=branch, properties=props)
        fault_point(STAGE_FILES_WRITTEN)  # data files and manifests written; the transaction commits on exit
    table.refresh()
    fault_point(STAGE_COMMITTED)
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
        with storage(staged.table):
            table.manage_snapshots().set_current_snapshot(snapshot_id=staged.snapshot_id).remove_branch(
                staged.branch
            ).commit()
    except CommitFailedException as exc:
        raise CommitConflictError(f"{staged.table}: main moved during publish") from exc
    fault_point(PUBLISH_COMMITTED)


def discard(table: Table, staged: Staged) -> None:
    """Remove the audit branch of a write that will not be published.

    If the storage refuses (e.g. the disk is full), the branch is left for stale-branch removal
    with a warning: the error that made the write fail is the one to report.
    """
    try:
        _drop_branch(table, staged.branch)
    except OSError as exc:
        log.warning(
            "%s: cannot remove audit branch %s now (%s): stale-branch removal will",
            staged.table,
            staged.branch,
            exc,
        )


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
    return publish_audited(
        table,
        lambda: stage(table, data, replace=replace, branch=branch, properties=properties),
        audit=audit,
        before_publish=before_publish,
        max_attempts=max_attempts,
    )


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
        CommitConflictError: if concurrent commits kept the branch commits from landing (the branch
            is removed; retrying is safe).

    """
    _drop_branch(table, branch)  # a leftover of an interrupted attempt of this run
    base = table.current_snapshot()
    if base is None:
        raise LakehouseError(f"{table_id(table)} has no snapshot to cut an audit branch from")
    with _staging(table, branch):
        changes = plan(table, base.snapshot_id)
    with _staging(table, branch):
        table.manage_snapshots().create_branch(base.snapshot_id, branch).commit()
    fault_point(STAGE_BRANCH_CUT)
    batches = parse_ranges(properties.get(PROP_BATCHES))
    done = parse_ranges(base.summary.additional_properties.get(PROP_PROMOTED)) if base.summary else set()
    props = {**properties, PROP_PROMOTED: format_ranges(done | batches)}
    with _staging(table, branch), table.transaction() as tx:
        with tx.update_snapshot(snapshot_properties=props, branch=branch).overwrite() as ow:
            for deleted in changes.deleted:
                ow.delete_data_file(deleted)
            for added in changes.added:
                ow.append_data_file(added)
        fault_point(STAGE_FILES_WRITTEN)  # manifests written on the producer's exit; the commit is next
    table.refresh()
    fault_point(STAGE_COMMITTED)
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
            fault_point(WAP_AUDITED)
            if before_publish is not None:
                before_publish()
                fault_point(WAP_HOOK_DONE)
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


def _branch_since_ms(table: Table, branch: str, cutoff_ms: int) -> int:
    """When ``branch`` (as it is now) appeared in the table metadata, looked up no further back than needed.

    A branch is cut from ``main``'s current snapshot, which may be days old: its head alone does not
    tell a branch cut a second ago from one left by a run that died. The metadata log does: walking
    it back from the newest file, the branch appeared after the last file that lacks it. The walk
    stops as soon as the branch is known to exist before ``cutoff_ms``. An unreadable or truncated
    log gives a later time than the real one, so an uncertain branch is kept, never removed.
    """
    since = table.metadata.last_updated_ms
    for entry in reversed(table.metadata.metadata_log):
        if since < cutoff_ms:
            break
        try:
            metadata = FromInputFile.table_metadata(table.io.new_input(entry.metadata_file))
        except (OSError, ValueError):
            log.warning("%s: cannot read %s to date branch %s", table_id(table), entry.metadata_file, branch)
            break
        ref = metadata.refs.get(branch)
        if ref is None or ref.snapshot_ref_type != SnapshotRefType.BRANCH:
            break
        since = entry.timestamp_ms
    return since


def stale_branches(table: Table, older_than: timedelta, *, now: datetime | None = None) -> list[str]:
    """The ``audit-*`` branches of ``table`` left by runs that died: older than ``older_than``.

    A branch is stale when both its head snapshot and its creation (from the metadata log) are older
    than ``older_than``; the branch of a run in flight is younger. ``older_than`` must exceed the
    longest write-audit-publish of one table (staging, audit and publish).
    """
    cutoff_ms = int(((now or datetime.now(UTC)) - older_than).timestamp() * 1000)
    stale = []
    for name, ref in sorted(table.metadata.refs.items()):
        if not name.startswith(AUDIT_BRANCH_PREFIX) or ref.snapshot_ref_type != SnapshotRefType.BRANCH:
            continue
        head = table.metadata.snapshot_by_id(ref.snapshot_id)
        if head is not None and head.timestamp_ms >= cutoff_ms:
            continue
        if _branch_since_ms(table, name, cutoff_ms) >= cutoff_ms:
            continue
        stale.append(name)
    return stale


def remove_stale_branches(
    table: Table, older_than: timedelta, *, now: datetime | None = None, max_attempts: int = MAX_ATTEMPTS
) -> list[str]:
    """Remove the ``audit-*`` branches left by runs that died (:func:`stale_branches`); returns their names.

    A run killed mid-write leaves its audit branch behind, and the branch keeps its staged snapshot
    and files alive. Removing it is one metadata commit (``main`` is untouched); the snapshot then
    goes with snapshot expiry and its files with it (or with orphan-file removal). With
    ``older_than=timedelta(0)`` every audit branch goes: only when no run is in flight.

    Raises:
        CommitConflictError: if concurrent commits made every attempt fail (nothing was removed by
            the failed attempts; running it again is safe).

    """
    for attempt in range(1, max_attempts + 1):
        table.refresh()
        stale = stale_branches(table, older_than, now=now)
        if not stale:
            return []
        update = table.manage_snapshots()
        for name in stale:
            update = update.remove_branch(name)
        try:
            update.commit()
        except CommitFailedException:
            log.warning(
                "%s: concurrent commit while removing stale branches (attempt %d/%d)",
                table_id(table),
                attempt,
                max_attempts,
            )
            continue
        log.info("%s: removed %d stale audit branch(es): %s", table_id(table), len(stale), ", ".join(stale))
        return stale
    raise CommitConflictError(f"{table_id(table)}: stale branches conflicting after {max_attempts} attempts")
