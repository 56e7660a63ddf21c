"""Read landed files (CSV, JSON lines, Parquet) as string frames with their origin."""

from __future__ import annotations

import io

import polars as pl

from lakehouse.errors import LandingError
from lakehouse.landing import LandedFile, LandingZone
from lakehouse.tables import ROW_NUMBER, SOURCE_FILE, TPCH


def _parse(data: bytes, name: str) -> pl.DataFrame:
    if name.endswith(".csv"):
        return pl.read_csv(io.BytesIO(data), infer_schema=False, raise_if_empty=False)
    if name.endswith(".jsonl"):
        frame = pl.read_ndjson(io.BytesIO(data), infer_schema_length=None)
    else:
        frame = pl.read_parquet(io.BytesIO(data))
    return frame.with_columns(pl.all().cast(pl.String))


def read_landed(zone: LandingZone, landed: LandedFile) -> pl.DataFrame:
    """The rows of one landed file, every column a string, plus ``_source_file`` and ``_row_number``.

    ``_row_number`` is the 1-based data row within the file. Columns are returned in TPC-H order.

    Raises:
        LandingError: naming the file, if it cannot be parsed or lacks columns of its table.

    """
    spec = TPCH[landed.table]
    try:
        with zone.fs.open_input_file(landed.path) as f:
            frame = _parse(f.read(), landed.path)
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        raise LandingError(f"{landed.uri}: cannot be read: {exc}") from exc
    missing = [c for c in spec.column_names if c not in frame.columns]
    if missing:
        raise LandingError(f"{landed.uri}: missing column(s) {', '.join(missing)}")
    return frame.select(spec.column_names).with_columns(
        pl.lit(landed.uri).alias(SOURCE_FILE),
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias(ROW_NUMBER),
    )
