"""Run flows in subprocesses against a lakehouse home and read its tables back, for reliability tests.

A :class:`Home` is a ``LAKEHOUSE_HOME`` (embedded SQLite catalog and local warehouse, or another
catalog through ``PYICEBERG_*`` variables) plus the landing zone and the Prefect server every run
reports to. Runs are ``python -m flows.<name>`` child processes with a clean environment, their
output kept in ``<home>.logs/``. Table contents are read in this process, load-metadata columns
that differ between runs (run id, load time) aside, sorted, so two lakehouses compare with ``==``.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.table import Table

from lakehouse.catalog import RetryingSqlCatalog, embedded_default
from lakehouse.tables import (
    BATCH_DATE,
    BRONZE,
    GOLD,
    LOADED_AT,
    NAMESPACES,
    QUARANTINE,
    ROW_NUMBER,
    RUN_ID,
    SILVER,
    SOURCE_FILE,
)
from tests.declared import REGISTRY

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
VOLATILE = (RUN_ID, LOADED_AT)
"""Load metadata that differs between two runs of the same data; every other column is compared."""
RUN_TIMEOUT_S = 900
SOAK = os.environ.get("RELIABILITY_SOAK", "") not in ("", "0", "false")
"""Longer variant, run by hand: ``RELIABILITY_SOAK=1 pytest tests/reliability -m slow``.

Not a ``LAKEHOUSE_*`` variable: tests/conftest.py clears those before the tests start.
"""

_counter = itertools.count(1)


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without lakehouse, pyiceberg, AWS and Prefect settings, plus ``extra``."""
    prefixes = ("PYICEBERG_", "LAKEHOUSE_", "AWS_", "PREFECT_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(
        {
            "SODA_CORE_TELEMETRY_ENABLED": "false",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_EXTRA_LOGGERS": "lakehouse,checks",
            "PYICEBERG_HOME": str(ROOT / ".prefect-test" / "no-pyiceberg-config"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class Run:
    """A finished child process: its exit code (negative: killed by that signal) and output."""

    args: tuple[str, ...]
    returncode: int
    output: str
    seconds: float
    log_path: Path

    @property
    def killed(self) -> bool:
        """Whether the process died of SIGKILL."""
        return self.returncode == -9

    def tail(self, chars: int = 6000) -> str:
        """The end of the output, for assertion messages."""
        return f"$ {' '.join(self.args)} -> {self.returncode}\n{self.output[-chars:]}"


@dataclass
class Home:
    """A lakehouse home, its landing zone, the Prefect server runs report to, and catalog variables."""

    path: Path
    landing: str
    api_url: str
    catalog_env: dict[str, str] = field(default_factory=dict)
    catalog_name: str = "lakehouse"
    catalog_properties: dict[str, str] | None = None  # None: the embedded default under ``path``

    @property
    def logs(self) -> Path:
        """Where the output of every run is kept."""
        return self.path.parent / f"{self.path.name}.logs"

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of a run in this home."""
        return clean_env(
            {
                "LAKEHOUSE_HOME": str(self.path),
                "LAKEHOUSE_LANDING_URI": self.landing,
                "LAKEHOUSE_CATALOG": self.catalog_name,
                # A batch of a few orders with one bad row is over the 5% default: the runs here
                # are about commits, not about the gate.
                "LAKEHOUSE_QUARANTINE_MAX_SHARE": "0.5",
                "PREFECT_API_URL": self.api_url,
                # Prefect's result storage (the step cache) lives in the home: restoring a home
                # restores the cache that goes with its tables.
                "PREFECT_HOME": str(self.path / "prefect"),
                **self.catalog_env,
                **(extra or {}),
            }
        )

    def start(
        self, *args: str, extra: Mapping[str, str] | None = None
    ) -> tuple[subprocess.Popen[bytes], Path]:
        """Start ``python -m <args>`` in this home; returns the process and its log file."""
        self.logs.mkdir(parents=True, exist_ok=True)
        log_path = self.logs / f"{next(_counter):03d}-{args[0].replace('.', '-')}.log"
        with log_path.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", *args],
                cwd=ROOT,
                env=self.env(extra),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return proc, log_path

    def wait(
        self, proc: subprocess.Popen[bytes], log_path: Path, began: float, timeout: float = RUN_TIMEOUT_S
    ) -> Run:
        """Wait for ``proc`` (killed with SIGKILL past ``timeout``)."""
        try:
            proc.wait(timeout=max(1.0, timeout - (time.monotonic() - began)))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        args = tuple(str(a) for a in proc.args[2:])  # type: ignore[index]
        output = log_path.read_text(errors="replace")
        return Run(args, proc.returncode, output, time.monotonic() - began, log_path)

    def run(self, *args: str, extra: Mapping[str, str] | None = None, kill_after: float | None = None) -> Run:
        """Run ``python -m <args>`` to its end, or SIGKILL it ``kill_after`` seconds after its start."""
        began = time.monotonic()
        proc, log_path = self.start(*args, extra=extra)
        if kill_after is not None:
            try:
                proc.wait(timeout=kill_after)
            except subprocess.TimeoutExpired:
                proc.kill()  # our own child, by PID
        result = self.wait(proc, log_path, began)
        log.info("%s: exit %s in %.1f s", " ".join(args), result.returncode, result.seconds)
        return result

    def run_ok(self, *args: str, extra: Mapping[str, str] | None = None) -> Run:
        """Run ``python -m <args>`` and assert it succeeded, every task included."""
        result = self.run(*args, extra=extra)
        assert_succeeded(result)
        return result

    @contextlib.contextmanager
    def catalog(self) -> Iterator[Catalog]:
        """The home's catalog, opened in this process and closed after use (its files may be replaced)."""
        props = self.catalog_properties or embedded_default(self.path)
        if props.get("type", "sql") != "sql":
            yield load_catalog(self.catalog_name, **props)
            return
        catalog = RetryingSqlCatalog(self.catalog_name, **props)
        try:
            yield catalog
        finally:
            catalog.engine.dispose()

    def save(self, to: Path) -> None:
        """Copy the home (catalog, warehouse, step cache) to ``to``, replacing it."""
        shutil.rmtree(to, ignore_errors=True)
        shutil.copytree(self.path, to, symlinks=True)

    def restore(self, saved: Path) -> None:
        """Put back a copy made by :meth:`save` (same path, so the warehouse locations hold)."""
        shutil.rmtree(self.path, ignore_errors=True)
        shutil.copytree(saved, self.path, symlinks=True)


def assert_succeeded(run: Run) -> None:
    """Assert ``run`` exited 0 and no task of it ended failed.

    A flow must fail when a task does; the second check catches a run that exits 0 anyway.
    """
    assert run.returncode == 0, run.tail()
    failed = [line for line in run.output.splitlines() if "Finished in state Failed" in line]
    assert not failed, f"exit 0 although tasks failed: {failed}\n{run.tail()}"


def table_ids(catalog: Catalog) -> list[str]:
    """Every table of the lakehouse namespaces, sorted."""
    return sorted(".".join(t) for ns in NAMESPACES for t in catalog.list_tables(ns))


def content(table: Table) -> pl.DataFrame:
    """The rows of ``main``, volatile load metadata aside, sorted on every column."""
    frame = pl.from_arrow(table.scan().to_arrow())
    assert isinstance(frame, pl.DataFrame)
    frame = frame.select([c for c in frame.columns if c not in VOLATILE])
    return frame.sort(frame.columns, nulls_last=True) if frame.columns else frame


def contents(catalog: Catalog, tables: list[str] | None = None) -> dict[str, pl.DataFrame]:
    """:func:`content` of ``tables`` (default: every table)."""
    return {t: content(catalog.load_table(t)) for t in tables or table_ids(catalog)}


def snapshot_ids(catalog: Catalog) -> dict[str, int | None]:
    """``main``'s snapshot id of every table."""
    return {t: catalog.load_table(t).metadata.current_snapshot_id for t in table_ids(catalog)}


def _batches(frame: pl.DataFrame) -> dict[Any, pl.DataFrame]:
    if BATCH_DATE not in frame.columns:
        return {None: frame}
    return {key[0]: part for key, part in frame.partition_by(BATCH_DATE, as_dict=True).items()}


def partial_batches(got: pl.DataFrame, pre: pl.DataFrame, post: pl.DataFrame) -> list[str]:
    """The batches of ``got`` that are neither exactly as in ``pre`` nor exactly as in ``post``.

    Batches are ``_batch_date`` values (the whole table if it has none). A batch missing from a
    state is empty in it.
    """
    if got.equals(pre) or got.equals(post):
        return []
    if got.columns != pre.columns or got.columns != post.columns:
        return ["<columns differ>"]
    mine, before, after = _batches(got), _batches(pre), _batches(post)
    bad = []
    for batch in sorted(set(mine) | set(before) | set(after), key=str):
        rows = mine.get(batch, got.clear())
        if not (rows.equals(before.get(batch, got.clear())) or rows.equals(after.get(batch, got.clear()))):
            bad.append(str(batch))
    return bad


def dates(start: date, count: int) -> list[date]:
    """``count`` consecutive dates from ``start``."""
    return [start + timedelta(days=i) for i in range(count)]


def row_key(table_id: str, columns: list[str]) -> tuple[str, ...]:
    """The columns that identify a row of ``table_id``.

    Bronze and quarantine rows by their origin (file, row number), silver by the declared key, gold
    dimensions by their surrogate key (first ``*_key`` column); other tables by the whole row.
    """
    namespace, name = table_id.split(".")
    if namespace in (BRONZE, QUARANTINE):
        return (SOURCE_FILE, ROW_NUMBER)
    if namespace == SILVER:
        return REGISTRY.table(table_id).key or tuple(columns)
    surrogate = [c for c in columns if c.endswith("_key")]
    if namespace == GOLD and name.startswith("dim_") and surrogate:
        return (surrogate[0],)
    return tuple(columns)


def duplicated_keys(table_id: str, frame: pl.DataFrame) -> int:
    """How many rows of ``frame`` share their :func:`row_key` with another row."""
    key = row_key(table_id, frame.columns)
    return int(frame.select(key).is_duplicated().sum()) if frame.height else 0
