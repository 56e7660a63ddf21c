"""Grow a lakehouse's fact history N-fold by replicating it back in time (for the incremental stage).

Seeding 10× the scale would make the incremental day 10× bigger too; what the stage asks is the
*same* day's batch into 10× the history. So every table partitioned by ``_batch_date`` that holds
facts (bronze, quarantine and silver ``orders``/``lineitem``, and the gold facts and marts) gets
``copies`` more copies of its rows, copy ``k`` shifted ``k`` spans of whole weeks back in time
(``_batch_date`` and every date column) with its order keys moved past the existing ones
(``*orderkey`` columns of integer type; string columns of bronze and quarantine are left as they
are). Reference tables and unpartitioned gold dimensions stay as they are: dimensions do not grow
with the number of days. Each copy is one append commit, carrying the table's ``lakehouse.*``
snapshot properties forward (the promotion watermark included).

``python -m bench.replicate --home DIR --copies 9 [--result FILE]`` (the embedded catalog under
``DIR``) writes what it replicated as JSON; ``--save-mains FILE`` and ``--set-mains FILE`` save every
table's ``main`` snapshot and point ``main`` back at the saved ones (the incremental stage alternates
its 1x and 10x runs this way, so a machine getting faster or slower affects both alike).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.io.pyarrow import schema_to_pyarrow

from lakehouse.catalog import open_catalog
from lakehouse.files import batch_partitioned
from lakehouse.registry import load_registry
from lakehouse.settings import BUNDLED_SOURCES, Settings
from lakehouse.tables import BATCH_DATE, BRONZE, PROP_FLOW, QUARANTINE

FLOW = "bench-replicate"


def _table_ids(catalog: Catalog) -> list[str]:
    """Every table of the catalog as ``namespace.name``, sorted."""
    return [
        f"{namespace}.{ident[-1]}"
        for namespace in sorted(ns[0] for ns in catalog.list_namespaces())
        for ident in sorted(catalog.list_tables(namespace))
    ]


def fact_tables(catalog: Catalog) -> list[str]:
    """Identifiers of the tables whose rows grow with the number of days (see the module doc)."""
    out = []
    registry = load_registry(BUNDLED_SOURCES)
    for table_id in _table_ids(catalog):
        namespace = table_id.split(".")[0]
        if namespace in (BRONZE, QUARANTINE) and registry.table(table_id).kind == "reference":
            continue
        if batch_partitioned(catalog.load_table(table_id)):
            out.append(table_id)
    return out


def _span_days(rows: pl.DataFrame) -> int:
    """Whole weeks covering every ``_batch_date`` in ``rows`` (weekdays stay weekdays)."""
    first, last = rows.get_column(BATCH_DATE).min(), rows.get_column(BATCH_DATE).max()
    assert isinstance(first, date) and isinstance(last, date)
    return math.ceil(((last - first).days + 1) / 7) * 7


def shifted(rows: pl.DataFrame, copy: int, span_days: int, key_stride: int) -> pl.DataFrame:
    """Copy number ``copy`` of ``rows``: dates ``copy × span_days`` earlier, order keys past the originals."""
    shift = timedelta(days=copy * span_days)
    moved = [pl.col(c) - shift for c, t in rows.schema.items() if t == pl.Date]
    keys = [
        pl.col(c) + copy * key_stride
        for c, t in rows.schema.items()
        if c.endswith("orderkey") and t.is_integer()
    ]
    return rows.with_columns(*moved, *keys)


def _key_stride(rows: pl.DataFrame) -> int:
    """A power of ten above every order key of ``rows`` (1 if it has none)."""
    top = 0
    for column, kind in rows.schema.items():
        if column.endswith("orderkey") and kind.is_integer():
            top = max(top, int(rows.get_column(column).max() or 0))
    return 10 ** len(str(top)) if top else 1


def replicate(catalog: Catalog, table_id: str, copies: int) -> dict[str, int]:
    """Append ``copies`` shifted copies of ``table_id``'s rows; return rows before and after."""
    table = catalog.load_table(table_id)
    rows = pl.from_arrow(table.scan().to_arrow())
    assert isinstance(rows, pl.DataFrame)
    if rows.is_empty():
        return {"rows_before": 0, "rows_after": 0}
    snapshot = table.current_snapshot()
    properties = {
        k: v
        for k, v in (snapshot.summary.additional_properties if snapshot and snapshot.summary else {}).items()
        if k.startswith("lakehouse.")
    }
    properties[PROP_FLOW] = FLOW
    target = schema_to_pyarrow(table.schema(), include_field_ids=False)
    span, stride = _span_days(rows), _key_stride(rows)
    for copy in range(1, copies + 1):
        data: pa.Table = shifted(rows, copy, span, stride).to_arrow().select(target.names).cast(target)
        table.append(data, snapshot_properties=properties)
    return {"rows_before": rows.height, "rows_after": rows.height * (copies + 1)}


def save_mains(catalog: Catalog, path: Path) -> None:
    """Write the ``main`` snapshot id of every table to ``path`` (JSON), for :func:`set_mains`."""
    mains = {t: catalog.load_table(t).metadata.current_snapshot_id for t in _table_ids(catalog)}
    path.write_text(json.dumps(mains, indent=1) + "\n", encoding="utf-8")


def set_mains(catalog: Catalog, path: Path) -> None:
    """Point ``main`` of every table saved in ``path`` back at its saved snapshot (metadata only).

    The snapshots a run wrote since stay in the metadata, off ``main``; switching between two saved
    states (1x and 10x the history) lets the incremental stage alternate its runs on one lakehouse.
    """
    for table_id, snapshot_id in json.loads(path.read_text(encoding="utf-8")).items():
        table = catalog.load_table(table_id)
        if snapshot_id is not None and table.metadata.current_snapshot_id != snapshot_id:
            table.manage_snapshots().set_current_snapshot(snapshot_id=snapshot_id).commit()


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: prints what was replicated as JSON (or saves or sets the mains)."""
    parser = argparse.ArgumentParser(prog="python -m bench.replicate", description=__doc__)
    parser.add_argument("--home", type=Path, required=True, help="LAKEHOUSE_HOME of the lakehouse to grow")
    parser.add_argument("--copies", type=int, default=9, help="copies to add (9: ten times the history)")
    parser.add_argument("--result", type=Path, default=None, help="write the JSON here instead of stdout")
    state = parser.add_mutually_exclusive_group()
    state.add_argument("--save-mains", type=Path, help="only save every table's main snapshot to this file")
    state.add_argument("--set-mains", type=Path, help="only point every table's main back at this file's")
    args = parser.parse_args(argv)
    catalog = open_catalog(Settings(home=args.home))
    if args.save_mains or args.set_mains:
        (save_mains if args.save_mains else set_mains)(catalog, args.save_mains or args.set_mains)
        return 0
    out = {}
    for table_id in fact_tables(catalog):
        began = time.perf_counter()
        out[table_id] = {
            **replicate(catalog, table_id, args.copies),
            "seconds": round(time.perf_counter() - began, 2),
        }
    text = json.dumps(out, indent=1) + "\n"
    if args.result:
        args.result.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
