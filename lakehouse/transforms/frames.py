"""The engine-neutral view of a native lazy frame (Polars ``LazyFrame`` or Spark ``DataFrame``).

Transforms take and return native frames, work on their narwhals view in between, and so run
unchanged on Polars and on Spark (classic or Spark Connect).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import narwhals.stable.v2 as nw
from narwhals.typing import IntoLazyFrameT

EngineName = Literal["polars", "spark"]

_ENGINES: dict[nw.Implementation, EngineName] = {
    nw.Implementation.POLARS: "polars",
    nw.Implementation.PYSPARK: "spark",
    nw.Implementation.PYSPARK_CONNECT: "spark",
}


def lazy(native: IntoLazyFrameT) -> nw.LazyFrame[IntoLazyFrameT]:
    """The narwhals view of a native lazy frame.

    Raises:
        TypeError: if ``native`` is not a lazy frame of a supported engine (an eager Polars
            ``DataFrame`` included: call ``.lazy()`` on it first).

    """
    frame = nw.from_native(native, pass_through=True)
    if not isinstance(frame, nw.LazyFrame) or frame.implementation not in _ENGINES:
        raise TypeError(f"expected a Polars LazyFrame or a Spark DataFrame, got {type(native).__name__}")
    return frame


def engine_of(frame: nw.LazyFrame[Any]) -> EngineName:
    """Which engine computes ``frame``."""
    return _ENGINES[frame.implementation]


def concat(frames: Sequence[IntoLazyFrameT]) -> IntoLazyFrameT:
    """The rows of ``frames`` (same engine, same columns in the same order) one after the other.

    Raises:
        ValueError: if ``frames`` is empty.
        TypeError: if a frame is not a lazy frame of a supported engine, or the columns differ.

    """
    if not frames:
        raise ValueError("nothing to concatenate")
    out: IntoLazyFrameT = nw.concat([lazy(f) for f in frames], how="vertical").to_native()
    return out
