"""The landing zone: ``<landing>/<source>/<table>/dt=YYYY-MM-DD/<file>`` on a local path or S3.

Only that layout is read. Anything else found while listing is skipped with a warning naming it
(logged once per zone), never read and never followed outside the zone:

- directories under ``<source>/`` that are no table of the source (see :meth:`LandingZone.unknown_tables`);
- entries of a table directory that are not a ``dt=YYYY-MM-DD`` partition of a real calendar day
  (``dt=../x``, ``dt=1995-13-45``, ``dt=1995-3-1``, stray files);
- in a partition, sub-directories and names starting with ``.`` or ``_`` (hidden files, in-flight
  uploads, writer markers such as ``_SUCCESS``).

Every other file of a partition is landed data: :func:`lakehouse.readers.read_landed` reads it or
rejects it as a whole (unsupported type, unreadable content, or a local symlink resolving outside
the zone). A listed name is one path component, so a name such as ``a..b.csv`` cannot leave its
partition; nothing is ever built from a name but ``<partition>/<name>``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

import pyarrow.fs as pafs

from lakehouse.errors import LandingError
from lakehouse.spec import Source, SourceTable

log = logging.getLogger(__name__)

FORMATS = (".csv", ".jsonl", ".parquet")
_PARTITION = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")
_NOT_DATA = (".", "_")


@dataclass(frozen=True)
class ReadLimits:
    """Per-file bounds of the landing readers, so one pathological file cannot exhaust memory.

    - ``max_file_bytes`` (256 MiB): a larger file (for Parquet: one whose declared columns decompress
      to more) is rejected unread, as ``unreadable_file: file too large ...``;
    - ``max_field_chars`` (64 Ki): a longer value makes its row ``oversized_field:<column>``,
      stored truncated to that length (far above any real value);
    - ``chunk_rows`` (64 Ki): rows converted at a time by the exact CSV and JSON readers, and per
      Parquet batch.

    Each file is read whole, and bronze reads a group of files together (up to 32 MiB of landed
    bytes, or one larger file): beyond the bronze batch being built, reading well-formed CSV
    needs about ten times the group's bytes (measured: 808 MiB for one 83 MiB file of line items,
    115 MiB for a 9.5 MiB month of small ones), plus one chunk of Python objects on the exact
    path. Larger inputs belong split upstream, or on Spark.
    """

    max_file_bytes: int = 256 * 1024 * 1024
    max_field_chars: int = 64 * 1024
    chunk_rows: int = 65_536

    def __post_init__(self) -> None:
        """Check the limits are positive.

        Raises:
            ValueError: if a limit is not positive.

        """
        if min(self.max_file_bytes, self.max_field_chars, self.chunk_rows) <= 0:
            raise ValueError(f"read limits must be positive: {self}")


def _filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem of a path, ``file://`` or ``s3://`` URI, and the path on it."""
    if "://" in uri:
        fs, path = pafs.FileSystem.from_uri(uri)
        return fs, path
    return pafs.LocalFileSystem(), uri


def undeclared_folders(uri: str, sources: Iterable[str]) -> list[str]:
    """The folders directly under the landing zone ``uri`` that no source of ``sources`` declares, by name.

    Names starting with ``.`` or ``_`` are not data and are left out.
    """
    fs, path = _filesystem(uri.rstrip("/"))
    info = fs.get_file_info(path)
    if info.type != pafs.FileType.Directory:
        return []
    declared = set(sources)
    entries = fs.get_file_info(pafs.FileSelector(path, recursive=False))
    return sorted(
        e.base_name
        for e in entries
        if e.type == pafs.FileType.Directory
        and e.base_name not in declared
        and not e.base_name.startswith(_NOT_DATA)
    )


@dataclass(frozen=True)
class LandedFile:
    """One landed file: where it is, which table and batch it belongs to, and its size."""

    spec: SourceTable
    batch: date
    path: str  # as the filesystem knows it
    uri: str  # as users see it (shown in errors and stored in _source_file)
    size: int

    @property
    def table(self) -> str:
        """The landed table's name."""
        return self.spec.name


class LandingZone:
    """Read access (and seed-time write access) to a landing zone given by a path or URI.

    Every key read or written is confined to ``<root>/<source>/``.
    """

    def __init__(self, uri: str, source: Source, limits: ReadLimits | None = None) -> None:
        """Open ``source``'s part of the zone at ``uri`` (a path, ``file://`` or ``s3://`` URI)."""
        self.uri = uri.rstrip("/")
        self.fs, root = _filesystem(self.uri)
        self.root = root.rstrip("/")
        self.spec = source
        self.source = source.name
        self.limits = limits or ReadLimits()
        self._warned: set[str] = set()

    def _display(self, path: str) -> str:
        prefix = self.uri[: len(self.uri) - len(self.root)] if "://" in self.uri else ""
        return f"{prefix}{path}"

    def _skip(self, path: str, why: str) -> None:
        """Log once per zone that ``path`` is not read, and why."""
        if path not in self._warned:
            self._warned.add(path)
            log.warning("landing zone: %s is not read: %s", self._display(path), why)

    def table_dir(self, table: str) -> str:
        """The directory of one table."""
        return f"{self.root}/{self.source}/{table}"

    def partition_dir(self, table: str, batch: date) -> str:
        """The directory of one table's batch."""
        return f"{self.table_dir(table)}/dt={batch.isoformat()}"

    def _ls(self, path: str) -> list[pafs.FileInfo]:
        info = self.fs.get_file_info(path)
        if info.type != pafs.FileType.Directory:
            return []
        return sorted(
            self.fs.get_file_info(pafs.FileSelector(path, recursive=False)), key=lambda e: e.base_name
        )

    def unknown_tables(self) -> list[str]:
        """Directories under ``<root>/<source>/`` that are no table of the source, in name order.

        Each is also logged once as a warning (as are other skipped entries) when first seen by
        this method, :meth:`batches` or :meth:`files`.
        """
        unknown = [
            e.base_name
            for e in self._ls(f"{self.root}/{self.source}")
            if e.type == pafs.FileType.Directory and e.base_name not in self.spec.tables
        ]
        expected = ", ".join(self.spec.tables)
        for name in unknown:
            self._skip(
                self.table_dir(name), f"no such table in source {self.source} (expected one of {expected})"
            )
        return unknown

    def _partitions(self, table: str) -> dict[date, str]:
        """The batch partitions of ``table`` by date; other entries are skipped with a warning."""
        out: dict[date, str] = {}
        for entry in self._ls(self.table_dir(table)):
            if entry.type != pafs.FileType.Directory:
                self._skip(entry.path, "not in a dt=YYYY-MM-DD partition")
                continue
            match = _PARTITION.match(entry.base_name)
            if match is None:
                self._skip(entry.path, "not a dt=YYYY-MM-DD partition")
                continue
            try:
                out[date.fromisoformat(match.group(1))] = entry.path
            except ValueError:
                self._skip(entry.path, f"{match.group(1)} is not a calendar date")
        return out

    def batches(self, table: str | None = None) -> list[date]:
        """Batch dates with a partition directory (of ``table``, or of any table), oldest first."""
        self.unknown_tables()
        dates: set[date] = set()
        for name in [table] if table else self.spec.tables:
            dates.update(self._partitions(name))
        return sorted(dates)

    def files(self, table: str, batches: list[date]) -> list[LandedFile]:
        """The landed files of ``table`` for the given batch dates, by batch then name.

        Every regular file of a partition is listed whatever its extension (the reader rejects
        what it cannot read); hidden and ``_`` files and sub-directories are skipped with a warning.
        """
        self.unknown_tables()
        partitions = self._partitions(table)
        out = []
        for batch in sorted(set(batches)):
            if batch not in partitions:
                continue
            for entry in self._ls(partitions[batch]):
                if entry.type == pafs.FileType.Directory:
                    self._skip(entry.path, "a directory inside a partition")
                elif entry.base_name.startswith(_NOT_DATA):
                    self._skip(entry.path, "names starting with '.' or '_' are not data")
                elif entry.type != pafs.FileType.File:
                    self._skip(entry.path, "not a regular file")
                else:
                    out.append(
                        LandedFile(
                            self.spec.tables[table],
                            batch,
                            entry.path,
                            self._display(entry.path),
                            entry.size or 0,
                        )
                    )
        return out

    def landed_bytes(self) -> dict[date, int]:
        """Bytes landed per batch date, all tables together: one recursive listing per table.

        For planning (chunk sizes): entries :meth:`files` would skip are not counted, and not warned
        about here.
        """
        out: dict[date, int] = {}
        for table in self.spec.tables:
            root = self.table_dir(table)
            if self.fs.get_file_info(root).type != pafs.FileType.Directory:
                continue
            for entry in self.fs.get_file_info(pafs.FileSelector(root, recursive=True)):
                partition, _, name = entry.path[len(root) + 1 :].partition("/")
                match = _PARTITION.match(partition)
                if entry.type != pafs.FileType.File or "/" in name or name.startswith(_NOT_DATA) or not match:
                    continue
                try:
                    batch = date.fromisoformat(match.group(1))
                except ValueError:
                    continue
                out[batch] = out.get(batch, 0) + (entry.size or 0)
        return out

    def escapes(self, landed: LandedFile) -> bool:
        """True if ``landed`` is a local symlink (or under one) resolving outside the zone's root.

        Object stores have no links: always False there.
        """
        if not isinstance(self.fs, pafs.LocalFileSystem):
            return False
        root = os.path.realpath(f"{self.root}/{self.source}")
        return os.path.commonpath([root, os.path.realpath(landed.path)]) != root

    def is_empty(self) -> bool:
        """True when no batch has landed yet."""
        return not self.batches()

    def write(self, table: str, batch: date, filename: str, data: bytes) -> str:
        """Write one file into a batch partition (used by the seeder); returns its URI.

        Raises:
            LandingError: if ``filename`` contains ``/`` or starts with ``.``.

        """
        if "/" in filename or filename.startswith("."):
            raise LandingError(f"invalid landing file name {filename!r}")
        directory = self.partition_dir(table, batch)
        self.fs.create_dir(directory, recursive=True)
        path = f"{directory}/{filename}"
        with self.fs.open_output_stream(path) as out:
            out.write(data)
        return self._display(path)

    def _meta_path(self, filename: str) -> str:
        if "/" in filename or not filename.startswith("_"):
            raise LandingError(f"invalid metadata file name {filename!r} (must start with '_')")
        return f"{self.root}/{self.source}/{filename}"

    def write_meta(self, filename: str, data: bytes) -> str:
        """Write a metadata file (e.g. the seed manifest) under ``<root>/<source>/``; returns its URI.

        It is in no table directory, so readers never take it for data.

        Raises:
            LandingError: if ``filename`` does not start with ``_`` or contains ``/``.

        """
        path = self._meta_path(filename)
        self.fs.create_dir(f"{self.root}/{self.source}", recursive=True)
        with self.fs.open_output_stream(path) as out:
            out.write(data)
        return self._display(path)

    def read_meta(self, filename: str) -> bytes:
        """The content of a metadata file written by :meth:`write_meta`.

        Raises:
            LandingError: if ``filename`` is invalid or the file does not exist.

        """
        path = self._meta_path(filename)
        if self.fs.get_file_info(path).type != pafs.FileType.File:
            raise LandingError(f"{self._display(path)}: no such file")
        with self.fs.open_input_stream(path) as f:
            data: bytes = f.read()
        return data
