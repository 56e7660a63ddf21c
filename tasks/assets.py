"""Prefect assets: each step declares the Iceberg tables it materializes and the tables it reads.

Prefect's UI then shows, per run, which tables were materialized from which (``prefect.assets``).
Asset keys are ``iceberg://<catalog>/<namespace>/<table>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ParamSpec, TypeVar

from prefect.assets import Asset, AssetProperties, add_asset_metadata
from prefect.context import AssetContext
from prefect.tasks import MaterializingTask

from lakehouse.batches import format_ranges
from lakehouse.pipeline import StepResult

P = ParamSpec("P")
R = TypeVar("R")

SCHEME = "iceberg"


def namespace_asset(namespace: str) -> Asset:
    """A namespace as an asset: what a step task declares until :func:`materializing` names its tables."""
    return Asset(key=f"{SCHEME}://{namespace}")


def table_asset(catalog: str, table_id: str) -> Asset:
    """The asset of table ``namespace.table`` of catalog ``catalog``."""
    namespace, _, name = table_id.partition(".")
    return Asset(key=f"{SCHEME}://{catalog}/{namespace}/{name}", properties=AssetProperties(name=table_id))


def materializing(
    step: MaterializingTask[P, R], catalog: str, tables: Sequence[str], upstream: Sequence[str]
) -> MaterializingTask[P, R]:
    """``step`` declaring that it materializes ``tables`` from ``upstream`` (other options unchanged)."""
    return step.with_options(
        assets=[table_asset(catalog, t) for t in tables],
        asset_deps=[table_asset(catalog, t) for t in upstream],
    )


def describe(result: StepResult) -> None:
    """Attach what a step wrote to the assets its running task materializes (no-op outside one)."""
    context = AssetContext.get()
    if context is None:
        return
    metadata: dict[str, Any] = {
        "batches": format_ranges(result.batches),
        "rows_in": result.rows_in,
        "rows_out": result.rows_out,
        "quarantined": result.quarantined,
        "snapshot_id": result.snapshot_id,
    }
    if result.skipped:
        metadata["skipped"] = result.skipped
    for asset in context.downstream_assets:
        if asset.properties is not None and asset.properties.name == result.table:
            add_asset_metadata(asset, metadata)
