"""Landed rows → bronze rows."""

from __future__ import annotations

from datetime import date, datetime

import narwhals.stable.v2 as nw
from narwhals.typing import IntoLazyFrameT

from lakehouse.tables import BATCH_DATE, LOADED_AT, RUN_ID
from lakehouse.transforms.frames import lazy


def to_bronze(rows: IntoLazyFrameT, *, batch: date, run_id: str, loaded_at: datetime) -> IntoLazyFrameT:
    """Add the load metadata of one batch to landed rows; values stay as they came.

    Raises:
        TypeError: if ``rows`` is not a lazy frame of a supported engine.

    """
    return (
        lazy(rows)
        .with_columns(
            nw.lit(batch, dtype=nw.Date()).alias(BATCH_DATE),
            nw.lit(run_id, dtype=nw.String()).alias(RUN_ID),
            nw.lit(loaded_at, dtype=nw.Datetime("us", "UTC")).alias(LOADED_AT),
        )
        .to_native()
    )
