"""The bundled declarations, loaded once for tests: the registry and TPC-H's source spec."""

from __future__ import annotations

from lakehouse.registry import Registry, load_registry
from lakehouse.settings import BUNDLED_SOURCES
from lakehouse.spec import Source, SourceTable

REGISTRY: Registry = load_registry(BUNDLED_SOURCES)
TPCH: Source = REGISTRY.sources["tpch"]
TABLES: dict[str, SourceTable] = dict(TPCH.tables)
LOAD_ORDER: tuple[str, ...] = tuple(TPCH.tables)
