r"""A Soda data source for the stock CLI: DuckDB views over every lakehouse table's current snapshot.

    python -m checks.datasource --out .lakehouse/soda
    SODA_CORE_TELEMETRY_ENABLED=false soda contract verify \
        -c .lakehouse/contracts/silver/orders.yml -ds .lakehouse/soda/datasource.yml

writes ``lakehouse.duckdb`` (views only: no data is copied) and ``datasource.yml`` (data source
``lakehouse``, the name every contract's dataset starts with), and the contracts derived from the
declarations under ``$LAKEHOUSE_HOME/contracts``. The views read the snapshot files that
were current when the command ran: run it again after the tables move. The CLI exits 0 when every
check passes, 1 when a check fails and 3 on errors. Contract variables are set with
``--set max_quarantine_share=0.1``.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import duckdb
from pyiceberg.catalog import Catalog

from checks.contracts import write_contracts
from checks.views import DATA_SOURCE, create_view
from lakehouse.catalog import open_catalog
from lakehouse.registry import load_registry
from lakehouse.settings import Settings
from lakehouse.tables import NAMESPACES

logger = logging.getLogger(__name__)

DATABASE_FILE = f"{DATA_SOURCE}.duckdb"
DATA_SOURCE_FILE = "datasource.yml"


def write_datasource(catalog: Catalog, out_dir: Path) -> Path:
    """Write ``out_dir/lakehouse.duckdb`` and ``out_dir/datasource.yml``; returns the YAML file.

    Every lakehouse table that exists in ``catalog`` becomes the view ``<namespace>.<table>`` over its
    current snapshot (an empty view for a table without one). The database is rebuilt from scratch.

    Raises:
        UnsupportedLocation: if a table's files are not local files.
        LakehouseError: if a snapshot has delete files.
        OSError: if the files cannot be written.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    database = (out_dir / DATABASE_FILE).resolve()
    database.unlink(missing_ok=True)
    con = duckdb.connect(str(database))
    namespaces = {ns[0] for ns in catalog.list_namespaces()}
    try:
        for namespace in (n for n in NAMESPACES if n in namespaces):
            for name in sorted(catalog.list_tables(namespace)):
                table = catalog.load_table(name)
                files = create_view(con, table, table.metadata.current_snapshot_id)
                logger.info("view %s over %d files", ".".join(name), files)
    finally:
        con.close()
    data_source = out_dir / DATA_SOURCE_FILE
    data_source.write_text(
        "# Written by python -m checks.datasource: views over the lakehouse tables' current snapshots.\n"
        f"type: duckdb\nname: {DATA_SOURCE}\nconnection:\n  database: {json.dumps(str(database))}\n"
        "  read_only: true\n",
        encoding="utf-8",
    )
    return data_source


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m checks.datasource``: write the data source, log how to use it."""
    parser = argparse.ArgumentParser(prog="python -m checks.datasource", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="output directory (default: $LAKEHOUSE_HOME/soda)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = Settings()
    data_source = write_datasource(open_catalog(settings), args.out or settings.home / "soda")
    contracts = write_contracts(load_registry(settings.sources), settings.contracts_dir)
    contract = next(iter(contracts.values()))
    logger.info(
        "verify a table with: SODA_CORE_TELEMETRY_ENABLED=false soda contract verify -c %s -ds %s",
        contract,
        data_source,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
