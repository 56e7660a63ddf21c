"""The bundled declarations, loaded once for tests: the registry and TPC-H's source spec."""

from __future__ import annotations

from dataclasses import replace

from lakehouse.registry import Registry, load_registry
from lakehouse.settings import BUNDLED_SOURCES
from lakehouse.spec import Rules, Source, SourceTable

REGISTRY: Registry = load_registry(BUNDLED_SOURCES)
TPCH: Source = REGISTRY.sources["tpch"]
TABLES: dict[str, SourceTable] = dict(TPCH.tables)
LOAD_ORDER: tuple[str, ...] = tuple(TPCH.tables)


def without_rules(spec: SourceTable) -> SourceTable:
    """``spec`` with no value rules (type, key and references kept): for tests about keys and versions."""
    return replace(spec, columns=tuple(replace(c, rules=Rules()) for c in spec.columns))


TPCH_SEED = REGISTRY.seeder("tpch")
"""TPC-H's demo data generator, ``sources/tpch/seed.py``."""
seed = TPCH_SEED.seed
read_report = TPCH_SEED.read_report
