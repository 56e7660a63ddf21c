"""Engine routing: how much work a step has, measured from metadata only, and which engine runs it.

Work is the landed files' sizes (a directory listing) or, for tables, the record counts and sizes
of the data files a scan of the step's batches would read (manifests only, no data read). With
``auto``, work above ``Settings.engine_threshold_bytes`` runs on Spark.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pyiceberg.table import Table

from lakehouse.engines import Engine, EngineUnavailableError
from lakehouse.engines.polars import PolarsEngine
from lakehouse.engines.spark import (
    SparkEngine,
    spark_session,
    spark_session_running,
    spark_unavailable,
    stop_spark_session,
)
from lakehouse.files import batch_filter
from lakehouse.landing import LandingZone
from lakehouse.settings import ENGINE_THRESHOLD_BYTES, EngineChoice
from lakehouse.transforms.frames import EngineName

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Work:
    """The size of a step's input: bytes on storage and rows (``None`` when unknown, e.g. CSV)."""

    bytes: int
    rows: int | None

    def __add__(self, other: Work) -> Work:
        rows = None if self.rows is None or other.rows is None else self.rows + other.rows
        return Work(self.bytes + other.bytes, rows)


@dataclass(frozen=True)
class Decision:
    """The engine of a step, why, and the work it was decided on (logged and stamped on snapshots)."""

    engine: EngineName
    reason: str
    bytes: int
    rows: int | None


def landed_work(zone: LandingZone, table: str, batches: list[date]) -> Work:
    """Bytes of ``table``'s landed files of ``batches`` (rows are unknown before parsing).

    Raises:
        LandingError: if a landed file has an unsupported extension.

    """
    return Work(sum(f.size for f in zone.files(table, batches)), None)


def table_work(table: Table, batches: list[date] | None = None, snapshot_id: int | None = None) -> Work:
    """Records and bytes of the data files holding ``batches`` of ``table`` (all when ``None``).

    Read from the manifests of ``snapshot_id`` (default: current). Files are pruned by partition and
    column statistics, so a file shared with other batches counts whole: an upper bound.
    """
    snapshot = table.current_snapshot() if snapshot_id is None else table.snapshot_by_id(snapshot_id)
    if snapshot is None:
        return Work(0, 0)
    tasks = list(table.scan(row_filter=batch_filter(batches), snapshot_id=snapshot.snapshot_id).plan_files())
    return Work(sum(t.file.file_size_in_bytes for t in tasks), sum(t.file.record_count for t in tasks))


def choose_engine(
    choice: EngineChoice,
    work_bytes: int,
    work_rows: int | None,
    threshold_bytes: int,
    *,
    master: str = "local[*]",
) -> Decision:
    """Pick the engine of a step (:meth:`Router.route` logs the decision with its numbers).

    ``polars`` and ``spark`` are taken as asked. ``auto`` picks Spark when ``work_bytes`` exceeds
    ``threshold_bytes``, and falls back to Polars (with a warning) if Spark cannot start here.

    Raises:
        EngineUnavailableError: if ``spark`` is asked for and pyspark or Java is missing.

    """
    if choice == "polars":
        decision = Decision("polars", "asked for polars", work_bytes, work_rows)
    elif choice == "spark":
        unavailable = spark_unavailable(master)
        if unavailable is not None:
            raise EngineUnavailableError(f"--engine spark: {unavailable}")
        decision = Decision("spark", "asked for spark", work_bytes, work_rows)
    elif work_bytes <= threshold_bytes:
        decision = Decision(
            "polars", f"auto: {work_bytes} B <= threshold {threshold_bytes} B", work_bytes, work_rows
        )
    else:
        reason = f"auto: {work_bytes} B > threshold {threshold_bytes} B"
        unavailable = spark_unavailable(master)
        if unavailable is None:
            decision = Decision("spark", reason, work_bytes, work_rows)
        else:
            decision = Decision(
                "polars", f"{reason}, but Spark is unavailable: {unavailable}", work_bytes, work_rows
            )
            log.warning("engine: %s", decision.reason)
    return decision


@dataclass
class Router:
    """Picks the engine of each step from its measured work; starts Spark on its first pick only.

    ``choice`` is the run's ``--engine``; ``master`` and ``conf`` build the SparkSession (see
    :func:`lakehouse.engines.spark.spark_session`) the first time a step goes to Spark.
    """

    choice: EngineChoice = "polars"
    threshold_bytes: int = ENGINE_THRESHOLD_BYTES
    master: str = "local[*]"
    conf: Mapping[str, str] = field(default_factory=dict)
    _spark: SparkEngine | None = field(default=None, init=False, repr=False)
    _spark_steps: int = field(default=0, init=False, repr=False)  # steps running on _spark
    _owns_spark: bool = field(default=False, init=False, repr=False)  # _spark's session started here
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def route(self, step: str, work: Work) -> tuple[Engine[Any], Decision]:
        """The engine for ``step`` (a table id, for the log) with ``work``, and the decision.

        Raises:
            EngineUnavailableError: if Spark is asked for and cannot run here.

        """
        decision = choose_engine(self.choice, work.bytes, work.rows, self.threshold_bytes, master=self.master)
        rows = "unknown" if work.rows is None else work.rows
        log.info(
            "%s: engine %s for %d bytes, %s rows (%s)",
            step,
            decision.engine,
            work.bytes,
            rows,
            decision.reason,
        )
        if decision.engine == "polars":
            return PolarsEngine(), decision
        with self._lock:
            if self._spark is None:
                self._owns_spark = not spark_session_running()
                self._spark = SparkEngine(spark_session(self.master, self.conf))
            self._spark_steps += 1
        return self._spark, decision

    def release(self, engine: Engine[Any]) -> None:
        """The step given ``engine`` by :meth:`route` is done.

        With ``--engine auto``, Spark runs only the rare steps above the threshold: once none is
        running, a session the router started stops and its JVM exits, so the Polars steps that
        follow have the memory (the next Spark step starts a new one, about 10 s). ``--engine
        spark`` keeps it, as does a session the process had before (a notebook's, the tests').
        """
        if engine is not self._spark or self._spark is None:
            return
        with self._lock:
            self._spark_steps -= 1
            if self._spark_steps == 0 and self.choice == "auto" and self._owns_spark:
                stop_spark_session()
                self._spark = None
