"""OpenLineage events for every task that reads or writes tables, and the timings of those tasks.

A task wraps its pipeline call in :func:`step`::

    with lineage.step(lh, "silver.orders", batches, inputs=["bronze.orders", "silver.customer"]) as step:
        return step.complete(pipeline.build_silver(lh, "orders", batches, audit))

The step emits START on entry and COMPLETE on exit, or FAIL (with the error message and the checks
of the quality gate) when the body raises, ABORT when it is interrupted. The gate reports its
results to the current step through :func:`record_gate`. Every attempt is also timed and kept for
the run's metrics (:func:`take_timings`), whether lineage is configured or not.

Configuration is OpenLineage's own (see ``docs/observability.md``): ``OPENLINEAGE_URL``,
``OPENLINEAGE__TRANSPORT__*`` variables or an ``openlineage.yml`` (``$OPENLINEAGE_CONFIG``, the
working directory or ``~/.openlineage``); ``OPENLINEAGE_DISABLED=true`` turns it off. With none of
these, no client is built, ``openlineage`` is not even imported, and a step costs two clock reads.

Jobs are named ``<flow>.<task>`` (``daily.silver.orders``) in namespace ``$OPENLINEAGE_NAMESPACE``
(default ``lakehouse``), with the Prefect flow run as parent run. Iceberg datasets are named by
the Iceberg convention: namespace the catalog's warehouse URI, name ``namespace.table``; landed
files are ``<source>.<table>`` in the landing zone's URI.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from prefect.runtime import task_run
from pyiceberg.catalog import Catalog

from checks.result import GateResult
from lakehouse.batches import format_ranges
from lakehouse.pipeline import Lakehouse, StepResult
from lakehouse.tables import NAMESPACES, PROP_BATCHES, PROP_ENGINE, PROP_INPUTS, PROP_RUN_ID
from tasks import assets

if TYPE_CHECKING:
    from openlineage.client.client import OpenLineageClient
    from openlineage.client.event_v2 import InputDataset, OutputDataset, RunState
    from openlineage.client.facet_v2 import DatasetFacet, OutputDatasetFacet, RunFacet

log = logging.getLogger(__name__)

ENV_URL = "OPENLINEAGE_URL"
ENV_TRANSPORT_PREFIX = "OPENLINEAGE__TRANSPORT__"
ENV_CONFIG = "OPENLINEAGE_CONFIG"
ENV_DISABLED = "OPENLINEAGE_DISABLED"
ENV_NAMESPACE = "OPENLINEAGE_NAMESPACE"
CONFIG_FILE = "openlineage.yml"
DEFAULT_NAMESPACE = "lakehouse"

PRODUCER = "urn:lakehouse-platform:tasks.lineage"
"""``producer`` of every event: a URI naming this module (the project has no public URL)."""
FACET_SCHEMA = "urn:lakehouse-platform:openlineage:facets:{name}:1-0-0"
"""``_schemaURL`` of the custom facets; their fields are documented in docs/observability.md."""
RUN_FACET = "lakehouse_run"
SNAPSHOT_FACET = "lakehouse_snapshot"

# Snapshot summary keys stamped by lakehouse.pipeline (``lakehouse.*``); read when present.
_SUMMARY_PREFIX = "lakehouse."

StepStatus = Literal["completed", "failed", "aborted"]


# --- configuration ------------------------------------------------------------------------------


def config_file() -> Path | None:
    """The ``openlineage.yml`` the OpenLineage client would read, if any.

    In the client's order: ``$OPENLINEAGE_CONFIG``, ``./openlineage.yml``,
    ``~/.openlineage/openlineage.yml``.
    """
    candidates: list[Path] = []
    if explicit := os.environ.get(ENV_CONFIG):
        candidates.append(Path(explicit))
    candidates.append(Path.cwd() / CONFIG_FILE)
    with suppress(RuntimeError):  # no home directory: the client skips it too
        candidates.append(Path.home() / ".openlineage" / CONFIG_FILE)
    return next((p for p in candidates if p.is_file()), None)


def configured() -> bool:
    """Whether OpenLineage is configured (and not disabled) in this process's environment."""
    if os.environ.get(ENV_DISABLED, "").strip().lower() == "true":
        return False
    if os.environ.get(ENV_URL) or any(k.startswith(ENV_TRANSPORT_PREFIX) for k in os.environ):
        return True
    return config_file() is not None


def namespace() -> str:
    """The job namespace: ``$OPENLINEAGE_NAMESPACE`` or ``lakehouse``."""
    return os.environ.get(ENV_NAMESPACE) or DEFAULT_NAMESPACE


def _config_key() -> tuple[object, ...]:
    path = config_file()
    environment = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("OPENLINEAGE")))
    return environment, str(path), path.stat().st_mtime_ns if path else None


class _ClientCache:
    """One client per configuration, built on first use (the environment may change between tests)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[object, ...] | None = None
        self._client: OpenLineageClient | None = None

    def get(self) -> OpenLineageClient | None:
        if not configured():
            return None
        key = _config_key()
        with self._lock:
            if key != self._key:
                self._client = self._build()
                # The client aliases OPENLINEAGE_URL into OPENLINEAGE__TRANSPORT__* variables: key after.
                self._key = _config_key()
            return self._client

    @staticmethod
    def _build() -> OpenLineageClient | None:
        from openlineage.client.client import OpenLineageClient

        try:
            built = OpenLineageClient()
        except Exception:  # a broken lineage configuration must not stop the data; it is logged once
            log.exception("OpenLineage is configured but its client cannot be built: no events are emitted")
            return None
        log.info("OpenLineage events go to the %s transport", built.transport.kind)
        return built

    def clear(self) -> None:
        with self._lock:
            self._key, self._client = None, None


_clients = _ClientCache()


def client() -> OpenLineageClient | None:
    """The OpenLineage client of the current configuration, or None when lineage is not configured.

    Built once per configuration; when nothing is configured nothing is built or imported.
    """
    return _clients.get()


def reset() -> None:
    """Forget the cached client (the next step reads the configuration again)."""
    _clients.clear()


# --- step timings (kept with or without lineage, for run metrics) --------------------------------


@dataclass(frozen=True)
class StepTiming:
    """One attempt of a task: how it ended, when it started, how long it took, what it returned."""

    run_id: str
    task: str
    status: StepStatus
    started: datetime
    seconds: float
    result: StepResult | None = None
    error: str | None = None


_timings_lock = threading.Lock()
_timings: dict[str, list[StepTiming]] = {}


def _keep(timing: StepTiming) -> None:
    with _timings_lock:
        _timings.setdefault(timing.run_id, []).append(timing)


def take_timings(run_id: str) -> list[StepTiming]:
    """The timed attempts of run ``run_id`` in the order they ended; they are forgotten here."""
    with _timings_lock:
        return _timings.pop(run_id, [])


# --- the step -----------------------------------------------------------------------------------


@dataclass
class Step:
    """One attempt of a task that writes tables: what it read, wrote and verified, and its duration."""

    lh: Lakehouse
    task: str
    batches: tuple[date, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    result: StepResult | None = None
    gates: dict[str, GateResult] = field(default_factory=dict)
    _clock: float = field(default_factory=time.perf_counter)

    def complete(self, result: StepResult) -> StepResult:
        """Record what the step wrote (reported by the COMPLETE event and on its Prefect assets)."""
        self.result = result
        assets.describe(result)
        return result

    def record_gate(self, result: GateResult) -> None:
        """Record a verification of one of the step's tables (the last one per table counts)."""
        self.gates[result.table] = result

    def elapsed(self) -> float:
        """Seconds since the step started."""
        return time.perf_counter() - self._clock


_current: ContextVar[Step | None] = ContextVar("lineage_step", default=None)


def record_gate(result: GateResult) -> None:
    """Attach a gate result to the step running in this context, if any (called by the gate)."""
    current = _current.get()
    if current is not None:
        current.record_gate(result)


@contextmanager
def step(
    lh: Lakehouse,
    task: str,
    batches: Sequence[date],
    *,
    inputs: Sequence[str],
    outputs: Sequence[str] | None = None,
) -> Iterator[Step]:
    """Time and report one attempt of ``task`` (``layer.table``, e.g. ``silver.orders``).

    ``inputs`` are table identifiers (``bronze.orders``) or landed sources (``tpch.orders``);
    ``outputs`` default to ``[task]``, the first being the table whose snapshot the step's
    :class:`StepResult` names. Emits START now and COMPLETE, FAIL or ABORT on exit; emitting never
    raises (a lineage backend that is down does not fail the data). Exceptions of the body propagate.
    """
    current = Step(lh, task, tuple(batches), tuple(inputs), tuple(outputs or (task,)))
    lineage_client = client()
    emitter = _Emitter(lineage_client, current) if lineage_client is not None else None
    if emitter is not None:
        emitter.start()
        # Time the step's own work: START read the tables and may have imported openlineage.
        current.started, current._clock = datetime.now(UTC), time.perf_counter()
    token = _current.set(current)
    status: StepStatus = "completed"
    error: BaseException | None = None
    try:
        yield current
    except Exception as exc:
        status, error = "failed", exc
        raise
    except BaseException as exc:  # cancellation, interrupt: the run did not fail, it was stopped
        status, error = "aborted", exc
        raise
    finally:
        _current.reset(token)
        seconds = current.elapsed()
        _keep(
            StepTiming(
                lh.run.run_id,
                task,
                status,
                current.started,
                seconds,
                current.result,
                None if error is None else str(error),
            )
        )
        if emitter is not None:
            emitter.finish(status, error, seconds)


# --- OpenLineage events (imported only when configured) ------------------------------------------


@dataclass(frozen=True)
class _TableState:
    """What an event says of an Iceberg table: its current snapshot and schema."""

    table_id: str
    snapshot_id: int | None
    parent_id: int | None
    operation: str | None
    timestamp_ms: int | None
    summary: Mapping[str, str]
    fields: tuple[tuple[str, str, str | None], ...]  # name, type, doc


def _read_table(catalog: Catalog, table_id: str, snapshot_id: int | None = None) -> _TableState:
    """A table's schema and its current snapshot, or the snapshot ``snapshot_id``."""
    table = catalog.load_table(table_id)
    snapshot = table.current_snapshot() if snapshot_id is None else table.snapshot_by_id(snapshot_id)
    summary = snapshot.summary if snapshot is not None else None
    return _TableState(
        table_id=table_id,
        snapshot_id=snapshot.snapshot_id if snapshot else None,
        parent_id=snapshot.parent_snapshot_id if snapshot else None,
        operation=summary.operation.value if summary is not None else None,
        timestamp_ms=snapshot.timestamp_ms if snapshot else None,
        summary=dict(summary.additional_properties) if summary is not None else {},
        fields=tuple((f.name, str(f.field_type), f.doc) for f in table.schema().fields),
    )


def parse_inputs(text: str | None) -> dict[str, int | None]:
    """``silver.orders@123,tpch.orders`` → ``{"silver.orders": 123, "tpch.orders": None}``."""
    out: dict[str, int | None] = {}
    for part in (text or "").split(","):
        name, _, snapshot = part.strip().partition("@")
        if name:
            out[name] = int(snapshot) if snapshot.strip().isdigit() else None
    return out


def warehouse_namespace(catalog: Catalog) -> str:
    """The OpenLineage dataset namespace of a catalog's tables: its warehouse as a URI.

    ``file:///.../warehouse`` for a local warehouse, ``s3://bucket/warehouse`` on S3;
    ``iceberg://<catalog name>`` when the catalog names no warehouse location.
    """
    warehouse = str(catalog.properties.get("warehouse", "")).rstrip("/")
    if "://" in warehouse:
        return warehouse
    if warehouse.startswith("/"):
        return Path(warehouse).as_uri()
    return f"iceberg://{catalog.name}"


def landing_namespace(uri: str) -> str:
    """The OpenLineage dataset namespace of a landing zone: its URI (a local path as ``file://``)."""
    return uri.rstrip("/") if "://" in uri else Path(uri).resolve().as_uri()


def _catalog_type(catalog: Catalog) -> str:
    return type(catalog).__name__.removesuffix("Catalog").lower() or "unknown"


@cache
def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


@cache
def _custom_facets() -> tuple[Callable[..., RunFacet], Callable[..., DatasetFacet]]:
    """The two custom facet classes, defined on first use so ``openlineage`` is imported only then."""
    import attr
    from openlineage.client.facet_v2 import DatasetFacet, RunFacet

    @attr.define(kw_only=True)
    class LakehouseRunFacet(RunFacet):
        """The lakehouse run a step belongs to, the engine it ran on and what it did."""

        flow: str
        task: str
        flowRunId: str  # OpenLineage facets are camelCase
        engine: str
        codeVersion: str
        batches: str
        taskRunId: str | None = None
        attempt: int | None = None
        rowsIn: int | None = None
        rowsOut: int | None = None
        quarantined: int | None = None
        skipped: str | None = None
        durationSeconds: float | None = None

        @staticmethod
        def _get_schema() -> str:
            return FACET_SCHEMA.format(name="LakehouseRunFacet")

    @attr.define(kw_only=True)
    class IcebergSnapshotDatasetFacet(DatasetFacet):
        """The Iceberg snapshot of a table that a step read or wrote, with its lakehouse properties."""

        snapshotId: int
        published: bool = True
        parentSnapshotId: int | None = None
        operation: str | None = None
        timestampMs: int | None = None
        properties: dict[str, str] = attr.field(factory=dict)

        @staticmethod
        def _get_schema() -> str:
            return FACET_SCHEMA.format(name="IcebergSnapshotDatasetFacet")

    return LakehouseRunFacet, IcebergSnapshotDatasetFacet


def _count(summary: Mapping[str, str], key: str) -> int:
    """A count of a snapshot summary: Iceberg leaves out the ``added-*`` keys of what added nothing."""
    value = summary.get(key, "0")
    return int(value) if value.isdigit() else 0


class _Emitter:
    """Builds and emits the events of one step; every failure here is logged, never raised."""

    def __init__(self, lineage_client: OpenLineageClient, current: Step) -> None:
        self.client = lineage_client
        self.step = current
        self.job_namespace = namespace()
        self.run_id = str(self._new_run_id())
        self.job_name = f"{current.lh.run.flow}.{current.task}"
        self.before: dict[str, _TableState] = {}

    @staticmethod
    def _new_run_id() -> uuid.UUID:
        from openlineage.client.uuid import generate_new_uuid

        return generate_new_uuid()  # UUIDv7: sortable by time, as OpenLineage recommends

    def start(self) -> None:
        """Read the tables as they are now and emit START."""
        self._guarded("START", self._start)

    def finish(self, status: StepStatus, error: BaseException | None, seconds: float) -> None:
        """Emit COMPLETE, FAIL or ABORT."""
        self._guarded(status, lambda: self._finish(status, error, seconds))

    def _guarded(self, what: str, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception:  # lineage is best effort: a backend or metadata error never fails a write
            log.warning("OpenLineage %s event of %s not emitted", what, self.job_name, exc_info=True)

    # -- reading tables

    def _tables(self) -> list[str]:
        return [t for t in (*self.step.inputs, *self.step.outputs) if t.split(".", 1)[0] in NAMESPACES]

    def _read(self, table_id: str, snapshot_id: int | None = None) -> _TableState | None:
        """A table's state, or None (logged) when it cannot be read: the event goes out without it."""
        try:
            return _read_table(self.step.lh.catalog, table_id, snapshot_id)
        except Exception:  # best effort, as every lineage failure
            log.warning("OpenLineage: cannot read %s for %s", table_id, self.job_name, exc_info=True)
            return None

    def _start(self) -> None:
        states = {t: self._read(t) for t in self._tables()}
        self.before = {t: state for t, state in states.items() if state is not None}
        self._emit(self._state("START"), self._inputs(None), self._outputs(None, {}), self._run_facets())

    def _finish(self, status: StepStatus, error: BaseException | None, seconds: float) -> None:
        result = self.step.result if status == "completed" else None
        after: dict[str, _TableState] = {}
        if result is not None:
            for t in self._tables():
                if t in self.step.outputs:
                    # The step's own snapshot by id: main may have moved on since (a concurrent chunk).
                    state = self._read(t, result.snapshot_id if t == self.step.outputs[0] else None)
                    if state is not None:
                        after[t] = state
        written = self._written(after, result)
        read = None
        primary = written.get(self.step.outputs[0])
        if primary is not None and PROP_INPUTS in primary.summary:
            read = parse_inputs(primary.summary[PROP_INPUTS])
        facets = self._run_facets(seconds=seconds, result=result, written=primary)
        if status == "failed" and error is not None:
            from openlineage.client.facet_v2 import error_message_run

            facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=str(error) or type(error).__name__,
                programmingLanguage="python",
                stackTrace="".join(traceback.format_exception(error)),
            )
        self._emit(self._state(status), self._inputs(read), self._outputs(result, written), facets)

    def _written(self, after: Mapping[str, _TableState], result: StepResult | None) -> dict[str, _TableState]:
        """The outputs with a snapshot this attempt published.

        The first output's is the result's snapshot; another output's (quarantine) is a new ``main``
        stamped with this run and the result's batches (another chunk of the run may write too).
        """
        if result is None:
            return {}
        out = {}
        for table_id, state in after.items():
            before = self.before.get(table_id)
            if table_id == self.step.outputs[0]:
                ours = state.snapshot_id is not None and state.snapshot_id == result.snapshot_id
            else:
                moved = before is None or state.snapshot_id != before.snapshot_id
                stamped = state.summary.get(PROP_RUN_ID) == self.step.lh.run.run_id
                ours = moved and stamped and state.summary.get(PROP_BATCHES) == format_ranges(result.batches)
            if ours:
                out[table_id] = state
        return out

    # -- building the event

    @staticmethod
    def _state(status: Literal["START"] | StepStatus) -> RunState:
        from openlineage.client.event_v2 import RunState

        return {
            "START": RunState.START,
            "completed": RunState.COMPLETE,
            "failed": RunState.FAIL,
            "aborted": RunState.ABORT,
        }[status]

    def _emit(
        self,
        state: RunState,
        inputs: list[InputDataset],
        outputs: list[OutputDataset],
        run_facets: dict[str, RunFacet],
    ) -> None:
        from openlineage.client.event_v2 import Job, Run, RunEvent
        from openlineage.client.facet_v2 import job_type_job

        event = RunEvent(
            eventType=state,
            eventTime=datetime.now(UTC).isoformat(),
            run=Run(runId=self.run_id, facets=run_facets),
            job=Job(
                namespace=self.job_namespace,
                name=self.job_name,
                facets={
                    "jobType": job_type_job.JobTypeJobFacet(
                        processingType="BATCH", integration="PREFECT", jobType="TASK", producer=PRODUCER
                    )
                },
            ),
            inputs=inputs,
            outputs=outputs,
            producer=PRODUCER,
        )
        self.client.emit(event)
        log.debug("OpenLineage %s %s run %s", state.value, self.job_name, self.run_id)

    def _run_facets(
        self,
        *,
        seconds: float | None = None,
        result: StepResult | None = None,
        written: _TableState | None = None,
    ) -> dict[str, RunFacet]:
        from openlineage.client.facet_v2 import parent_run, processing_engine_run

        run = self.step.lh.run
        engine = written.summary.get(PROP_ENGINE, run.engine) if written is not None else run.engine
        batches = result.batches if result is not None else self.step.batches
        run_facet, _ = _custom_facets()
        task_run_id = task_run.id
        facets: dict[str, RunFacet] = {
            "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
                version=_package_version("pyspark" if engine == "spark" else engine),
                name=engine,
                openlineageAdapterVersion=_package_version("openlineage-python"),
                producer=PRODUCER,
            ),
            RUN_FACET: run_facet(
                flow=run.flow,
                task=self.step.task,
                flowRunId=run.run_id,
                engine=engine,
                codeVersion=run.code_version,
                batches=format_ranges(batches),
                taskRunId=str(task_run_id) if task_run_id else None,
                attempt=task_run.run_count or None,
                rowsIn=result.rows_in if result else None,
                rowsOut=result.rows_out if result else None,
                quarantined=result.quarantined if result else None,
                skipped=result.skipped if result else None,
                durationSeconds=round(seconds, 3) if seconds is not None else None,
                producer=PRODUCER,
            ),
        }
        if _is_uuid(run.run_id):  # a Prefect flow run; "local" outside Prefect has no parent
            parent_job = parent_run.Job(namespace=self.job_namespace, name=run.flow)
            facets["parent"] = parent_run.ParentRunFacet(
                run=parent_run.Run(runId=run.run_id),
                job=parent_job,
                root=parent_run.Root(
                    run=parent_run.RootRun(runId=run.run_id),
                    job=parent_run.RootJob(namespace=self.job_namespace, name=run.flow),
                ),
                producer=PRODUCER,
            )
        return facets

    def _dataset_facets(self, state: _TableState) -> dict[str, DatasetFacet]:
        from openlineage.client.facet_v2 import (
            catalog_dataset,
            dataset_version_dataset,
            schema_dataset,
            storage_dataset,
        )

        catalog = self.step.lh.catalog
        _, snapshot_facet = _custom_facets()
        facets: dict[str, DatasetFacet] = {
            "schema": schema_dataset.SchemaDatasetFacet(
                fields=[
                    schema_dataset.SchemaDatasetFacetFields(
                        name=name, type=kind, description=doc, ordinal_position=i, fields=None
                    )
                    for i, (name, kind, doc) in enumerate(state.fields, 1)
                ],
                producer=PRODUCER,
            ),
            # No metadataUri: a catalog URI may carry credentials (postgresql://user:password@...).
            "catalog": catalog_dataset.CatalogDatasetFacet(
                framework="iceberg",
                type=_catalog_type(catalog),
                name=catalog.name,
                warehouseUri=warehouse_namespace(catalog),
                source="pyiceberg",
                producer=PRODUCER,
            ),
            "storage": storage_dataset.StorageDatasetFacet(
                storageLayer="iceberg", fileFormat="parquet", producer=PRODUCER
            ),
        }
        if state.snapshot_id is not None:
            facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(
                datasetVersion=str(state.snapshot_id), producer=PRODUCER
            )
            facets[SNAPSHOT_FACET] = snapshot_facet(
                snapshotId=state.snapshot_id,
                published=True,
                parentSnapshotId=state.parent_id,
                operation=state.operation,
                timestampMs=state.timestamp_ms,
                properties={k: v for k, v in state.summary.items() if k.startswith(_SUMMARY_PREFIX)},
                producer=PRODUCER,
            )
        return facets

    def _landing_facets(self, source_table: str) -> dict[str, DatasetFacet]:
        from openlineage.client.facet_v2 import schema_dataset

        source, _, name = source_table.partition(".")
        declared = self.step.lh.registry.sources.get(source)
        spec = declared.tables.get(name) if declared is not None else None
        if spec is None:
            return {}
        return {
            "schema": schema_dataset.SchemaDatasetFacet(
                fields=[
                    schema_dataset.SchemaDatasetFacetFields(name=c, ordinal_position=i, fields=None)
                    for i, c in enumerate(spec.column_names, 1)
                ],
                producer=PRODUCER,
            )
        }

    def _inputs(self, read: Mapping[str, int | None] | None) -> list[InputDataset]:
        """Input datasets; ``read`` (from the written snapshot's ``lakehouse.inputs``) wins over START."""
        from openlineage.client.event_v2 import InputDataset
        from openlineage.client.facet_v2 import input_statistics_input_dataset as input_statistics

        lh = self.step.lh
        result = self.step.result
        out = []
        for i, table_id in enumerate(self.step.inputs):
            input_facets: dict[str, Any] = {}
            # The first input is what the step's rows_in counts (landed rows, bronze rows).
            if i == 0 and result is not None and not self.step.task.startswith("gold."):
                input_facets["inputStatistics"] = input_statistics.InputStatisticsInputDatasetFacet(
                    rowCount=result.rows_in, producer=PRODUCER
                )
            if table_id.split(".", 1)[0] not in NAMESPACES:  # a landed source
                out.append(
                    InputDataset(
                        namespace=landing_namespace(lh.landing),
                        name=table_id,
                        facets=self._landing_facets(table_id),
                        inputFacets=input_facets,
                    )
                )
                continue
            state = self.before.get(table_id)
            stamped = read.get(table_id) if read is not None else None
            if state is not None and stamped is not None and stamped != state.snapshot_id:
                state = _with_snapshot(state, stamped)
            out.append(
                InputDataset(
                    namespace=warehouse_namespace(lh.catalog),
                    name=table_id,
                    facets=self._dataset_facets(state) if state is not None else {},
                    inputFacets=input_facets,
                )
            )
        return out

    def _outputs(self, result: StepResult | None, written: Mapping[str, _TableState]) -> list[OutputDataset]:
        from openlineage.client.event_v2 import OutputDataset
        from openlineage.client.facet_v2 import output_statistics_output_dataset as output_statistics

        lh = self.step.lh
        out = []
        for table_id in self.step.outputs:
            before = self.before.get(table_id)
            output_facets: dict[str, OutputDatasetFacet] = {}
            state = written.get(table_id)
            facets: dict[str, DatasetFacet] = {}
            if state is not None:
                facets = self._dataset_facets(state)
                output_facets["outputStatistics"] = output_statistics.OutputStatisticsOutputDatasetFacet(
                    rowCount=_count(state.summary, "added-records"),
                    size=_count(state.summary, "added-files-size"),
                    fileCount=_count(state.summary, "added-data-files"),
                    producer=PRODUCER,
                )
            else:
                # START, FAIL or nothing written: the schema as read at START, no version written.
                if before is not None:
                    facets = self._dataset_facets(_with_snapshot(before, None))
                gate = self.step.gates.get(table_id)
                if result is None and gate is not None and gate.snapshot_id is not None:
                    _, snapshot_facet = _custom_facets()
                    facets[SNAPSHOT_FACET] = snapshot_facet(  # the audited write that was not published
                        snapshotId=gate.snapshot_id, published=False, producer=PRODUCER
                    )
            gate = self.step.gates.get(table_id)
            if gate is not None:
                output_facets["dataQualityAssertions"] = _assertions(gate)
            out.append(
                OutputDataset(
                    namespace=warehouse_namespace(lh.catalog),
                    name=table_id,
                    facets=facets,
                    outputFacets=output_facets,
                )
            )
        return out


def _with_snapshot(state: _TableState, snapshot_id: int | None) -> _TableState:
    """``state`` with another snapshot id and no snapshot details (the schema is kept)."""
    return _TableState(state.table_id, snapshot_id, None, None, None, {}, state.fields)


def _assertions(result: GateResult) -> OutputDatasetFacet:
    """The OpenLineage ``dataQualityAssertions`` facet of a gate result: one assertion per check.

    Execution errors (the contract could not be fully evaluated) are one more, failed, assertion.
    """
    from openlineage.client.facet_v2 import data_quality_assertions_dataset as dq

    assertions = [
        dq.Assertion(
            assertion=check.type,
            success=check.outcome in ("passed", "warned"),
            column=check.column,
            severity="warn" if check.outcome == "warned" else "error",
            name=check.name,
            expected=check.threshold or None,
            actual=None if check.measured is None else str(check.measured),
            params={"outcome": check.outcome, "contract": result.contract.name},
        )
        for check in result.checks
    ]
    assertions += [
        dq.Assertion(assertion="contract_execution", success=False, name="contract could not run", actual=e)
        for e in result.errors
    ]
    # The facet is defined as an input facet; here it describes the output the gate audited.
    return dq.DataQualityAssertionsDatasetFacet(assertions=assertions, producer=PRODUCER)  # type: ignore[return-value]
