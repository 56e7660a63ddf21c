"""The landing zone: ``<landing>/<source>/<table>/dt=YYYY-MM-DD/<file>`` on a local path or S3."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

import pyarrow.fs as pafs

from lakehouse.errors import LandingError
from lakehouse.tables import SOURCE, TPCH

FORMATS = (".csv", ".jsonl", ".parquet")
_PARTITION = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")


@dataclass(frozen=True)
class LandedFile:
    """One landed file: where it is, which table and batch it belongs to, and its size."""

    table: str
    batch: date
    path: str  # as the filesystem knows it
    uri: str  # as users see it (shown in errors and stored in _source_file)
    size: int


class LandingZone:
    """Read access (and seed-time write access) to a landing zone given by a path or URI.

    Every key read or written is confined to ``<root>/<source>/``.
    """

    def __init__(self, uri: str, source: str = SOURCE) -> None:
        """Open the zone at ``uri`` (a path, ``file://`` or ``s3://`` URI)."""
        self.uri = uri.rstrip("/")
        if "://" in self.uri:
            self.fs, root = pafs.FileSystem.from_uri(self.uri)
        else:
            self.fs, root = pafs.LocalFileSystem(), self.uri
        self.root = root.rstrip("/")
        self.source = source

    def _display(self, path: str) -> str:
        prefix = self.uri[: len(self.uri) - len(self.root)] if "://" in self.uri else ""
        return f"{prefix}{path}"

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
        return list(self.fs.get_file_info(pafs.FileSelector(path, recursive=False)))

    def batches(self, table: str | None = None) -> list[date]:
        """Batch dates with a partition directory (of ``table``, or of any table), oldest first."""
        dates: set[date] = set()
        for name in [table] if table else TPCH:
            for entry in self._ls(self.table_dir(name)):
                match = _PARTITION.match(entry.base_name)
                if match and entry.type == pafs.FileType.Directory:
                    dates.add(date.fromisoformat(match.group(1)))
        return sorted(dates)

    def files(self, table: str, batches: list[date]) -> list[LandedFile]:
        """The landed files of ``table`` for the given batch dates, in name order.

        Raises:
            LandingError: if a file has an unsupported extension.

        """
        out = []
        for batch in batches:
            for entry in sorted(self._ls(self.partition_dir(table, batch)), key=lambda e: e.base_name):
                if entry.type != pafs.FileType.File or entry.base_name.startswith((".", "_")):
                    continue
                if not entry.base_name.endswith(FORMATS):
                    raise LandingError(
                        f"{self._display(entry.path)}: unsupported file type (expected {', '.join(FORMATS)})"
                    )
                out.append(LandedFile(table, batch, entry.path, self._display(entry.path), entry.size))
        return out

    def is_empty(self) -> bool:
        """True when no batch has landed yet."""
        return not self.batches()

    def write(self, table: str, batch: date, filename: str, data: bytes) -> str:
        """Write one file into a batch partition (used by the seeder); returns its URI."""
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
