"""Open the pyiceberg catalog and make sure the lakehouse tables exist."""

from __future__ import annotations

import contextlib
from pathlib import Path

from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.exceptions import (
    CommitFailedException,
    NamespaceAlreadyExistsError,
    NoSuchTableError,
    TableAlreadyExistsError,
)
from pyiceberg.io.pyarrow import schema_to_pyarrow
from pyiceberg.table import Table
from pyiceberg.utils.config import Config

from lakehouse.settings import Settings
from lakehouse.tables import NAMESPACES, TableDef


def embedded_default(home: Path) -> dict[str, str]:
    """Properties of the embedded catalog: SQLite under ``home`` with a local warehouse."""
    home = home.resolve()
    return {
        "type": "sql",
        "uri": f"sqlite:///{home / 'catalog.db'}",
        "warehouse": (home / "warehouse").as_uri(),
    }


def open_catalog(settings: Settings) -> Catalog:
    """Load catalog ``settings.catalog`` the pyiceberg way, or the embedded default if none is configured."""
    if Config().get_catalog_config(settings.catalog):
        return load_catalog(settings.catalog)
    settings.home.mkdir(parents=True, exist_ok=True)
    (settings.home / "warehouse").mkdir(exist_ok=True)
    return load_catalog(settings.catalog, **embedded_default(settings.home))


def ensure_tables(catalog: Catalog, tables: list[TableDef]) -> None:
    """Create the namespaces and any missing table; existing tables are left as they are."""
    existing = {ns[0] for ns in catalog.list_namespaces()}
    for namespace in NAMESPACES:
        if namespace not in existing:
            with contextlib.suppress(NamespaceAlreadyExistsError):  # created concurrently by another run
                catalog.create_namespace(namespace)
    for table in tables:
        try:
            loaded = catalog.load_table(table.identifier)
        except NoSuchTableError:
            try:
                loaded = catalog.create_table(
                    table.identifier, table.schema, partition_spec=table.partition_spec()
                )
            except TableAlreadyExistsError:
                loaded = catalog.load_table(table.identifier)
        if loaded.current_snapshot() is None:
            # Audit branches can only be cut from a snapshot: start every table with an empty one.
            with contextlib.suppress(CommitFailedException):  # another run did it first
                loaded.append(schema_to_pyarrow(loaded.schema()).empty_table())


def load(catalog: Catalog, table: TableDef | str) -> Table:
    """Load a table by definition or identifier."""
    return catalog.load_table(table if isinstance(table, str) else table.identifier)
