"""Landed rows → bronze rows."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl

from lakehouse.tables import BATCH_DATE, LOADED_AT, RUN_ID


def to_bronze(rows: pl.LazyFrame, *, batch: date, run_id: str, loaded_at: datetime) -> pl.LazyFrame:
    """Add the load metadata of one batch to landed rows; values stay as they came."""
    return rows.with_columns(
        pl.lit(batch, dtype=pl.Date).alias(BATCH_DATE),
        pl.lit(run_id).alias(RUN_ID),
        pl.lit(loaded_at, dtype=pl.Datetime("us", "UTC")).alias(LOADED_AT),
    )
