"""The steps of a run: landing → bronze → silver (+ quarantine) → gold, each an audited write.

Each step reads what it needs through the catalog, runs pure transforms, and commits once through
:func:`lakehouse.publish.write_audited`. Knows nothing of Prefect or Soda: the audit is passed in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import narwhals.stable.v2 as nw
import polars as pl
import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.table import Table
from pyiceberg.table.snapshots import ancestors_of

from lakehouse.batches import format_ranges
from lakehouse.engines import DataFiles, Engine, FrameT, Written, data_directory, shape, write_data_file
from lakehouse.errors import CommitConflictError, ModelError
from lakehouse.files import batch_filter
from lakehouse.landing import LandedFile, LandingZone
from lakehouse.merge import MergeData, MergeResult, merge
from lakehouse.publish import (
    Data,
    Staged,
    audit_branch,
    discard,
    promoted,
    publish,
    stage,
    storage,
    write_audited,
)
from lakehouse.readers import read_landed_files
from lakehouse.registry import Model, Registry
from lakehouse.router import Decision, Router, Work, table_work
from lakehouse.schema import evolve
from lakehouse.settings import EngineChoice
from lakehouse.spec import SourceTable
from lakehouse.tables import (
    BATCH_DATE,
    BRONZE,
    ERROR,
    LOADED_AT,
    PROP_BATCHES,
    PROP_CODE_VERSION,
    PROP_ENGINE,
    PROP_ENGINE_REASON,
    PROP_FLOW,
    PROP_INPUTS,
    PROP_RUN_ID,
    PROP_TASK,
    QUARANTINE,
    ROW_NUMBER,
    RULE,
    RUN_ID,
    SILVER,
    SOURCE_FILE,
    bronze_table,
)
from lakehouse.transforms import scd2
from lakehouse.transforms.frames import lazy
from lakehouse.transforms.silver import Conformed, conform, merge_latest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuditRequest:
    """A staged write to verify.

    Carries the snapshot, its batches, the step's row counts, and the snapshots to read for other
    tables the check needs (e.g. the staged quarantine rows).
    """

    table: str
    snapshot_id: int
    batches: tuple[date, ...]
    counts: Mapping[str, int]
    references: Mapping[str, int]


StepAudit = Callable[[AuditRequest], None]
"""Verifies a staged write; raises to reject it (``main`` is then left untouched)."""


@dataclass(frozen=True)
class RunInfo:
    """Who is writing: stamped on every snapshot a run commits."""

    run_id: str
    flow: str
    code_version: str
    engine: EngineChoice = "polars"  # the run's --engine; each snapshot is stamped with its step's pick


@dataclass(frozen=True)
class Lakehouse:
    """What every step needs: the catalog, the declared sources, the landing zone, the run, its router."""

    catalog: Catalog
    registry: Registry
    landing: str  # the landing zone's URI: each source lands under <landing>/<source>/
    run: RunInfo
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    router: Router = field(default_factory=Router)
    _zones: dict[str, LandingZone] = field(default_factory=dict, compare=False, repr=False)

    def table(self, table_id: str) -> Table:
        """Load a table by identifier."""
        return self.catalog.load_table(table_id)

    def zone(self, source: str) -> LandingZone:
        """The landing zone of ``source`` (one per run, so each skipped entry is warned about once)."""
        if source not in self._zones:
            self._zones[source] = LandingZone(self.landing, self.registry.sources[source])
        return self._zones[source]

    def properties(self, batches: list[date]) -> dict[str, str]:
        """Snapshot summary properties for a commit covering ``batches`` (and the step: :func:`stamping`)."""
        decision = _DECISION.get()
        return {
            PROP_RUN_ID: self.run.run_id,
            PROP_FLOW: self.run.flow,
            PROP_BATCHES: format_ranges(batches),
            PROP_ENGINE: self.run.engine if decision is None else decision.engine,
            **({} if decision is None else {PROP_ENGINE_REASON: decision.reason}),
            PROP_CODE_VERSION: self.run.code_version,
            **(_STAMP.get() or {}),
        }

    def constants(self) -> dict[str, object]:
        """The load-metadata columns every row a run writes gets (tables lacking one ignore it)."""
        return {RUN_ID: self.run.run_id, LOADED_AT: self.loaded_at}


_STAMP: ContextVar[Mapping[str, str] | None] = ContextVar("lakehouse_step_stamp", default=None)
_DECISION: ContextVar[Decision | None] = ContextVar("lakehouse_engine_decision", default=None)


@contextmanager
def stamping(task: str, inputs: Mapping[str, int | None]) -> Iterator[None]:
    """Stamp the commits made inside with the step and what it read.

    ``lakehouse.task`` is the step; ``lakehouse.inputs`` lists ``name@snapshot`` (a bare name for a
    source without snapshots).
    """
    text = ",".join(name if snap is None else f"{name}@{snap}" for name, snap in sorted(inputs.items()))
    token = _STAMP.set({PROP_TASK: task, PROP_INPUTS: text})
    try:
        yield
    finally:
        _STAMP.reset(token)


@contextmanager
def _deciding(decision: Decision) -> Iterator[None]:
    """Stamp the commits made inside with the engine that computed them and why."""
    token = _DECISION.set(decision)
    try:
        yield
    finally:
        _DECISION.reset(token)


@contextmanager
def _routed(lh: Lakehouse, table_id: str, work: Work) -> Iterator[Engine[Any]]:
    """The engine the router picks for the step writing ``table_id``; its commits are stamped with it."""
    engine, decision = lh.router.route(table_id, work)
    try:
        with _deciding(decision):
            yield engine
    finally:
        lh.router.release(engine)


@dataclass(frozen=True)
class StepResult:
    """What a step did, for logs, artifacts and tests."""

    table: str
    batches: tuple[date, ...]
    rows_in: int = 0
    rows_out: int = 0
    quarantined: int = 0
    snapshot_id: int | None = None
    skipped: str | None = None  # why nothing was written


def on_main(lh: Lakehouse, result: StepResult) -> bool:
    """Whether the snapshot ``result`` wrote is in the history of its table's ``main``.

    A step's result is cached by its inputs; after ``lakehouse rollback`` moved ``main`` back past
    that snapshot (or once the snapshot expired), the result no longer describes the table, and the
    step must run again. A result that wrote nothing is always current.
    """
    if result.snapshot_id is None:
        return True
    table = lh.table(result.table)
    return any(
        s.snapshot_id == result.snapshot_id for s in ancestors_of(table.current_snapshot(), table.metadata)
    )


def _write(
    lh: Lakehouse,
    table: Table,
    data: Data,
    batches: list[date],
    *,
    replace_all: bool,
    audit: StepAudit | None,
    counts: Mapping[str, int],
    references: Mapping[str, int] | None = None,
    before_publish: Callable[[], None] | None = None,
) -> Staged:
    def verify(t: Table, staged: Staged) -> None:
        if audit is not None:
            audit(AuditRequest(staged.table, staged.snapshot_id, tuple(batches), counts, references or {}))

    return write_audited(
        table,
        data,
        replace=AlwaysTrue() if replace_all else batch_filter(batches),
        branch=audit_branch(lh.run.run_id),
        properties=lh.properties(batches),
        audit=verify,
        before_publish=before_publish,
    )


def _read(lh: Lakehouse, engine: Engine[FrameT], table_id: str, batches: list[date] | None = None) -> FrameT:
    return engine.read_table(lh.table(table_id), batches=batches)


def _work(lh: Lakehouse, table_ids: Iterable[str], batches: list[date]) -> Work:
    """The work of a step reading ``batches`` of ``table_ids``, from their manifests."""
    return sum((table_work(lh.table(t), batches) for t in table_ids), Work(0, 0))


BRONZE_DECISION = "landed files are parsed in process by the validating reader"

BRONZE_FILE_BYTES = 32 * 1024 * 1024
"""Landed bytes gathered into one bronze data file (a landed file larger than this gets its own)."""


def _bronze_groups(files: list[LandedFile], by_day: bool) -> list[list[LandedFile]]:
    """``files`` in runs of one partition (a month, or a day) holding at most :data:`BRONZE_FILE_BYTES`."""

    def partition(f: LandedFile) -> date:
        return f.batch if by_day else f.batch.replace(day=1)

    groups: list[list[LandedFile]] = []
    size = 0
    for landed_file in sorted(files, key=lambda f: (f.batch, f.uri)):
        same = bool(groups) and partition(groups[-1][0]) == partition(landed_file)
        if same and size + landed_file.size <= BRONZE_FILE_BYTES:
            groups[-1].append(landed_file)
            size += landed_file.size
        else:
            groups.append([landed_file])
            size = landed_file.size
    return groups


def load_bronze(lh: Lakehouse, table_id: str, batches: list[date], audit: StepAudit | None) -> StepResult:
    """Land the files of ``batches`` into the bronze table ``table_id``, replacing those batches.

    Every landed row is loaded, and a file that cannot be read as one row whose ``_error`` says
    why (see :mod:`lakehouse.readers`). Files are parsed always in process (the reader's rules,
    exact field counts, strict UTF-8, ..., are its own) and written as they are parsed: the files of
    a partition are gathered into groups of up to :data:`BRONZE_FILE_BYTES` landed bytes, read together
    (:func:`lakehouse.readers.read_landed_files`) into one data file, each encoded while the next
    is read: memory holds two such groups, not the batch. The data files are committed together.

    Raises:
        LandingError: if a landed file cannot be fetched (an I/O error, not its content).
        WarehouseError: if the warehouse refuses a write (``main`` is untouched).
        SchemaEvolutionError: if the bronze table predates ``_error`` and cannot take it.

    """
    spec = lh.registry.table(table_id)
    zone = lh.zone(spec.source)
    files = zone.files(spec.name, batches)
    if not files:
        return StepResult(table_id, tuple(batches), skipped="no landed files")
    if ERROR not in lh.table(table_id).schema().column_names:  # created before `_error` existed: add it
        evolve(lh.table(table_id), bronze_table(spec).schema)
    table = lh.table(table_id)
    directory = data_directory(table, "bronze")
    rows = unreadable = 0

    def write(frame: pl.DataFrame, path: str) -> str:
        with storage(table_id):
            return write_data_file(table, shape(table, frame.to_arrow(), lh.constants()), path)

    # A data file is encoded (one core) while the next group is parsed: memory holds two groups.
    writes: list[Future[str]] = []
    with ThreadPoolExecutor(1, thread_name_prefix="bronze-write") as writer:
        by_day = bronze_table(spec).partition == "batch_day"
        for number, group in enumerate(_bronze_groups(files, by_day)):
            batch = pl.col(SOURCE_FILE).replace_strict({f.uri: f.batch for f in group}, return_dtype=pl.Date)
            frame = read_landed_files(zone, group).with_columns(batch.alias(BATCH_DATE))
            rows += frame.height
            unreadable += frame.filter((pl.col(ROW_NUMBER) == 0) & pl.col(ERROR).is_not_null()).height
            if writes:
                writes[-1].result()  # the previous group is written (or its error raised) first
            if frame.height:
                path = f"{directory}/{group[0].batch.isoformat()}-{number:05d}.parquet"
                writes.append(writer.submit(write, frame, path))
            del frame
    paths = [w.result() for w in writes]
    landed = sorted({f.batch for f in files})
    counts = {"landed_rows": rows, "files": len(files), "unreadable_files": unreadable}
    decision = Decision("polars", BRONZE_DECISION, sum(f.size for f in files), None)
    with _deciding(decision):
        data = DataFiles(tuple(paths))
        staged = _write(lh, table, data, landed, replace_all=False, audit=audit, counts=counts)
    return StepResult(table_id, tuple(landed), rows, rows, 0, staged.snapshot_id)


def _parents(
    lh: Lakehouse, engine: Engine[FrameT], spec: SourceTable, batches: list[date]
) -> dict[str, FrameT]:
    """For each foreign key of ``spec`` (by its label), the parent's key columns."""
    source = lh.registry.sources[spec.source]
    parents = {}
    for reference in spec.references:
        parent = source.tables[reference.table]
        # Facts land with their parents' batch (a line item with its order): look in the same batches.
        scope = batches if parent.kind == "fact" else None
        frame = lazy(_read(lh, engine, parent.identifier(SILVER), scope)).select(*reference.key)
        parents[reference.label] = frame.to_native()
    return parents


def _conformed(
    lh: Lakehouse, engine: Engine[FrameT], spec: SourceTable, bronze: FrameT, batches: list[date]
) -> Conformed[FrameT]:
    """``bronze`` rows the reader could use, conformed by ``spec``'s rules (see :func:`conform`)."""
    usable = lazy(bronze).filter(nw.col(ERROR).is_null()).drop(ERROR).to_native()
    null_values = lh.registry.sources[spec.source].landing.null_values
    return conform(
        usable,
        spec,
        _parents(lh, engine, spec, batches),
        null_values=null_values,
        materialize=engine.materialize,
    )


def build_silver(lh: Lakehouse, table_id: str, batches: list[date], audit: StepAudit | None) -> StepResult:
    """Conform the bronze rows of ``batches`` into ``table_id`` (a silver table) and its quarantine table.

    Facts replace their batches; reference tables are merged by key (latest batch wins). The
    quarantine rows are published after the silver audit passes and before silver's ``main``
    moves, so a rerun after a crash converges. Runs on the engine the router picks for the
    bronze rows and parent keys it reads.
    """
    with _routed(lh, table_id, _work(lh, lh.registry.upstream(table_id), batches)) as engine:
        return _build_silver(lh, engine, lh.registry.table(table_id), batches, audit)


def _build_silver(
    lh: Lakehouse, engine: Engine[FrameT], spec: SourceTable, batches: list[date], audit: StepAudit | None
) -> StepResult:
    table_id = spec.identifier(SILVER)
    bronze = engine.materialize(_read(lh, engine, spec.identifier(BRONZE), batches))
    present = engine.batches(bronze)
    if not present:
        return StepResult(table_id, tuple(batches), skipped="no bronze rows")
    # Rows the reader could not use (a whole file, or one row) bypass conform: their rule is its reason.
    rows = lazy(bronze)
    result = _conformed(lh, engine, spec, bronze, present)
    conformed = lazy(result.rejected)
    unusable = rows.filter(~nw.col(ERROR).is_null()).rename({ERROR: RULE})
    rejected = engine.materialize(
        nw.concat([conformed, unusable.select(conformed.collect_schema().names())])
        .sort(BATCH_DATE, SOURCE_FILE, ROW_NUMBER)
        .to_native()
    )
    good = result.good  # a filter of the flagged rows materialized by conform
    rows_in, quarantined = engine.count(bronze), engine.count(rejected)
    counts = {"landed_rows": rows_in, "quarantined_rows": quarantined}
    quarantine = lh.table(spec.identifier(QUARANTINE))
    # The quarantine rows are staged first so the silver audit can count them, and published
    # only once that audit passed, just before silver's main moves.
    rejected_rows = engine.write(quarantine, rejected, constants=lh.constants())
    staged_quarantine = stage(
        quarantine,
        rejected_rows,
        replace=batch_filter(present),
        branch=audit_branch(lh.run.run_id),
        properties=lh.properties(present),
    )
    published = False

    def publish_quarantine() -> None:
        nonlocal published
        if published:
            return
        try:
            publish(quarantine, staged_quarantine)
        except CommitConflictError:  # another run wrote quarantine meanwhile: rewrite on its main
            discard(quarantine, staged_quarantine)
            write_audited(
                quarantine,
                rejected_rows,
                replace=batch_filter(present),
                branch=audit_branch(lh.run.run_id),
                properties=lh.properties(present),
                audit=None,
            )
        published = True

    table = lh.table(table_id)
    data: Data
    if spec.kind == "reference":
        # Merged with main as of the branch base: a retry after a concurrent commit re-merges.
        def data(base: int) -> Written:
            current = engine.read_table(table, snapshot_id=base)
            return engine.write(
                table, merge_latest(current, good, spec.key, present), constants=lh.constants()
            )

    else:
        data = engine.write(table, good, constants=lh.constants())
    try:
        staged = _write(
            lh,
            table,
            data,
            present,
            replace_all=spec.kind == "reference",
            audit=audit,
            counts=counts,
            references={staged_quarantine.table: staged_quarantine.snapshot_id},
            before_publish=publish_quarantine,
        )
    finally:
        if not published:
            discard(quarantine, staged_quarantine)
    loaded = rows_in - quarantined
    log.info("%s: %d rows in, %d loaded, %d quarantined", table_id, rows_in, loaded, quarantined)
    return StepResult(table_id, tuple(present), rows_in, loaded, quarantined, staged.snapshot_id)


def _model_rows(lh: Lakehouse, engine: Engine[FrameT], model: Model, batches: list[date]) -> FrameT:
    """The rows ``model`` computes for ``batches`` from its inputs.

    Raises:
        ModelError: if the model's function raises (its step fails; the run goes on).

    """
    frames: dict[str, FrameT] = {}
    for parameter, item in model.inputs.items():
        if item.scope == "versions":
            spec = lh.registry.table(item.table)
            bronze = _read(lh, engine, spec.identifier(BRONZE), batches)
            frames[parameter] = _conformed(lh, engine, spec, bronze, batches).good
        else:
            frames[parameter] = _read(lh, engine, item.table, batches if item.scope == "batches" else None)
    try:
        rows: FrameT = model.function(**frames)
        return rows
    except Exception as exc:
        raise ModelError(
            f"{model.identifier}: model {model.source}.{model.name} raised {type(exc).__name__}: {exc}"
        ) from exc


def versioned(model: Model, current: FrameT, rows: FrameT, batches: Sequence[date]) -> FrameT:
    """An SCD2 model's complete version chains: ``current`` (its table) with ``rows`` of ``batches``.

    See :func:`lakehouse.transforms.scd2.chains`.
    """
    materialization = model.materialization
    return scd2.chains(
        current,
        rows,
        key=materialization.key[0],
        tracked=materialization.tracked,
        columns=[name for name, _ in model.columns],
        batches=batches,
        surrogate_key=materialization.surrogate_key,
    )


def _merge(
    lh: Lakehouse,
    table: Table,
    data: MergeData,
    batches: list[date],
    key: tuple[str, ...],
    audit: StepAudit | None,
    counts: Mapping[str, int],
) -> MergeResult:
    """Merge ``data`` into ``table`` by ``key``, audited (see :func:`lakehouse.merge.merge`)."""

    def verify(t: Table, staged: Staged) -> None:
        if audit is not None:
            audit(AuditRequest(staged.table, staged.snapshot_id, tuple(batches), counts, {}))

    return merge(
        table,
        data,
        key,
        branch=audit_branch(lh.run.run_id),
        properties=lh.properties(batches),
        audit=verify,
    )


def build_gold(lh: Lakehouse, table_id: str, batches: list[date], audit: StepAudit | None) -> StepResult:
    """Build ``table_id`` (a gold model's table) for ``batches``, as its materialization says.

    ``replace`` models replace their batches; ``merge`` models merge by key and ``scd2`` models
    merge their keys' whole version chains (both in process: dimensions are small). Nothing is
    written (the result says why) when the inputs have no row of ``batches``, e.g. a dimension
    whose source did not land in them. Runs on the engine the router picks for what it reads.

    Raises:
        KeyError: if ``table_id`` is no model's table.
        ModelError: if the model's function raises.
        CommitConflictError: if every attempt met a concurrent commit.
        Exception: whatever ``audit`` raises (``main`` is then untouched).

    """
    model = lh.registry.model(table_id)
    with _routed(lh, table_id, _work(lh, lh.registry.reads(model), batches)) as engine:
        return _build_gold(lh, engine, model, batches, audit)


def _build_gold(
    lh: Lakehouse, engine: Engine[FrameT], model: Model, batches: list[date], audit: StepAudit | None
) -> StepResult:
    table_id = model.identifier
    table = lh.table(table_id)
    materialization = model.materialization
    rows = engine.materialize(_model_rows(lh, engine, model, batches))
    present, rows_in = engine.batches(rows), engine.count(rows)
    if not present:
        return StepResult(table_id, tuple(batches), skipped="no input rows of these batches")
    counts = {"rows": rows_in}
    if materialization.kind == "replace":
        written = engine.write(table, rows, constants=lh.constants())
        staged = _write(lh, table, written, present, replace_all=False, audit=audit, counts=counts)
        return StepResult(table_id, tuple(present), rows_in, rows_in, 0, staged.snapshot_id)
    data: MergeData
    if materialization.kind == "scd2":

        def data(base: int) -> pa.Table:  # the chains as of the snapshot the merge is planned against
            built = versioned(model, engine.read_table(table, snapshot_id=base), rows, batches)
            return shape(table, engine.to_arrow(built), lh.constants())

    else:
        data = shape(table, engine.to_arrow(rows), lh.constants())
    merged = _merge(lh, table, data, present, materialization.key, audit, counts)
    return StepResult(table_id, tuple(present), rows_in, merged.stats.rows_in, 0, merged.staged.snapshot_id)


def pending_batches(lh: Lakehouse, sources: Iterable[str] | None = None) -> list[date]:
    """Landed batch dates of ``sources`` (default: all) not yet promoted everywhere they feed, oldest first.

    The watermark is each table's ``lakehouse.promoted`` snapshot property on ``main``.
    """
    done: dict[str, set[str]] = {}
    out: set[date] = set()
    for spec in lh.registry.landed(sources):
        targets = lh.registry.targets(spec)
        for target in targets:
            if target not in done:
                done[target] = promoted(lh.table(target))
        for batch in lh.zone(spec.source).batches(spec.name):
            if any(batch.isoformat() not in done[t] for t in targets):
                out.add(batch)
    return sorted(out)


def step_inputs(lh: Lakehouse, table_id: str, batches: list[date]) -> dict[str, str]:
    """What the step writing ``table_id`` reads, from metadata only, as ``{input: version}``.

    Bronze reads landed files (version: size); silver and gold read tables (version: the ``main``
    snapshot id). The same inputs (and code) for the same batches give the same output, so this
    identifies the work (cache keys) and records lineage.
    """
    if table_id.startswith(f"{BRONZE}."):
        spec = lh.registry.table(table_id)
        return {f.uri: str(f.size) for f in lh.zone(spec.source).files(spec.name, batches)}
    return {t: str(lh.table(t).metadata.current_snapshot_id) for t in lh.registry.upstream(table_id)}
