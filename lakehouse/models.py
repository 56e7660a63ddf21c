"""Gold models: plain frame functions declared with their inputs, output columns and materialization.

A source's ``models.py`` declares each gold table with :func:`model`::

    @model(
        "dim_product",
        inputs={"products": batches("silver.products")},
        materialization=merge("sku"),
        columns={"sku": "string", "title": "string", "price": "decimal(8,2)"},
    )
    def dim_product(products):
        return lazy(products).select(...).to_native()

The function takes one native lazy frame per input (named by its parameters, as Dagster assets
take theirs) and returns the model's rows with ``_batch_date``; it runs unchanged on Polars and
Spark. Everything else is derived from the declaration: the build order and upstream failures
(from the inputs), the batches a model is built for (those of the landed tables its
batch-scoped inputs come from), the router's work, cache keys (which include a hash of the
function's source, so an edited model recomputes), lineage and the table's schema.

Inputs are read whole (a plain identifier), in the processed batches (:func:`batches`), or, for
a reference table, as every version landed in the batches (:func:`versions`: the bronze rows
conformed by the silver rules, before the latest-wins merge: what an SCD2 dimension is built
from). Materializations: :func:`replace` (the model's batches are replaced), :func:`merge` (rows
replace those of the same key) and :func:`scd2` (version chains by tracked columns, see
:mod:`lakehouse.transforms.scd2`).
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Scope = Literal["all", "batches", "versions"]
MODEL_ATTRIBUTE = "__lakehouse_model__"


@dataclass(frozen=True)
class Input:
    """A table a model reads, and which of its rows: all, the processed batches', or their versions."""

    table: str
    scope: Scope = "all"


def batches(table: str) -> Input:
    """Read ``table``'s rows of the processed batches only."""
    return Input(table, "batches")


def versions(table: str) -> Input:
    """Read every version of a silver reference table landed in the processed batches."""
    return Input(table, "versions")


@dataclass(frozen=True)
class Materialization:
    """How a model's rows reach its table: replace batches, merge by key, or SCD2 chains by key."""

    kind: Literal["replace", "merge", "scd2"]
    key: tuple[str, ...] = ()
    tracked: tuple[str, ...] = ()
    surrogate_key: str | None = None


def replace() -> Materialization:
    """The model's rows replace those of the batches they belong to (a fact or a mart)."""
    return Materialization("replace")


def merge(*key: str) -> Materialization:
    """The model's rows replace every row with the same ``key`` (a Type-1 dimension)."""
    return Materialization("merge", key)


def scd2(key: str, *, tracked: tuple[str, ...], surrogate_key: str | None = None) -> Materialization:
    """SCD2 version chains per ``key``: a change of a ``tracked`` column opens a version.

    ``surrogate_key`` names a column that gets ``key × 10⁸ + yyyymmdd(valid_from)`` (``key``
    must then be an integer column).
    """
    return Materialization("scd2", (key,), tracked, surrogate_key)


@dataclass(frozen=True)
class ModelDef:
    """A declared model before its source is known (what :func:`model` attaches to the function)."""

    name: str
    inputs: Mapping[str, Input]
    materialization: Materialization
    columns: Mapping[str, str]
    description: str | None


def model(
    name: str,
    *,
    inputs: Mapping[str, Input | str],
    materialization: Materialization,
    columns: Mapping[str, str],
    description: str | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare the decorated function as gold model ``name`` (see the module).

    ``inputs`` maps each parameter of the function to a table identifier (read whole) or an
    :class:`Input`; ``columns`` maps each output column to its type (as in a source spec),
    ``_batch_date`` and ``_run_id`` excluded (they are added).
    """
    declared = {k: v if isinstance(v, Input) else Input(v) for k, v in inputs.items()}

    def register(function: Callable[..., Any]) -> Callable[..., Any]:
        setattr(
            function, MODEL_ATTRIBUTE, ModelDef(name, declared, materialization, dict(columns), description)
        )
        return function

    return register


def code_hash(function: Callable[..., Any]) -> str:
    """A hash of the source of ``function``'s module: part of its model's cache keys."""
    try:
        text = inspect.getsource(inspect.getmodule(function) or function)
    except (OSError, TypeError):
        text = function.__qualname__
    return hashlib.sha256(text.encode()).hexdigest()[:16]
