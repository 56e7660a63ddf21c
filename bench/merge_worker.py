"""Run the MERGE benchmark of ``bench.merge`` (written separately) in its own process, if it exists.

``bench.merge`` exposes ``run(rows: int, changed: int, workdir: Path) -> dict[str, float]`` with at
least ``merge_speedup_vs_upsert``. Without it (or if it fails to import) the result says
``not available`` instead of failing the benchmark; if it exists but fails, the result says
``failed`` with the traceback.

``python -m bench.merge_worker --rows N --changed M --workdir DIR --result FILE``
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import traceback
from pathlib import Path
from typing import Any

MODULE = "bench.merge"
NOT_AVAILABLE = "not available"


def run(rows: int, changed: int, workdir: Path) -> dict[str, Any]:
    """``bench.merge.run``'s figures, or ``{"status": "not available", "reason": ...}``."""
    try:
        module = importlib.import_module(MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != MODULE:  # bench.merge exists but is broken: that is a failure, not absence
            raise
        return {"status": NOT_AVAILABLE, "reason": f"{MODULE} does not exist (yet)"}
    entry = getattr(module, "run", None)
    if not callable(entry):
        return {"status": NOT_AVAILABLE, "reason": f"{MODULE} has no run(rows, changed, workdir)"}
    workdir.mkdir(parents=True, exist_ok=True)
    figures = entry(rows=rows, changed=changed, workdir=workdir)
    return {"status": "ok", "rows": rows, "changed": changed, "figures": dict(figures)}


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; exits 1 if ``bench.merge.run`` raised (the traceback is in the result)."""
    parser = argparse.ArgumentParser(prog="python -m bench.merge_worker", description=__doc__)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--changed", type=int, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        result = run(args.rows, args.changed, args.workdir)
        code = 0
    except Exception as exc:  # reported in the result, and the exit code says it failed
        result = {
            "status": "failed",
            "reason": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(),
        }
        code = 1
    args.result.write_text(json.dumps(result, indent=1, default=str) + "\n", encoding="utf-8")
    return code


if __name__ == "__main__":
    sys.exit(main())
