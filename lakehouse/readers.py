"""Read landed files (CSV, JSON lines, Parquet) as string frames with their origin, whatever they hold.

Every landed row comes out once, with ``_source_file``, ``_row_number`` and ``_error``: null for
a good row, else why the reader could not use it (bronze keeps it, silver quarantines it with that
reason as its rule). Nothing is dropped and nothing raises for what a file contains:

- a file that cannot be read as a whole becomes ONE row: every declared column null,
  ``_row_number`` 0 and ``_error`` ``unreadable_file: <reason>``. Reasons: unsupported file type,
  a link resolving outside the zone, empty file, file too large, compressed (gzip, zstd, bzip2,
  xz, zip, lz4) or Parquet bytes under a text extension, UTF-16, NUL bytes, invalid UTF-8 in the
  header, no header, a declared column missing or duplicated (a wrong delimiter is named as
  such), malformed CSV quoting (with the line), an unreadable or non-scalar Parquet file;
- a row that cannot be used keeps its values (as far as they are known) with
  ``malformed_row: <reason>`` (a CSV record with the wrong number of fields, a row holding bytes
  that are not UTF-8, kept as U+FFFD; a JSON line that is not valid JSON or not an object, or holds
  an object or array for a column) or
  ``oversized_field:<column>`` (a value longer than :attr:`ReadLimits.max_field_chars`, stored
  truncated to it).

Accepted as they come: extra columns (ignored), any column order, a header-only file (no rows), a
UTF-8 byte order mark, CRLF or CR line ends, blank and whitespace-only lines (skipped, not counted
by ``_row_number``), quoted fields holding delimiters, quotes and line breaks, JSON numbers and
booleans (their JSON text, e.g. ``1234.50`` stays ``1234.50``), Parquet columns of any scalar type
(cast to text: ``1995-03-01``, ``12.30``). An empty CSV field is null.

CSV is RFC 4180 as Python's :mod:`csv` reads it (strict): exact about fields per record and
unterminated quotes, which native readers pad or swallow silently. A file whose every line is one
complete record of the header's width (checked by a regex over all lines, in Polars) is parsed by
Polars instead, with the same result several times faster; any other file goes through
:mod:`csv` (~5-30 MB/s a core). Only I/O failures raise (the step fails and a rerun retries).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import logging
import re
import string
from collections.abc import Iterator, Sequence
from functools import partial
from operator import itemgetter
from pathlib import PurePosixPath
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from lakehouse.errors import LandingError
from lakehouse.landing import FORMATS, LandedFile, LandingZone, ReadLimits
from lakehouse.spec import Landing, SourceTable
from lakehouse.tables import ERROR, ROW_NUMBER, SOURCE_FILE
from lakehouse.threads import ContextThreadPool

log = logging.getLogger(__name__)

UNREADABLE_FILE = "unreadable_file"
MALFORMED_ROW = "malformed_row"
OVERSIZED_FIELD = "oversized_field"

_COMPRESSED = (
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"PK\x03\x04", "zip"),
    (b"\x04\x22\x4d\x18", "lz4"),
)
_PARQUET_MAGIC = b"PAR1"
_DELIMITERS = {",": "','", "|": "'|'", ";": "';'", "\t": "tab"}
WHITESPACE = string.whitespace
"""A line holding only these characters is blank: skipped, not counted as a row."""


def _hex(char: str) -> str:
    """``char`` as a regex escape both Python's and Polars' (Rust) engines read, in or out of a class."""
    return f"\\x{ord(char):02x}"


def _field(landing: Landing) -> str:
    """One RFC 4180 field within one line: quoted (a doubled quote escapes one) or unquoted without quotes."""
    d, q = _hex(landing.delimiter), _hex(landing.quote)
    return f"(?:{q}(?:[^{q}\\r\\n]|{q}{q})*{q}|[^{d}{q}\\r\\n]*)"


_SHOWN = 200  # characters of a found header shown in a reason
_FILE = "_file"  # a row's file, by its index among the files read together
_COMMA = Landing()
READ_THREADS = 2
"""Landed files fetched, and read by the exact reader, at a time."""


class UnreadableFileError(LandingError):
    """A landed file cannot be read as a whole; ``reason`` says why (the message names the file too)."""

    def __init__(self, uri: str, reason: str) -> None:
        super().__init__(f"{uri}: {reason}")
        self.uri = uri
        self.reason = reason


class _Rejected(Exception):
    """Internal: the file being parsed is unreadable for ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def landed_columns(spec: SourceTable) -> list[str]:
    """The columns :func:`read_landed` returns for ``spec``: declared ones, then the origin and the error."""
    return [*spec.column_names, SOURCE_FILE, ROW_NUMBER, ERROR]


def read_landed(zone: LandingZone, landed: LandedFile) -> pl.DataFrame:
    """The rows of one landed file, every column a string, with ``_source_file``, ``_row_number``, ``_error``.

    ``_row_number`` is the 1-based data row within the file. Columns are in
    :func:`landed_columns` order. A file that cannot be read is one row with ``_row_number`` 0 and
    ``_error`` ``unreadable_file: <reason>``, logged as a warning naming the file (see the module).

    Raises:
        LandingError: naming the file, if it cannot be fetched (an I/O error: not its content's fault).
        ConnectionError: on a transient storage error (the step is retried).
        TimeoutError: on a transient storage error (the step is retried).

    """
    return read_landed_files(zone, [landed])


def read_landed_files(zone: LandingZone, files: Sequence[LandedFile]) -> pl.DataFrame:
    """The rows of ``files`` (of one table), each file's as :func:`read_landed` reads it, in ``files`` order.

    The CSV files whose every line is a complete record are parsed together, in one Polars pass:
    landed files are often a few kilobytes, where Polars' fixed cost per query (about a
    millisecond) outweighs the parse. The other files go through the exact reader one by one.
    Files are fetched, and read by the exact reader, :data:`READ_THREADS` at a time.

    Raises:
        LandingError: naming the file, if one cannot be fetched (an I/O error).
        ConnectionError: on a transient storage error (the step is retried).
        TimeoutError: on a transient storage error (the step is retried).
        ValueError: if ``files`` is empty or mixes tables.

    """
    tables = {f.spec for f in files}
    if len(tables) != 1:
        raise ValueError(f"expected files of one table, got {sorted(t.name for t in tables) or 'none'}")
    spec = tables.pop()
    with ContextThreadPool(READ_THREADS, thread_name_prefix="landed") as pool:
        fetched = list(pool.map(partial(_csv_data, zone), files))
        native, handled = _csv_native([_native_body(data) for data in fetched], spec, zone.spec.landing)
        rest = [i for i in range(len(files)) if i not in handled]
        declined = [fetched[i] for i in rest]  # fetched once: the exact reader takes these bytes
        del fetched
        exact = list(pool.map(partial(_read_exact, zone), [files[i] for i in rest], declined))
    uris = pl.Series(SOURCE_FILE, [f.uri for f in files], dtype=pl.String)
    native = _finish(native.with_columns(uris.gather(native.get_column(_FILE))), spec, zone.limits)
    _warn_flagged(native)
    if not exact:
        return native.select(landed_columns(spec))
    numbered = [
        frame.with_columns(pl.lit(i, dtype=pl.Int64).alias(_FILE))
        for i, frame in zip(rest, exact, strict=True)
    ]
    frame = pl.concat([native.select(*landed_columns(spec), _FILE), *numbered])
    return frame.sort(_FILE, maintain_order=True).select(landed_columns(spec))


def _read_exact(zone: LandingZone, landed: LandedFile, data: bytes | None) -> pl.DataFrame:
    try:
        return parse_landed(zone, landed, data)
    except UnreadableFileError as exc:
        log.warning("%s: rejected as a whole: %s", landed.uri, exc.reason)
        return rejected_file(landed, exc.reason)


def rejected_file(landed: LandedFile, reason: str) -> pl.DataFrame:
    """The one row that stands for an unreadable file in bronze (and, through silver, in quarantine)."""
    columns = landed.spec.column_names
    return pl.DataFrame(
        {
            **{c: pl.Series(c, [None], dtype=pl.String) for c in columns},
            SOURCE_FILE: [landed.uri],
            ROW_NUMBER: pl.Series(ROW_NUMBER, [0], dtype=pl.Int64),
            ERROR: [f"{UNREADABLE_FILE}: {reason}"],
        }
    )


def parse_landed(zone: LandingZone, landed: LandedFile, data: bytes | None = None) -> pl.DataFrame:
    """One landed file read by the exact reader, as :func:`read_landed` reads it, but unreadable raises.

    ``data`` is the file's bytes if they were fetched (and passed :func:`_load`'s checks) already.

    Raises:
        UnreadableFileError: naming the file and the reason, if it cannot be read as a whole.
        LandingError: naming the file, if it cannot be fetched (an I/O error).
        ConnectionError: on a transient storage error.
        TimeoutError: on a transient storage error.

    """
    spec = landed.spec
    limits = zone.limits
    suffix = PurePosixPath(landed.path).suffix
    try:
        data = _load(zone, landed) if data is None else data
        if suffix == ".parquet":
            chunks = list(_parquet_chunks(data, spec, limits))
        else:
            body = _body(data, suffix)
            del data  # the body replaces it (a copy only when a byte order mark is cut off)
            text = _decode(body)
            if suffix == ".csv":
                chunks = list(_csv_chunks(text, spec, limits, zone.spec.landing))
            else:
                chunks = list(_jsonl_chunks(text, spec, limits))
    except _Rejected as exc:
        raise UnreadableFileError(landed.uri, exc.reason) from None
    frame = pl.concat(chunks) if chunks else _chunk(spec, [], [], [])
    frame = _finish(frame.with_columns(pl.lit(landed.uri, dtype=pl.String).alias(SOURCE_FILE)), spec, limits)
    _warn_flagged(frame)
    return frame.select(landed_columns(spec))


def _load(zone: LandingZone, landed: LandedFile) -> bytes:
    """The bytes of ``landed``, or why they are not read (type, a link outside the zone, size, empty)."""
    suffix = PurePosixPath(landed.path).suffix
    if suffix not in FORMATS:
        raise _Rejected(f"unsupported file type {suffix or '(none)'!r} (expected {', '.join(FORMATS)})")
    if zone.escapes(landed):
        raise _Rejected("a link resolving outside the landing zone")
    if landed.size > zone.limits.max_file_bytes:
        raise _Rejected(f"file too large: {landed.size} bytes (limit {zone.limits.max_file_bytes})")
    data = _fetch(zone, landed, zone.limits)
    if not data:
        raise _Rejected("empty file")
    return data


def _csv_data(zone: LandingZone, landed: LandedFile) -> bytes | None:
    """The bytes of a CSV file, or None for any other file or one :func:`_load` rejects."""
    if PurePosixPath(landed.path).suffix != ".csv":
        return None
    try:
        return _load(zone, landed)
    except _Rejected:
        return None  # the exact reader rejects it again, and says why


def _native_body(data: bytes | None) -> bytes | None:
    """A CSV file's text without a byte order mark, or None if it is not text (the exact reader says why)."""
    if data is None:
        return None
    try:
        return _body(data, ".csv")
    except _Rejected:
        return None


def _warn_flagged(frame: pl.DataFrame) -> None:
    """Log, per file, the rows of ``frame`` that are malformed or oversized (not a rejected file's row)."""
    flagged = pl.col(ERROR).is_not_null() & (pl.col(ROW_NUMBER) > 0)
    if frame.get_column(ERROR).null_count() == frame.height:
        return
    counts = frame.group_by(SOURCE_FILE, maintain_order=True).agg(pl.len(), flagged.sum().alias("bad"))
    for uri, rows, bad in counts.filter(pl.col("bad") > 0).iter_rows():
        log.warning("%s: %d of %d row(s) malformed or oversized (quarantined)", uri, bad, rows)


def _fetch(zone: LandingZone, landed: LandedFile, limits: ReadLimits) -> bytes:
    """The bytes of ``landed``, at most ``max_file_bytes`` of them (a file that grew is rejected)."""
    try:
        with zone.fs.open_input_stream(landed.path, compression=None) as stream:
            data: bytes = stream.read(limits.max_file_bytes + 1)
    except PermissionError as exc:
        raise _Rejected(f"permission denied: {exc.strerror or exc}") from None
    except IsADirectoryError:
        raise _Rejected("a directory, not a file") from None
    except (ConnectionError, TimeoutError):
        raise
    except OSError as exc:
        raise LandingError(f"{landed.uri}: cannot be fetched: {exc}") from exc
    if len(data) > limits.max_file_bytes:
        raise _Rejected(f"file too large: over {limits.max_file_bytes} bytes")
    return data


def _body(data: bytes, suffix: str) -> bytes:
    """``data`` without a UTF-8 byte order mark; or why it is not text."""
    for magic, kind in _COMPRESSED:
        if data.startswith(magic):
            raise _Rejected(f"compressed file with {suffix} extension ({kind})")
    if data.startswith(_PARQUET_MAGIC):
        raise _Rejected(f"Parquet file with {suffix} extension")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise _Rejected("UTF-16 text (byte order mark); expected UTF-8")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise _Rejected(f"binary content: NUL byte at byte offset {nul}")
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8) :]
    return data


def _decode(body: bytes) -> str:
    """``body`` as UTF-8 text; a byte that is not UTF-8 stays a surrogate escape (see :func:`_utf8_row`)."""
    return body.decode("utf-8", errors="surrogateescape")


_ESCAPED = re.compile("[\udc80-\udcff]")


def _utf8_row(values: Sequence[str | None]) -> tuple[list[str | None], str | None]:
    """A row's values with any byte that was not UTF-8 as U+FFFD, and why the row is malformed (or None)."""
    bad = next((m for v in values if v for m in [_ESCAPED.search(v)] if m), None)
    if bad is None:
        return list(values), None
    byte = ord(bad.group()) - 0xDC00
    cleaned = [
        v.encode("utf-8", "surrogateescape").decode("utf-8", "replace") if v and _ESCAPED.search(v) else v
        for v in values
    ]
    return cleaned, f"{MALFORMED_ROW}: not UTF-8: invalid byte 0x{byte:02x}"


def _chunk(
    spec: SourceTable,
    rows: list[Any],
    numbers: list[int],
    errors: list[str | None],
    *,
    empty_is_null: bool = False,
) -> pl.DataFrame:
    frame = pl.DataFrame(rows, schema=dict.fromkeys(spec.column_names, pl.String), orient="row")
    if empty_is_null:  # CSV has no null but the empty field
        frame = frame.select(pl.when(pl.col(c) != "").then(pl.col(c)).alias(c) for c in spec.column_names)
    return frame.with_columns(
        pl.Series(ROW_NUMBER, numbers, dtype=pl.Int64), pl.Series(ERROR, errors, dtype=pl.String)
    )


def _blank(record: list[str]) -> bool:
    return len(record) <= 1 and not "".join(record).strip(WHITESPACE)


def _csv_native(
    bodies: Sequence[bytes | None], spec: SourceTable, landing: Landing = _COMMA
) -> tuple[pl.DataFrame, set[int]]:
    """The rows Polars parses exactly as the exact reader would, of the CSV ``bodies`` it can; and which.

    The rows carry the declared columns, ``_row_number``, ``_error`` and their body's index in
    ``bodies`` (``_file``). A body is taken if it is UTF-8, its header names the table's columns
    and every other non-blank line matches an RFC 4180 record of the header's width whose fields
    hold no line break: then Polars' parse is exactly :func:`_csv_chunks`' (same fields, same
    order), only faster. Anything else (None, invalid UTF-8, a quoted line break, a ragged record,
    a stray or unbalanced quote, a lone CR, a header that does not fit) is left for the exact
    reader to handle and explain. Bodies with the same header are parsed in one Polars pass.
    """
    bodies = [b if b is None or b.isascii() or _utf8(b) else None for b in bodies]
    lines = (
        pl.DataFrame(
            {_FILE: pl.int_range(len(bodies), eager=True), "line": pl.Series(bodies, dtype=pl.Binary)}
        )
        .select(_FILE, pl.col("line").cast(pl.String).str.split("\n"))
        .explode("line")
        .filter(pl.col("line").str.strip_chars(WHITESPACE) != "")
        .with_columns(pl.int_range(pl.len(), dtype=pl.Int64).over(_FILE).alias(ROW_NUMBER))
    )
    frames = [_chunk(spec, [], [], []).with_columns(pl.lit(None, dtype=pl.Int64).alias(_FILE))]
    handled: set[int] = set()
    headers = lines.filter(pl.col(ROW_NUMBER) == 0).group_by("line", maintain_order=True).agg(_FILE)
    field, delimiter = _field(landing), _hex(landing.delimiter)
    for header, files in headers.iter_rows():
        if not re.fullmatch(f"{field}(?:{delimiter}{field})*\r?", header):
            continue
        dialect = {"delimiter": landing.delimiter, "quotechar": landing.quote}
        names = [name.strip() for name in next(csv.reader([header.rstrip("\r")], **dialect))]  # type: ignore[arg-type]
        try:
            positions = _csv_positions(names, spec, landing.delimiter)
        except _Rejected:
            continue
        records = lines.filter(pl.col(_FILE).is_in(files) & (pl.col(ROW_NUMBER) > 0))
        record = "^" + delimiter.join([field] * len(names)) + "\r?$"
        ragged = set(records.filter(~pl.col("line").str.contains(record)).get_column(_FILE))
        if ragged:
            records = records.filter(~pl.col(_FILE).is_in(ragged))
        frame = _parse_records(records, len(names), landing)
        if frame is None:
            continue
        frames.append(
            frame.select(
                *(  # a quoted empty field is null too, as in the exact reader
                    pl.when(pl.col(f"_{p}") != "").then(pl.col(f"_{p}")).alias(c)
                    for p, c in zip(positions, spec.column_names, strict=True)
                ),
                records.get_column(ROW_NUMBER),
                pl.lit(None, dtype=pl.String).alias(ERROR),
                records.get_column(_FILE),
            )
        )
        handled.update(set(files) - ragged)
    return pl.concat(frames), handled


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _parse_records(records: pl.DataFrame, width: int, landing: Landing) -> pl.DataFrame | None:
    """The ``line`` of ``records`` parsed by Polars into ``width`` fields ``_0``, ``_1``...; or None."""
    columns = [f"_{i}" for i in range(width)]
    if records.is_empty():
        return pl.DataFrame(schema=dict.fromkeys(columns, pl.String))
    source = (records.get_column("line").str.join("\n").item() + "\n").encode()
    try:
        frame = pl.read_csv(
            io.BytesIO(source),
            has_header=False,
            new_columns=columns,
            infer_schema=False,
            separator=landing.delimiter,
            quote_char=landing.quote,
        )
    except pl.exceptions.PolarsError:  # whatever Polars refuses, the exact reader reads
        return None
    return frame if frame.shape == (records.height, width) else None


def _csv_positions(names: list[str], spec: SourceTable, expected: str = ",") -> list[int]:
    """Where each declared column is in a CSV header, or why the header does not fit the table."""
    wanted = spec.column_names
    missing = [c for c in wanted if c not in names]
    if missing:
        joined = expected.join(names)
        for delimiter, label in _DELIMITERS.items():
            if (
                delimiter != expected
                and delimiter in joined
                and set(wanted) <= {p.strip() for p in joined.replace(expected, delimiter).split(delimiter)}
            ):
                shown = _DELIMITERS.get(expected, repr(expected))
                raise _Rejected(f"wrong delimiter: the header is {label}-separated (expected {shown})")
        raise _Rejected(f"missing column(s) {', '.join(missing)} (header: {joined[:_SHOWN]!r})")
    duplicated = [c for c in wanted if names.count(c) > 1]
    if duplicated:
        raise _Rejected(f"duplicate column(s) {', '.join(duplicated)}")
    return [names.index(c) for c in wanted]


def _csv_chunks(
    text: str, spec: SourceTable, limits: ReadLimits, landing: Landing = _COMMA
) -> Iterator[pl.DataFrame]:
    """Chunks of the CSV ``text``: a header naming the columns, then records (RFC 4180, strict).

    Fields are split and quoted as ``landing`` declares. A record with the wrong number of fields
    is a malformed row (its fields kept by position).
    """
    # A field may be as large as the file: raise the process-wide limit, never lower it.
    if csv.field_size_limit() < limits.max_file_bytes:
        csv.field_size_limit(limits.max_file_bytes)
    escaped = _ESCAPED.search(text) is not None  # some bytes were not UTF-8: find their rows
    records = csv.reader(
        io.StringIO(text, newline=""), delimiter=landing.delimiter, quotechar=landing.quote, strict=True
    )
    try:
        header = next((r for r in records if not _blank(r)), None)
        if header is None:
            raise _Rejected("no header row (only blank lines)")
        header_error = _utf8_row(header)[1] if escaped else None
        if header_error is not None:
            raise _Rejected(f"not UTF-8 in the header: {header_error.rpartition(': ')[2]}")
        names = [name.strip() for name in header]
        # a tuple: every declared table has several columns
        pick = itemgetter(*_csv_positions(names, spec, landing.delimiter))
        width = len(names)
        rows: list[Any] = []
        numbers: list[int] = []
        errors: list[str | None] = []
        number = 0
        for record in records:
            if _blank(record):
                continue
            number += 1
            error = None
            if len(record) != width:
                error = f"{MALFORMED_ROW}: {len(record)} fields, expected {width}"
                record = (record + [""] * width)[:width]
            values: Sequence[str | None] = record
            if escaped:
                values, not_utf8 = _utf8_row(record)
                error = error or not_utf8
            errors.append(error)
            rows.append(pick(values))
            numbers.append(number)
            if len(rows) == limits.chunk_rows:
                yield _chunk(spec, rows, numbers, errors, empty_is_null=True)
                rows, numbers, errors = [], [], []
    except csv.Error as exc:
        hint = " (an unbalanced quote?)" if "end of data" in str(exc) else ""
        raise _Rejected(f"malformed CSV at line {records.line_num}: {exc}{hint}") from None
    extra = [n for n in names if n not in spec.column_names]
    if extra:
        log.info("ignoring extra column(s) %s", ", ".join(extra)[:_SHOWN])
    yield _chunk(spec, rows, numbers, errors, empty_is_null=True)


def _json_row(line: str, spec: SourceTable) -> tuple[list[str | None], str | None, set[str] | None]:
    """One JSON line's values for the declared columns, its error (or None), its keys (None if no object)."""
    nulls: list[str | None] = [None] * len(spec.columns)
    try:
        value = json.loads(line, parse_int=str, parse_float=str, parse_constant=str)
    except json.JSONDecodeError as exc:
        return nulls, f"{MALFORMED_ROW}: invalid JSON at column {exc.colno}: {exc.msg}", None
    except RecursionError:
        return nulls, f"{MALFORMED_ROW}: JSON nested too deeply", None
    if not isinstance(value, dict):
        return nulls, f"{MALFORMED_ROW}: a JSON line must be an object, not {_json_kind(value)}", None
    values: list[str | None] = []
    error = None
    for column in spec.column_names:
        item = value.get(column)
        if item is None or isinstance(item, str):
            values.append(item)
        elif isinstance(item, bool):
            values.append("true" if item else "false")
        else:  # an object or an array: kept as JSON text for the quarantine
            values.append(json.dumps(item))
            error = error or f"{MALFORMED_ROW}: {column} holds a JSON {_json_kind(item)}"
    return values, error, set(value)


def _json_kind(value: object) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "string" if isinstance(value, str) else "scalar"


def _jsonl_chunks(text: str, spec: SourceTable, limits: ReadLimits) -> Iterator[pl.DataFrame]:
    """Chunks of the JSON lines ``text``: one object per non-blank line; numbers keep their JSON text.

    A line that is no JSON object is a malformed row; the file is unreadable if a declared column is
    in none of its objects.
    """
    rows: list[Any] = []
    numbers: list[int] = []
    errors: list[str | None] = []
    named: set[str] = set()
    objects = number = 0
    escaped = _ESCAPED.search(text) is not None  # some bytes were not UTF-8: find their rows
    for line in io.StringIO(text, newline=""):
        if not line.strip(WHITESPACE):
            continue
        number += 1
        values, error, keys = _json_row(line.rstrip("\r\n"), spec)
        if escaped:
            values, not_utf8 = _utf8_row(values)
            error = error or not_utf8
        if keys is not None:
            objects += 1
            named |= keys
        rows.append(values)
        numbers.append(number)
        errors.append(error)
        if len(rows) == limits.chunk_rows:
            yield _chunk(spec, rows, numbers, errors)
            rows, numbers, errors = [], [], []
    missing = [c for c in spec.column_names if c not in named]
    if objects and missing:
        raise _Rejected(f"missing column(s) {', '.join(missing)} (in every line)")
    yield _chunk(spec, rows, numbers, errors)


def _parquet_chunks(data: bytes, spec: SourceTable, limits: ReadLimits) -> Iterator[pl.DataFrame]:
    """Chunks of the Parquet file ``data``: its declared columns (others are not read) cast to text."""
    if not data.startswith(_PARQUET_MAGIC):
        for magic, kind in _COMPRESSED:
            if data.startswith(magic):
                raise _Rejected(f"compressed file with .parquet extension ({kind})")
        raise _Rejected("not a Parquet file (no PAR1 magic bytes)")
    try:
        parquet = pq.ParquetFile(pa.BufferReader(data))
        schema = parquet.schema_arrow
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise _Rejected(f"not a readable Parquet file: {exc}") from None
    wanted = spec.column_names
    missing = [c for c in wanted if c not in schema.names]
    if missing:
        raise _Rejected(
            f"missing column(s) {', '.join(missing)} (columns: {', '.join(schema.names)[:_SHOWN]})"
        )
    duplicated = [c for c in wanted if schema.names.count(c) > 1]
    if duplicated:
        raise _Rejected(f"duplicate column(s) {', '.join(duplicated)}")
    for column in wanted:
        kind = schema.field(column).type
        if pa.types.is_nested(kind):
            raise _Rejected(f"column {column} has type {kind}, not a scalar")
    meta = parquet.metadata
    inflated = sum(
        group.column(i).total_uncompressed_size
        for group in (meta.row_group(r) for r in range(meta.num_row_groups))
        for i in range(group.num_columns)
        if group.column(i).path_in_schema.split(".")[0] in wanted
    )
    if inflated > limits.max_file_bytes:
        raise _Rejected(f"decompresses to {inflated} bytes (limit {limits.max_file_bytes})")
    number = 0
    try:
        for batch in parquet.iter_batches(batch_size=limits.chunk_rows, columns=wanted):
            frame = pl.DataFrame(pl.from_arrow(batch))
            frame = frame.select(_as_text(frame, c) for c in wanted)
            yield frame.with_columns(
                pl.int_range(number + 1, number + 1 + frame.height, dtype=pl.Int64).alias(ROW_NUMBER),
                pl.lit(None, dtype=pl.String).alias(ERROR),
            )
            number += frame.height
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise _Rejected(f"corrupt Parquet data: {exc}") from None


def _as_text(frame: pl.DataFrame, column: str) -> pl.Series:
    series = frame.get_column(column)
    try:
        return series.cast(pl.String)
    except pl.exceptions.PolarsError as exc:
        raise _Rejected(f"column {column} of type {series.dtype} cannot be read as text: {exc}") from None


def _finish(frame: pl.DataFrame, spec: SourceTable, limits: ReadLimits) -> pl.DataFrame:
    """``frame`` with its oversized values flagged (``_error``, unless it has one) and truncated."""
    columns = spec.column_names
    limit = limits.max_field_chars
    # Bytes bound characters from above and cost nothing to count: most files stop here.
    long = frame.select(pl.any_horizontal(pl.col(c).str.len_bytes() > limit for c in columns).any()).item()
    if not long:
        return frame
    oversized = [
        pl.when(pl.col(c).str.len_chars() > limit).then(pl.lit(f"{OVERSIZED_FIELD}:{c}")) for c in columns
    ]
    return frame.with_columns(
        *(pl.col(c).str.slice(0, limit) for c in columns),
        pl.coalesce(pl.col(ERROR), *oversized).alias(ERROR),
    )
