"""The machine and software a benchmark ran on: cores, memory, load, package versions, commit."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PACKAGES = (
    "polars",
    "pyiceberg",
    "prefect",
    "duckdb",
    "pyarrow",
    "narwhals",
    "soda-core",
    "tpchgen-cli",
    "pyspark",
)
ROOT = Path(__file__).resolve().parent.parent


def _meminfo_gb(key: str) -> float | None:
    try:
        text = Path("/proc/meminfo").read_text(encoding="ascii")
    except OSError:
        return None
    match = re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE)
    return round(int(match.group(1)) / 1024**2, 2) if match else None


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor()
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else platform.processor()


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (how busy the machine was)."""
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict[str, object]:
    """Cores, memory and OS of this machine, and how loaded it is now."""
    return {
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "memory_gb": _meminfo_gb("MemTotal"),
        "memory_available_gb": _meminfo_gb("MemAvailable"),
        "platform": platform.platform(),
        "load_average": load_average(),
    }


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        return "not installed"
    out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30, check=False)
    first = (out.stderr or out.stdout).splitlines()
    return first[0] if first else "unknown"


def versions() -> dict[str, str]:
    """Versions of Python, the data packages (``not installed`` if missing) and Java."""
    out = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    out["java"] = _java()
    return out


def code() -> dict[str, object]:
    """The git commit of the benchmarked code and whether the work tree had local changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "local_changes": None}
    return {"commit": head, "local_changes": bool(dirty)}
