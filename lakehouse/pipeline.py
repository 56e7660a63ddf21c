"""The steps of a run: landing → bronze → silver (+ quarantine) → gold, each an audited write.

Each step reads what it needs through the catalog, runs pure transforms, and commits once through
:func:`lakehouse.publish.write_audited`. Knows nothing of Prefect or Soda: the audit is passed in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
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
from lakehouse.errors import CommitConflictError
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
from lakehouse.router import Decision, Router, Work, table_work
from lakehouse.schema import evolve
from lakehouse.settings import EngineChoice
from lakehouse.tables import (
    BATCH_DATE,
    BRONZE,
    ERROR,
    FOREIGN_KEYS,
    GOLD,
    GOLD_MERGE_KEYS,
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
    TPCH,
    bronze_table,
    identifier,
)
from lakehouse.transforms import gold as gold_transforms
from lakehouse.transforms import marts, star
from lakehouse.transforms.frames import lazy
from lakehouse.transforms.silver import conform, merge_latest

log = logging.getLogger(__name__)

# The tables each gold table reads, in build order: dimensions, the fact that points at them, then
# the marts built from the fact. (dim_customer reads its customers' landed versions from bronze.)
GOLD_INPUTS: dict[str, tuple[str, ...]] = {
    "dim_date": ("silver.orders",),
    "dim_customer": ("bronze.customer", "silver.customer", "silver.nation", "silver.region"),
    "dim_part": ("silver.part",),
    "dim_supplier": ("silver.supplier", "silver.nation", "silver.region"),
    "fct_sales": (
        "silver.orders",
        "silver.lineitem",
        "gold.dim_date",
        "gold.dim_customer",
        "gold.dim_part",
        "gold.dim_supplier",
    ),
    "daily_revenue": ("gold.fct_sales", "gold.dim_customer"),
    "pricing_summary": ("gold.fct_sales",),
}


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
    """What every step needs: the catalog, the landing zone, the run and its engine router."""

    catalog: Catalog
    zone: LandingZone
    run: RunInfo
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    router: Router = field(default_factory=Router)

    def table(self, table_id: str) -> Table:
        """Load a table by identifier."""
        return self.catalog.load_table(table_id)

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


def _bronze_groups(files: list[LandedFile]) -> list[list[LandedFile]]:
    """``files`` in runs of one month (the partition) holding at most :data:`BRONZE_FILE_BYTES`."""
    groups: list[list[LandedFile]] = []
    size = 0
    for landed_file in sorted(files, key=lambda f: (f.batch, f.uri)):
        same_month = bool(groups) and groups[-1][0].batch.replace(day=1) == landed_file.batch.replace(day=1)
        if same_month and size + landed_file.size <= BRONZE_FILE_BYTES:
            groups[-1].append(landed_file)
            size += landed_file.size
        else:
            groups.append([landed_file])
            size = landed_file.size
    return groups


def load_bronze(lh: Lakehouse, name: str, batches: list[date], audit: StepAudit | None) -> StepResult:
    """Land ``name``'s files of ``batches`` into ``bronze.<name>`` (replacing those batches).

    Every landed row is loaded, and a file that cannot be read as one row whose ``_error`` says
    why (see :mod:`lakehouse.readers`). Files are parsed always in process (the reader's rules,
    exact field counts, strict UTF-8, ..., are its own) and written as they are parsed: the files of
    a month are gathered into groups of up to :data:`BRONZE_FILE_BYTES` landed bytes, read together
    (:func:`lakehouse.readers.read_landed_files`) into one data file, each encoded while the next
    is read: memory holds two such groups, not the batch. The data files are committed together.

    Raises:
        LandingError: if a landed file cannot be fetched (an I/O error, not its content).
        WarehouseError: if the warehouse refuses a write (``main`` is untouched).
        SchemaEvolutionError: if ``bronze.<name>`` predates ``_error`` and cannot take it.

    """
    table_id = identifier(BRONZE, name)
    files = lh.zone.files(name, batches)
    if not files:
        return StepResult(table_id, tuple(batches), skipped="no landed files")
    if ERROR not in lh.table(table_id).schema().column_names:  # created before `_error` existed: add it
        evolve(lh.table(table_id), bronze_table(name).schema)
    table = lh.table(table_id)
    directory = data_directory(table, "bronze")
    rows = unreadable = 0

    def write(frame: pl.DataFrame, path: str) -> str:
        with storage(table_id):
            return write_data_file(table, shape(table, frame.to_arrow(), lh.constants()), path)

    # A data file is encoded (one core) while the next group is parsed: memory holds two groups.
    writes: list[Future[str]] = []
    with ThreadPoolExecutor(1, thread_name_prefix="bronze-write") as writer:
        for number, group in enumerate(_bronze_groups(files)):
            batch = pl.col(SOURCE_FILE).replace_strict({f.uri: f.batch for f in group}, return_dtype=pl.Date)
            frame = read_landed_files(lh.zone, group).with_columns(batch.alias(BATCH_DATE))
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


def _parents(lh: Lakehouse, engine: Engine[FrameT], name: str, batches: list[date]) -> dict[str, FrameT]:
    parents = {}
    for column, (parent, key) in FOREIGN_KEYS.get(name, {}).items():
        # Facts land with their parents' batch (lineitem with its order): look in the same batches.
        scope = batches if TPCH[parent].kind == "fact" else None
        parents[column] = lazy(_read(lh, engine, identifier(SILVER, parent), scope)).select(key).to_native()
    return parents


def _silver_inputs(name: str) -> list[str]:
    return [identifier(BRONZE, name)] + [
        identifier(SILVER, p) for p, _ in FOREIGN_KEYS.get(name, {}).values()
    ]


def build_silver(lh: Lakehouse, name: str, batches: list[date], audit: StepAudit | None) -> StepResult:
    """Conform ``bronze.<name>`` rows of ``batches`` into ``silver.<name>`` and ``quarantine.<name>``.

    Facts replace their batches; reference tables are merged by key (latest batch wins). The
    quarantine rows are published after the silver audit passes and before silver's ``main``
    moves, so a rerun after a crash converges. Runs on the engine the router picks for the
    bronze rows and parent keys it reads.
    """
    table_id = identifier(SILVER, name)
    with _routed(lh, table_id, _work(lh, dict.fromkeys(_silver_inputs(name)), batches)) as engine:
        return _build_silver(lh, engine, name, batches, audit)


def _build_silver(
    lh: Lakehouse, engine: Engine[FrameT], name: str, batches: list[date], audit: StepAudit | None
) -> StepResult:
    table_id = identifier(SILVER, name)
    spec = TPCH[name]
    bronze = engine.materialize(_read(lh, engine, identifier(BRONZE, name), batches))
    present = engine.batches(bronze)
    if not present:
        return StepResult(table_id, tuple(batches), skipped="no bronze rows")
    # Rows the reader could not use (a whole file, or one row) bypass conform: their rule is its reason.
    rows = lazy(bronze)
    result = conform(
        rows.filter(nw.col(ERROR).is_null()).drop(ERROR).to_native(),
        spec,
        _parents(lh, engine, name, present),
        materialize=engine.materialize,
    )
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
    quarantine = lh.table(identifier(QUARANTINE, name))
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


def _gold_rows(lh: Lakehouse, engine: Engine[FrameT], name: str, batches: list[date]) -> FrameT:
    """The rows of ``gold.<name>`` for ``batches``; ``dim_customer``'s come from ``_customer_chains``.

    Raises:
        ValueError: if ``name`` is no such gold table.

    """

    def read(table_id: str, scope: list[date] | None = None) -> FrameT:
        return _read(lh, engine, table_id, scope)

    if name == "dim_date":
        return star.dim_date(read("silver.orders", batches))
    if name == "dim_part":
        return star.dim_part(read("silver.part", batches))
    if name == "dim_supplier":
        return star.dim_supplier(
            read("silver.supplier", batches), read("silver.nation"), read("silver.region")
        )
    if name == "fct_sales":
        sales = gold_transforms.fct_sales(read("silver.lineitem", batches), read("silver.orders", batches))
        dimensions = (read(f"gold.{d}") for d in ("dim_customer", "dim_part", "dim_supplier"))
        return star.with_dimension_keys(sales, *dimensions)
    if name == "daily_revenue":
        return marts.daily_revenue(read("gold.fct_sales", batches), read("gold.dim_customer"))
    if name == "pricing_summary":
        return marts.pricing_summary(read("gold.fct_sales", batches))
    raise ValueError(f"no gold table {name!r}")


def _customer_chains(
    lh: Lakehouse, engine: Engine[FrameT], table: Table, batches: list[date]
) -> tuple[Callable[[int], pa.Table], list[date], int]:
    """``dim_customer``'s chains for ``batches``: a function of the base snapshot, their batches, versions in.

    The versions of ``batches`` are bronze's customer rows conformed by the silver rules (a row
    silver quarantines makes no version). They are combined with the dimension's versions of the
    same customers as of the snapshot the merge is planned against, so a retry after a
    concurrent commit recomputes the chains.
    """
    landed = lazy(_read(lh, engine, identifier(BRONZE, "customer"), batches))
    usable = landed.filter(nw.col(ERROR).is_null()).drop(ERROR).to_native()  # as in silver
    arrived = engine.materialize(
        conform(usable, TPCH["customer"], _parents(lh, engine, "customer", batches)).good
    )
    nation, region = _read(lh, engine, "silver.nation"), _read(lh, engine, "silver.region")

    def chains(base: int) -> pa.Table:
        current = engine.read_table(table, snapshot_id=base)
        return shape(
            table,
            engine.to_arrow(star.dim_customer(current, arrived, nation, region, batches)),
            lh.constants(),
        )

    return chains, engine.batches(arrived), engine.count(arrived)


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


def build_gold(lh: Lakehouse, name: str, batches: list[date], audit: StepAudit | None) -> StepResult:
    """Build ``gold.<name>`` for ``batches``: dimensions merge by key, the fact and marts replace batches.

    Nothing is written (the result says why) when the inputs have no row of ``batches``, e.g. a
    dimension whose source did not land in them. Runs on the engine the router picks for the
    inputs it reads; a dimension's rows are merged in process (dimensions are small).

    Raises:
        ValueError: if ``name`` is no gold table.
        CommitConflictError: if every attempt met a concurrent commit.
        Exception: whatever ``audit`` raises (``main`` is then untouched).

    """
    table_id = identifier(GOLD, name)
    with _routed(lh, table_id, _work(lh, GOLD_INPUTS[name], batches)) as engine:
        return _build_gold(lh, engine, name, batches, audit)


def _build_gold(
    lh: Lakehouse, engine: Engine[FrameT], name: str, batches: list[date], audit: StepAudit | None
) -> StepResult:
    table_id = identifier(GOLD, name)
    table = lh.table(table_id)
    if name == "dim_customer":
        chains, present, rows_in = _customer_chains(lh, engine, table, batches)
    else:
        rows = engine.materialize(_gold_rows(lh, engine, name, batches))
        present, rows_in = engine.batches(rows), engine.count(rows)
    if not present:
        return StepResult(table_id, tuple(batches), skipped="no input rows of these batches")
    counts = {"rows": rows_in}
    if name in GOLD_MERGE_KEYS:
        data = chains if name == "dim_customer" else shape(table, engine.to_arrow(rows), lh.constants())
        merged = _merge(lh, table, data, present, GOLD_MERGE_KEYS[name], audit, counts)
        snapshot, rows_out = merged.staged.snapshot_id, merged.stats.rows_in
        return StepResult(table_id, tuple(present), rows_in, rows_out, 0, snapshot)
    written = engine.write(table, rows, constants=lh.constants())
    staged = _write(lh, table, written, present, replace_all=False, audit=audit, counts=counts)
    return StepResult(table_id, tuple(present), rows_in, rows_in, 0, staged.snapshot_id)


def _gold_driver(name: str) -> str:
    """The landed table whose batches ``gold.<name>`` is built for: a dimension's source, else orders.

    A dimension gets rows only in batches where its source landed; the date dimension, the fact
    and the marts follow the orders (lineitem lands with its order).
    """
    return {"dim_customer": "customer", "dim_part": "part", "dim_supplier": "supplier"}.get(name, "orders")


def gold_tables(landed: Iterable[str]) -> list[str]:
    """The gold tables built for the batches of the landed tables ``landed``, in build order.

    E.g. the reference tables' are the dimensions but ``dim_date``: a run that loads reference
    tables before facts builds those dimensions with them, and the rest with the facts.
    """
    names = set(landed)
    return [g for g in GOLD_INPUTS if _gold_driver(g) in names]


def targets(name: str) -> list[str]:
    """The tables a batch of landed ``name`` must reach before that batch counts as promoted."""
    return [identifier(SILVER, name)] + [identifier(GOLD, g) for g in gold_tables([name])]


def pending_batches(lh: Lakehouse) -> list[date]:
    """Landed batch dates not yet promoted to every table they feed, oldest first.

    The watermark is each table's ``lakehouse.promoted`` snapshot property on ``main``.
    """
    done: dict[str, set[str]] = {}
    out: set[date] = set()
    for name in TPCH:
        for target in targets(name):
            if target not in done:
                done[target] = promoted(lh.table(target))
        for batch in lh.zone.batches(name):
            if any(batch.isoformat() not in done[t] for t in targets(name)):
                out.add(batch)
    return sorted(out)


def step_inputs(lh: Lakehouse, layer: str, name: str, batches: list[date]) -> dict[str, str]:
    """What a step reads, from metadata only, as ``{input: version}``.

    Bronze reads landed files (version: size); silver and gold read tables (version: the ``main``
    snapshot id). The same inputs for the same batches give the same output, so this identifies
    the work (cache keys) and records lineage.
    """
    if layer == BRONZE:
        return {f.uri: str(f.size) for f in lh.zone.files(name, batches)}
    tables = _silver_inputs(name) if layer == SILVER else list(GOLD_INPUTS[name])
    return {t: str(lh.table(t).metadata.current_snapshot_id) for t in tables}
