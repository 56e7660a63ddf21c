"""``lakehouse`` (or ``python -m lakehouse``): inspect, maintain and migrate the lakehouse tables.

Rich tables on stdout by default, ``--json`` for scripts; progress bars and errors on stderr. A
user error (unknown table, bad argument, refused change) exits non-zero with a one-line message,
never a traceback. Settings and the catalog are built inside each command.
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any, NoReturn, ParamSpec, TypeVar

import pydantic
import typer
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot, ancestors_of
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table as RichTable

from lakehouse import maintenance, schema
from lakehouse.batches import format_ranges
from lakehouse.catalog import open_catalog
from lakehouse.errors import LakehouseError
from lakehouse.settings import Settings
from lakehouse.tables import PROP_CODE_VERSION, PROP_ENGINE, PROP_FLOW, PROP_RUN_ID

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

PACKAGE = "lakehouse-platform"
ENGINE = "pyiceberg"  # maintenance commits rewrite files through pyiceberg/pyarrow

app = typer.Typer(
    name="lakehouse",
    help="Inspect, maintain and migrate the lakehouse's Iceberg tables.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _check_identifier(value: str) -> str:
    namespace, _, name = value.partition(".")
    if not namespace or not name:
        raise typer.BadParameter(f"{value!r} is not namespace.table, e.g. silver.orders", param_hint="TABLE")
    return value


TableArg = Annotated[
    str,
    typer.Argument(
        metavar="TABLE",
        help="The table, as namespace.table (e.g. silver.orders).",
        callback=_check_identifier,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]


def _error(message: str) -> NoReturn:
    """Print ``message`` as an error on stderr and exit 1."""
    Console(stderr=True, highlight=False).print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(1)


def _user_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn a domain error into a message on stderr and exit code 1."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except LakehouseError as exc:
            _error(str(exc))
        except pydantic.ValidationError as exc:  # settings from the environment
            _error(f"bad LAKEHOUSE_* setting: {exc}")

    return run


def _load(catalog: Catalog, identifier: str) -> Table:
    try:
        return catalog.load_table(identifier)
    except (NoSuchTableError, NoSuchNamespaceError) as exc:
        raise typer.BadParameter(
            f"unknown table {identifier!r} (`lakehouse tables` lists them)", param_hint="TABLE"
        ) from exc


def _run_properties(flow: str) -> dict[str, str]:
    """Snapshot properties of a maintenance commit made from the command line."""
    try:
        code_version = version(PACKAGE)
    except PackageNotFoundError:
        code_version = "unknown"
    return {
        PROP_RUN_ID: f"cli-{uuid.uuid4().hex[:12]}",
        PROP_FLOW: f"cli.{flow}",
        PROP_ENGINE: ENGINE,
        PROP_CODE_VERSION: code_version,
    }


def _time(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


def _bytes(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    size = n / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def _cell(key: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, int) and key.endswith("bytes"):
        return _bytes(value)
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value))
    return str(value)


PIPE_WIDTH = 1000
"""Width of tables written to a pipe or a file: wide enough that no row wraps (``grep`` finds whole rows)."""


def stdout_console() -> Console:
    """The stdout console: names and paths printed literally (no markup, no highlighting).

    On a terminal, tables fit its width; in a pipe or a file, they keep every row on one line.
    """
    console = Console(markup=False, highlight=False)
    return console if console.is_terminal else Console(markup=False, highlight=False, width=PIPE_WIDTH)


def _json_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _emit_json(payload: Any) -> None:
    typer.echo(json.dumps(payload, indent=2, default=_json_value))


def _emit(rows: list[dict[str, Any]], *, title: str, as_json: bool, empty: str = "nothing to show") -> None:
    """Print ``rows`` as a rich table, or as a JSON list."""
    if as_json:
        _emit_json(rows)
        return
    console = stdout_console()
    if not rows:
        console.print(f"{title}: {empty}")
        return
    table = RichTable(title=title, title_justify="left")
    for key in rows[0]:
        # identifiers and times never wrap; other cells fold on narrow terminals
        whole = key in ("table", "partition") or key.endswith(("_id", "_at", "updated"))
        table.add_column(key.replace("_", " "), overflow="fold", no_wrap=whole)
    for row in rows:
        table.add_row(*(_cell(k, v) for k, v in row.items()))
    console.print(table)


@contextmanager
def _progress() -> Iterator[maintenance.ProgressCallback]:
    """A progress callback drawing rich bars on stderr (cleared when done)."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bars:
        tasks: dict[str, TaskID] = {}

        def update(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bars.add_task(what, total=total)
            bars.update(tasks[what], completed=done, total=total)

        yield update


def _summary(snapshot: Snapshot | None) -> dict[str, str]:
    return dict(snapshot.summary.additional_properties) if snapshot and snapshot.summary else {}


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.lstrip("-").isdigit() else None


# ---------------------------------------------------------------------------------------------------
# Inspection


@app.command("tables")
@_user_errors
def tables_command(as_json: JsonOpt = False) -> None:
    """List every table with its current snapshot, rows, files and size."""
    catalog = open_catalog(Settings())
    rows = []
    for namespace in sorted(catalog.list_namespaces()):
        for identifier in sorted(catalog.list_tables(namespace)):
            table = catalog.load_table(identifier)
            current = table.current_snapshot()
            totals = _summary(current)
            rows.append(
                {
                    "table": ".".join(identifier),
                    "snapshot_id": current.snapshot_id if current else None,
                    "updated": _time(current.timestamp_ms if current else None),
                    "records": _int(totals.get("total-records")),
                    "files": _int(totals.get("total-data-files")),
                    "size_bytes": _int(totals.get("total-files-size")),
                }
            )
    _emit(rows, title="Tables", as_json=as_json, empty="no table yet")


@app.command()
@_user_errors
def describe(table_id: TableArg, as_json: JsonOpt = False) -> None:
    """Show a table's schema, partition spec, properties, refs, size and file count."""
    table = _load(open_catalog(Settings()), table_id)
    current = table.current_snapshot()
    totals = _summary(current)
    table_schema = table.schema()
    info = {
        "table": table_id,
        "location": table.location(),
        "format_version": table.metadata.format_version,
        "current_snapshot_id": current.snapshot_id if current else None,
        "records": _int(totals.get("total-records")) or 0,
        "files": _int(totals.get("total-data-files")) or 0,
        "size_bytes": _int(totals.get("total-files-size")) or 0,
        "snapshots": len(table.metadata.snapshots),
    }
    columns = [
        {"id": f.field_id, "name": f.name, "type": str(f.field_type), "required": f.required, "doc": f.doc}
        for f in table_schema.fields
    ]
    spec = [
        {
            "name": f.name,
            "transform": str(f.transform),
            "source": table_schema.find_column_name(f.source_id),
            "field_id": f.field_id,
        }
        for f in table.spec().fields
    ]
    refs = [
        {"name": name, "type": ref.snapshot_ref_type.value, "snapshot_id": ref.snapshot_id}
        for name, ref in sorted(table.metadata.refs.items())
    ]
    properties = dict(sorted(table.properties.items()))
    if as_json:
        _emit_json(
            {**info, "schema": columns, "partition_spec": spec, "refs": refs, "properties": properties}
        )
        return
    _emit([{"property": k, "value": _cell(k, v)} for k, v in info.items()], title=table_id, as_json=False)
    _emit(columns, title="Schema", as_json=False)
    _emit(spec, title="Partition spec", as_json=False, empty="unpartitioned")
    _emit(refs, title="Refs", as_json=False, empty="none")
    _emit(
        [{"key": k, "value": v} for k, v in properties.items()],
        title="Properties",
        as_json=False,
        empty="none",
    )


@app.command()
@_user_errors
def snapshots(table_id: TableArg, as_json: JsonOpt = False) -> None:
    """List a table's snapshots: time, operation, run id, engine, rows added and removed, refs."""
    table = _load(open_catalog(Settings()), table_id)
    in_main = {s.snapshot_id for s in ancestors_of(table.current_snapshot(), table.metadata)}
    refs: dict[int, list[str]] = {}
    for name, ref in sorted(table.metadata.refs.items()):
        refs.setdefault(ref.snapshot_id, []).append(name)
    rows = []
    for snapshot in sorted(table.metadata.snapshots, key=lambda s: s.timestamp_ms):
        summary = _summary(snapshot)
        rows.append(
            {
                "snapshot_id": snapshot.snapshot_id,
                "committed_at": _time(snapshot.timestamp_ms),
                "operation": snapshot.summary.operation.value if snapshot.summary else None,
                "run_id": summary.get(PROP_RUN_ID),
                "engine": summary.get(PROP_ENGINE),
                "rows_added": _int(summary.get("added-records")) or 0,
                "rows_removed": _int(summary.get("deleted-records")) or 0,
                "refs": refs.get(snapshot.snapshot_id, []),
                "in_main": snapshot.snapshot_id in in_main,
            }
        )
    _emit(rows, title=f"Snapshots of {table_id}", as_json=as_json, empty="no snapshot yet")


@app.command("partitions")
@_user_errors
def partitions_command(table_id: TableArg, as_json: JsonOpt = False) -> None:
    """List a table's partitions with their files, rows and size (current snapshot)."""
    table = _load(open_catalog(Settings()), table_id)
    rows = [
        {
            "partition": p.partition or "(unpartitioned)",
            "files": p.files,
            "records": p.records,
            "size_bytes": p.size_bytes,
        }
        for p in maintenance.partitions(table)
    ]
    _emit(rows, title=f"Partitions of {table_id}", as_json=as_json, empty="no data yet")


@app.command()
@_user_errors
def history(table_id: TableArg, as_json: JsonOpt = False) -> None:
    """Show when each snapshot became current on main (rollbacks included)."""
    table = _load(open_catalog(Settings()), table_id)
    in_main = {s.snapshot_id for s in ancestors_of(table.current_snapshot(), table.metadata)}
    rows = []
    for entry in table.metadata.snapshot_log:
        snapshot = table.metadata.snapshot_by_id(entry.snapshot_id)
        summary = _summary(snapshot)
        rows.append(
            {
                "made_current_at": _time(entry.timestamp_ms),
                "snapshot_id": entry.snapshot_id,
                "parent_id": snapshot.parent_snapshot_id if snapshot else None,
                "operation": snapshot.summary.operation.value if snapshot and snapshot.summary else None,
                "run_id": summary.get(PROP_RUN_ID),
                "in_main": entry.snapshot_id in in_main,
            }
        )
    _emit(rows, title=f"History of {table_id}", as_json=as_json, empty="no snapshot yet")


def _report_rows(reports_dir: Path, table_id: str) -> list[dict[str, Any]]:
    """Gate outcomes of ``table_id``, oldest first, from ``<reports>/runs/<run id>/gates/*.json``.

    Fields are read defensively: a report of another shape shows empty cells, an unreadable one
    its error.
    """
    rows = []
    for path in sorted(reports_dir.glob("runs/*/gates/*.json")):
        row: dict[str, Any] = {"run_id": path.parent.parent.name}
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            if path.name.startswith(f"{table_id}."):
                rows.append(
                    {**row, "batches": None, "passed": None, "snapshot_id": None, "finished": None}
                    | {"error": str(exc)}
                )
            continue
        if not isinstance(report, dict) or report.get("table") != table_id:
            continue
        passed, run_id, batches = report.get("passed"), report.get("run_id"), report.get("batches")
        row |= {
            "run_id": run_id if isinstance(run_id, str) else row["run_id"],
            "batches": _batch_ranges(batches),
            "passed": passed if isinstance(passed, bool) else None,
            "snapshot_id": report.get("snapshot_id"),
            "finished": report.get("finished") or report.get("started"),
            "error": None,
        }
        rows.append(row)
    return sorted(rows, key=lambda r: (r["finished"] is None, str(r["finished"])))


def _batch_ranges(batches: object) -> str | None:
    """A report's batch dates in range notation, ``all`` for none given; None if unreadable."""
    if batches is None:
        return "all"
    if not isinstance(batches, list):
        return None
    try:
        return format_ranges(date.fromisoformat(str(d)) for d in batches)
    except ValueError:
        return None


@app.command()
@_user_errors
def checks(table_id: TableArg, as_json: JsonOpt = False) -> None:
    """Show a table's quality-gate outcomes over time, from the gate reports."""
    settings = Settings()
    _load(open_catalog(settings), table_id)
    rows = _report_rows(settings.reports_dir, table_id)
    _emit(rows, title=f"Gate outcomes of {table_id}", as_json=as_json, empty="no report yet")


# ---------------------------------------------------------------------------------------------------
# Time travel and maintenance


def _timestamp(value: str) -> datetime:
    try:
        at = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(
            f"{value!r} is not an ISO timestamp, e.g. 2024-01-31T18:00:00Z", param_hint="'--at'"
        ) from exc
    return at if at.tzinfo else at.replace(tzinfo=UTC)


@app.command()
@_user_errors
def rollback(
    table_id: TableArg,
    to: Annotated[int | None, typer.Option("--to", help="Snapshot id to move main back to.")] = None,
    at: Annotated[
        str | None,
        typer.Option("--at", help="Move main back to the snapshot current at this ISO time (UTC if naive)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Move main back to an earlier snapshot of its history, by id or by time."""
    if (to is None) == (at is None):
        raise typer.BadParameter(
            "give exactly one of --to SNAPSHOT_ID or --at TIMESTAMP", param_hint="'--to' / '--at'"
        )
    when = _timestamp(at) if at is not None else None
    table = _load(open_catalog(Settings()), table_id)
    if when is not None:
        result = maintenance.rollback_to_time(table, when)
    else:
        assert to is not None  # exactly one of --to and --at is given
        result = maintenance.rollback_to_snapshot(table, to)
    if as_json:
        _emit_json(asdict(result))
        return
    stdout_console().print(
        f"{table_id}: main moved from snapshot {result.from_snapshot_id} back to {result.to_snapshot_id} "
        f"(committed at {result.to_timestamp.isoformat(timespec='milliseconds')})"
    )


def _duration(value: str | None, default: str) -> timedelta:
    try:
        return maintenance.parse_duration(value if value is not None else default)
    except LakehouseError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--older-than'") from exc


@app.command()
@_user_errors
def compact(
    table_id: TableArg,
    partition: Annotated[
        list[str] | None,
        typer.Option("--partition", help="Partition to compact, as listed by `partitions` (repeatable)."),
    ] = None,
    target_file_size: Annotated[
        str | None,
        typer.Option(
            help="Size of the files to write, e.g. 128MB (default LAKEHOUSE_MAINTENANCE_TARGET_FILE_MB)."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Rewrite small data files into target-sized ones, in one replace snapshot."""
    settings = Settings()
    try:
        target = (
            maintenance.parse_size(target_file_size)
            if target_file_size is not None
            else settings.maintenance_target_file_mb * 1024 * 1024
        )
    except LakehouseError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--target-file-size'") from exc
    table = _load(open_catalog(settings), table_id)
    with _progress() as progress:
        result = maintenance.compact(
            table,
            target_file_bytes=target,
            partitions=partition or None,
            properties=_run_properties("compact"),
            progress=progress,
        )
    if as_json:
        _emit_json(asdict(result))
        return
    if result.snapshot_id is None:
        stdout_console().print(f"{table_id}: no partition has small files to compact")
        return
    stdout_console().print(
        f"{table_id}: {result.files_removed} files ({_bytes(result.bytes_removed)}) rewritten into "
        f"{result.files_added} ({_bytes(result.bytes_added)}), {result.records} rows, in "
        f"{len(result.partitions)} partition(s); snapshot {result.snapshot_id}"
    )


def _deletions_failed(table_id: str, failed: tuple[str, ...]) -> None:
    if failed:
        _error(f"{table_id}: {len(failed)} file(s) could not be deleted (see the log), e.g. {failed[0]}")


@app.command()
@_user_errors
def expire(
    table_id: TableArg,
    older_than: Annotated[
        str | None,
        typer.Option(
            help="Expire snapshots older than this, e.g. 7d (default LAKEHOUSE_MAINTENANCE_EXPIRE_OLDER_THAN)"
        ),
    ] = None,
    retain_last: Annotated[
        int | None,
        typer.Option(
            min=1, help="Keep this many latest snapshots of main (default LAKEHOUSE_MAINTENANCE_RETAIN_LAST)."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Expire old snapshots (keeping refs and the last N) and delete the files only they used."""
    settings = Settings()
    age = _duration(older_than, settings.maintenance_expire_older_than)
    table = _load(open_catalog(settings), table_id)
    with _progress() as progress:
        result = maintenance.expire_snapshots(
            table,
            older_than=age,
            retain_last=retain_last if retain_last is not None else settings.maintenance_retain_last,
            progress=progress,
        )
    if as_json:
        _emit_json(asdict(result))
    else:
        stdout_console().print(
            f"{table_id}: expired {len(result.expired_snapshot_ids)} snapshot(s), "
            f"deleted {len(result.deleted_files)} file(s)"
        )
    _deletions_failed(table_id, result.failed)


@app.command("remove-orphans")
@_user_errors
def remove_orphans(
    table_id: TableArg,
    older_than: Annotated[
        str | None,
        typer.Option(
            help="Only files older than this, e.g. 3d (default LAKEHOUSE_MAINTENANCE_ORPHAN_OLDER_THAN)."
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the files, delete nothing.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete files under the table location that no metadata references and older than a threshold."""
    settings = Settings()
    age = _duration(older_than, settings.maintenance_orphan_older_than)
    table = _load(open_catalog(settings), table_id)
    with _progress() as progress:
        result = maintenance.remove_orphan_files(table, older_than=age, dry_run=dry_run, progress=progress)
    if as_json:
        _emit_json(asdict(result))
    else:
        verb = "would delete" if dry_run else "deleted"
        console = stdout_console()
        for path in result.orphan_files:
            console.print(path)
        console.print(
            f"{table_id}: {verb} {len(result.orphan_files)} orphan file(s); "
            f"{result.recent_skipped} recent unreferenced file(s) kept"
        )
    _deletions_failed(table_id, result.failed)


# ---------------------------------------------------------------------------------------------------
# Schema migrations


def _pair(value: str, option: str, shape: str) -> tuple[str, str]:
    left, sep, right = value.partition("=")
    if not sep or not left.strip() or not right.strip():
        raise typer.BadParameter(f"{value!r} is not {shape}", param_hint=option)
    return left.strip(), right.strip()


@app.command()
@_user_errors
def migrate(
    table_id: TableArg,
    rename: Annotated[str | None, typer.Option(help="Rename a column: OLD=NEW.")] = None,
    drop: Annotated[str | None, typer.Option(help="Drop a column.")] = None,
    set_type: Annotated[
        str | None, typer.Option(help=f"Change a column's type: COL=TYPE ({schema.TYPE_EXAMPLES}).")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Apply a breaking schema change on purpose (the pipelines only apply additive ones)."""
    given = [o for o in (rename, drop, set_type) if o is not None]
    if len(given) != 1:
        raise typer.BadParameter(
            "give exactly one of --rename OLD=NEW, --drop COL, --set-type COL=TYPE",
            param_hint="'--rename' / '--drop' / '--set-type'",
        )
    if rename is not None:
        old, new = _pair(rename, "'--rename'", "OLD=NEW")
        plan = f"rename column {old!r} to {new!r} (metadata only; readers by name must follow)"
    elif drop is not None:
        plan = f"drop column {drop!r} (metadata only; old snapshots keep it)"
    else:
        assert set_type is not None  # exactly one option is given
        column, type_name = _pair(set_type, "'--set-type'", "COL=TYPE")
        new_type = schema.parse_type(type_name)
        plan = f"change column {column!r} to {new_type} (a narrowing or change rewrites every row)"
    table = _load(open_catalog(Settings()), table_id)
    if not yes and not typer.confirm(f"{table_id}: {plan}. Proceed?", err=True):
        Console(stderr=True, highlight=False).print("aborted: nothing changed")
        raise typer.Exit(1)
    if rename is not None:
        schema.rename_column(table, old, new)
    elif drop is not None:
        schema.drop_column(table, drop)
    else:
        rows = schema.set_column_type(table, column, new_type, properties=_run_properties("migrate"))
        plan += f"; {rows} rows rewritten"
    stdout_console().print(f"{table_id}: done: {plan}")


def main() -> None:
    """Entry point of the ``lakehouse`` console script."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()
