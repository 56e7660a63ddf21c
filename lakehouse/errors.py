"""Domain errors of the lakehouse package."""


class LakehouseError(Exception):
    """Base class of every error raised on purpose by the lakehouse package."""


class ConfigurationError(LakehouseError):
    """Settings or catalog configuration is missing or inconsistent."""


class LandingError(LakehouseError):
    """A landed file or path cannot be used (bad layout, unreadable file, path outside the zone)."""


class CommitConflictError(LakehouseError):
    """A concurrent commit moved the table; the write is safe to retry on the new state."""


class WarehouseError(LakehouseError):
    """The warehouse storage refused a write (disk full, permission denied, read-only file system).

    Raised before anything was published: ``main`` of the table is untouched. Never retried (it does
    not go away by itself); files already written are orphans for ``lakehouse orphans``.
    """


class AuditFailedError(LakehouseError):
    """The audit of a branch rejected the write; `main` was not moved. Never retried."""

    def __init__(self, table: str, reason: str) -> None:
        super().__init__(f"audit of {table} rejected the write: {reason}")
        self.table = table
        self.reason = reason


class MaintenanceError(LakehouseError):
    """A maintenance operation cannot run as asked (bad argument, unknown snapshot or partition)."""


class SchemaEvolutionError(LakehouseError):
    """A schema change is breaking (drop, rename, narrowing): apply it with ``lakehouse migrate``."""


class CatalogBusyError(CommitConflictError):
    """The catalog database stayed locked by concurrent writers (SQLite ``database is locked``).

    Nothing was committed by the failed call, so it is retried like a commit conflict.
    """


class CatalogUnavailableError(LakehouseError, ConnectionError):
    """The catalog database cannot be reached or refused the connection (message free of credentials)."""


class ModelError(LakehouseError):
    """A gold model's function raised: its step fails (never retried), the rest of the run goes on."""
