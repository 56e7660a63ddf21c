"""Open the pyiceberg catalog and make sure the lakehouse tables exist.

SQL catalogs (the embedded SQLite default, Postgres) are opened as :class:`RetryingSqlCatalog`:
concurrent runs share one database, and it makes their commits safe to race (see its docstring).
REST catalogs are opened as :class:`RetryingRestCatalog`, which turns the one conflict REST servers
report as a bad request into a retried commit.
Errors raised while opening a catalog never carry its credentials.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlsplit

from pyiceberg.catalog import URI, Catalog, CatalogType, infer_catalog_type, load_catalog
from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import (
    BadRequestError,
    CommitFailedException,
    NamespaceAlreadyExistsError,
    NoSuchTableError,
    TableAlreadyExistsError,
)
from pyiceberg.io.pyarrow import schema_to_pyarrow
from pyiceberg.table import CommitTableResponse, Table
from pyiceberg.table.update import TableRequirement, TableUpdate
from pyiceberg.utils.config import Config
from sqlalchemy.exc import DBAPIError

from lakehouse.errors import (
    CatalogBusyError,
    CatalogUnavailableError,
    CommitConflictError,
    ConfigurationError,
    LakehouseError,
)
from lakehouse.publish import DEFAULT_STALE_BRANCH_AGE, remove_stale_branches, stale_branches
from lakehouse.schema import evolve
from lakehouse.settings import Settings
from lakehouse.tables import NAMESPACES, TABLE_PROPERTIES, TableDef

log = logging.getLogger(__name__)

T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_S = 30
"""Seconds a SQLite catalog call waits for a concurrent writer's lock (sqlite3 ``timeout``)."""
LOCK_ATTEMPTS = 5
"""Calls of a SQL catalog failing on a lock, tried this many times before :class:`CatalogBusyError`."""
LOCK_BACKOFF_S = 0.2
"""First wait between lock retries; doubled each time, with jitter."""

_LOCK_MESSAGES = ("database is locked", "database table is locked")
_PG_RETRYABLE = {"40001", "40P01"}  # serialization_failure, deadlock_detected
_SECRET_HINTS = ("password", "secret", "token", "credential", "access-key", "session-key")


def embedded_default(home: Path) -> dict[str, str]:
    """Properties of the embedded catalog: SQLite under ``home`` with a local warehouse.

    The URI sets SQLite's busy timeout (SQLAlchemy passes ``timeout`` to ``sqlite3.connect``), so
    concurrent runs wait for each other's locks instead of failing with ``database is locked``.
    """
    home = home.resolve()
    return {
        "type": "sql",
        "uri": f"sqlite:///{home / 'catalog.db'}?timeout={SQLITE_BUSY_TIMEOUT_S}",
        "warehouse": (home / "warehouse").as_uri(),
    }


def is_lock_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a transient lock failure of the catalog database (nothing was committed)."""
    if not isinstance(exc, DBAPIError):
        return False
    if any(message in str(exc.orig).lower() for message in _LOCK_MESSAGES):
        return True
    return getattr(exc.orig, "pgcode", None) in _PG_RETRYABLE


_retrying = threading.local()


def with_lock_retry(what: str, call: Callable[[], T], *, attempts: int = LOCK_ATTEMPTS) -> T:
    """Run ``call``, retrying it with backoff while it fails on a lock of the catalog database.

    A failed SQLite or Postgres transaction is rolled back, so a retry cannot commit twice (a
    commit retried after all re-checks its requirements against the table's current metadata).
    Nested calls retry only at the outermost level.

    Raises:
        CatalogBusyError: if every attempt met a lock.

    """
    if getattr(_retrying, "active", False):
        return call()
    _retrying.active = True
    try:
        for attempt in range(1, attempts + 1):
            try:
                return call()
            except DBAPIError as exc:
                if not is_lock_error(exc):
                    raise
                if attempt == attempts:
                    raise CatalogBusyError(
                        f"{what}: the catalog database stayed locked after {attempts} attempts"
                    ) from exc
                wait = LOCK_BACKOFF_S * 2 ** (attempt - 1)
                log.warning(
                    "%s: catalog database locked, retrying in %.1f s (attempt %d/%d)",
                    what,
                    wait,
                    attempt,
                    attempts,
                )
                time.sleep(wait + random.uniform(0, wait / 2))
        raise AssertionError("unreachable")  # pragma: no cover
    finally:
        _retrying.active = False


COMMIT_RACE_ATTEMPTS = 5
"""Commits that lost the race for the catalog row, retried this many times on the new metadata."""

_LOST_RACE = "Table has been updated by another process"  # pyiceberg's SqlCatalog, row changed under it
_STALE_SEQUENCE = "Cannot add snapshot with sequence number"  # snapshot built on an old base (SQL and REST)


class RetryingSqlCatalog(SqlCatalog):
    """pyiceberg's SQL catalog, safe for concurrent runs sharing its database.

    - Every database call is retried while the database is locked (:func:`with_lock_retry`), then
      raises :class:`~lakehouse.errors.CatalogBusyError` (transient).
    - A commit that lost the race for the table's row ("updated by another process") is tried
      again: each attempt reloads the current metadata and re-checks the commit's requirements
      (the branch it writes, ``main`` for a publish), as a REST catalog does on the server.
    - A snapshot built on metadata another writer has since advanced (a commit to another branch
      of the same table took its sequence number) makes pyiceberg raise ``ValueError``; it is a
      concurrent commit, raised as ``CommitFailedException`` so that pyiceberg's transaction
      rebuilds the snapshot on the new metadata and commits again.
    """

    def commit_table(
        self, table: Table, requirements: tuple[TableRequirement, ...], updates: tuple[TableUpdate, ...]
    ) -> CommitTableResponse:
        """Commit like pyiceberg's SQL catalog, with the retries and translation of the class docstring.

        Raises:
            CommitFailedException: if a requirement fails on the current metadata, the race for
                the row is lost every time, or a snapshot must be rebuilt on new metadata.
            CatalogBusyError: if the database stayed locked.

        """
        name = ".".join(table.name())
        for attempt in range(1, COMMIT_RACE_ATTEMPTS + 1):
            try:
                return with_lock_retry(
                    f"commit {name}", lambda: SqlCatalog.commit_table(self, table, requirements, updates)
                )
            except CommitFailedException as exc:
                if _LOST_RACE not in str(exc) or attempt == COMMIT_RACE_ATTEMPTS:
                    raise
                log.debug("%s: lost the race for the catalog row, retrying (attempt %d)", name, attempt)
                time.sleep(random.uniform(0, LOCK_BACKOFF_S * attempt))
            except ValueError as exc:
                if not str(exc).startswith(_STALE_SEQUENCE):
                    raise
                raise CommitFailedException(f"{name}: a concurrent commit advanced the table: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover


class RetryingRestCatalog(RestCatalog):
    """pyiceberg's REST catalog, with the one commit conflict its servers report as a bad request retried.

    The server applies a commit's updates to the table's current metadata after checking its
    requirements. A snapshot pyiceberg built on metadata another writer has since advanced (a commit
    to another branch of the same table took its sequence number) passes the requirements (its own
    branch did not move) but is refused with 400 ``Cannot add snapshot with sequence number``: a
    concurrent commit, raised as ``CommitFailedException`` so that pyiceberg's transaction rebuilds
    the snapshot on the new metadata and commits again, as :class:`RetryingSqlCatalog` does.
    """

    def commit_table(
        self, table: Table, requirements: tuple[TableRequirement, ...], updates: tuple[TableUpdate, ...]
    ) -> CommitTableResponse:
        """Commit like pyiceberg's REST catalog; a stale sequence number is a concurrent commit.

        Raises:
            CommitFailedException: if the server reports a conflict (409) or a stale sequence number.

        """
        try:
            response: CommitTableResponse = super().commit_table(table, requirements, updates)
        except BadRequestError as exc:
            if _STALE_SEQUENCE not in str(exc):
                raise
            name = ".".join(table.name())
            raise CommitFailedException(f"{name}: a concurrent commit advanced the table: {exc}") from exc
        return response


_RETRIED_METHODS = (
    "create_table",
    "register_table",
    "load_table",
    "drop_table",
    "rename_table",
    "table_exists",
    "create_namespace",
    "drop_namespace",
    "namespace_exists",
    "list_tables",
    "list_namespaces",
    "load_namespace_properties",
    "update_namespace_properties",
)


def _retried(name: str) -> Callable[..., Any]:
    method = getattr(SqlCatalog, name)

    def call(self: RetryingSqlCatalog, *args: Any, **kwargs: Any) -> Any:
        return with_lock_retry(f"catalog {name}", lambda: method(self, *args, **kwargs))

    call.__name__ = call.__qualname__ = name
    call.__doc__ = method.__doc__
    return call


for _name in _RETRIED_METHODS:
    setattr(RetryingSqlCatalog, _name, _retried(_name))


def secret_values(properties: Mapping[str, Any]) -> set[str]:
    """Credential values in catalog ``properties``: secret-like keys and passwords inside URIs.

    Percent-encoded and decoded forms are both returned, as either may end up in a message.
    """
    found: set[str] = set()
    for key, value in properties.items():
        if isinstance(value, Mapping):
            found |= secret_values(value)
            continue
        if not isinstance(value, str) or not value:
            continue
        if any(hint in key.lower() for hint in _SECRET_HINTS):
            found.add(value)
        with contextlib.suppress(ValueError):
            password = urlsplit(value).password if "://" in value else None
            if password:
                found.add(password)
    return found | {unquote(v) for v in found} | {quote(v, safe="") for v in found}


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every value of ``secrets`` replaced by ``***`` (longest first)."""
    for value in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(value, "***")
    return text


def _catalog_properties(settings: Settings) -> tuple[dict[str, Any], bool]:
    """The properties of catalog ``settings.catalog`` and whether they come from the embedded default."""
    configured = Config().get_catalog_config(settings.catalog)
    if configured:
        return dict(configured), False
    return embedded_default(settings.home), True


def _kind(name: str, properties: Mapping[str, Any]) -> str | None:
    """The pyiceberg catalog type (``sql``, ``rest``, ...), or None for a custom implementation."""
    kind = properties.get("type")
    if isinstance(kind, str):
        return kind.lower()
    if "py-catalog-impl" in properties:
        return None
    inferred = infer_catalog_type(name, dict(properties))
    return inferred.value if inferred else None


def _with_sqlite_timeout(uri: str) -> str:
    if not uri.startswith("sqlite") or "timeout=" in uri:
        return uri
    return f"{uri}{'&' if '?' in uri else '?'}timeout={SQLITE_BUSY_TIMEOUT_S}"


def open_catalog(settings: Settings) -> Catalog:
    """Load catalog ``settings.catalog`` the pyiceberg way, or the embedded default if none is configured.

    SQL catalogs are opened as :class:`RetryingSqlCatalog` (a SQLite URI without a ``timeout``
    gets the busy timeout of the embedded default), REST catalogs as :class:`RetryingRestCatalog`.

    Raises:
        ConfigurationError: if the catalog configuration is invalid.
        CatalogUnavailableError: if the catalog database cannot be reached or refuses the connection.
        CatalogBusyError: if the catalog database stayed locked while the catalog was opened.

    Neither message holds the catalog's credentials (URI password, S3 keys): they are redacted,
    and the original error, whose text may hold them, is not chained.

    """
    properties, embedded = _catalog_properties(settings)
    if embedded:
        settings.home.mkdir(parents=True, exist_ok=True)
        (settings.home / "warehouse").mkdir(exist_ok=True)
    secrets = secret_values(properties)
    error: LakehouseError
    try:
        kind = _kind(settings.catalog, properties)
        if kind == CatalogType.SQL.value:
            props = {**properties, URI: _with_sqlite_timeout(str(properties.get(URI, "")))}
            return with_lock_retry("open catalog", lambda: RetryingSqlCatalog(settings.catalog, **props))
        if kind == CatalogType.REST.value:
            return RetryingRestCatalog(settings.catalog, **properties)
        return load_catalog(settings.catalog, **properties)
    except CatalogBusyError:
        raise
    except DBAPIError as exc:
        error = CatalogUnavailableError(
            f"catalog {settings.catalog!r}: cannot use its database: {redact(str(exc.orig).strip(), secrets)}"
        )
    except Exception as exc:
        # Invalid URIs, missing properties (pyiceberg's NoSuchPropertyException), unknown types...
        # Their messages may quote the URI, password included.
        reason = redact(f"{type(exc).__name__}: {exc}", secrets)
        error = ConfigurationError(f"catalog {settings.catalog!r} cannot be opened: {reason}")
    raise error from None


def ensure_tables(
    catalog: Catalog,
    tables: list[TableDef],
    *,
    stale_branch_age: timedelta | None = DEFAULT_STALE_BRANCH_AGE,
) -> None:
    """Create the namespaces and any missing table; bring existing tables to their defined schema.

    Additive schema changes (new optional columns, widenings) are applied to existing tables; a
    breaking one raises ``SchemaEvolutionError`` naming the ``lakehouse migrate`` command to run.

    With ``stale_branch_age`` (default one hour; None to skip), the audit branches that runs which
    died left on existing tables and that are older than it are removed (best effort: a conflict
    is logged and left to the next run). Pass ``Settings.stale_branch_age`` from flows.
    """
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
                    table.identifier,
                    table.schema,
                    partition_spec=table.partition_spec(),
                    properties=TABLE_PROPERTIES,
                )
            except TableAlreadyExistsError:
                loaded = catalog.load_table(table.identifier)
        evolve(loaded, table.schema)
        if loaded.current_snapshot() is None:
            # Audit branches can only be cut from a snapshot: start every table with an empty one.
            with contextlib.suppress(CommitFailedException):  # another run did it first
                loaded.append(schema_to_pyarrow(loaded.schema()).empty_table())
        elif stale_branch_age is not None:
            remove_stale(loaded, stale_branch_age)


def remove_stale(table: Table, older_than: timedelta) -> list[str]:
    """:func:`~lakehouse.publish.remove_stale_branches`, best effort: a conflict is logged, not raised."""
    if not stale_branches(table, older_than):  # the common case, decided on the metadata at hand
        return []
    try:
        return remove_stale_branches(table, older_than)
    except CommitConflictError as exc:
        log.warning("%s: stale audit branches left for the next run: %s", ".".join(table.name()), exc)
        return []


def load(catalog: Catalog, table: TableDef | str) -> Table:
    """Load a table by definition or identifier."""
    return catalog.load_table(table if isinstance(table, str) else table.identifier)
