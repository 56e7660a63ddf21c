"""Named fault points: a test hook that kills the process at a precise place of a commit protocol.

Crash-consistency tests run a flow in a subprocess with ``LAKEHOUSE_FAULT_POINT=<name>[:<nth>]``;
the ``nth`` time (default the first) the code passes ``fault_point(name)``, the process kills itself
with ``SIGKILL``: no ``finally``, no ``atexit``, no flush — as a power cut or an OOM kill would.

Without the variable, :func:`fault_point` is one dictionary lookup and does nothing. It is a test
hook only: never set the variable in a deployment.

The points are placed in :mod:`lakehouse.publish` at every commit boundary of write-audit-publish
(see :data:`FAULT_POINTS`).
"""

from __future__ import annotations

import os
import signal

from lakehouse.errors import ConfigurationError

FAULT_POINT_ENV = "LAKEHOUSE_FAULT_POINT"

STAGE_BRANCH_CUT = "stage.branch-cut"
"""The audit branch is committed (cut from ``main``); no data file is written yet."""
STAGE_FILES_WRITTEN = "stage.files-written"
"""The data files and manifests of the staged write are on storage; the branch commit is not done."""
STAGE_COMMITTED = "stage.committed"
"""The staged snapshot is committed to the audit branch; the audit has not run."""
WAP_AUDITED = "wap.audited"
"""The audit passed; nothing is published yet (not even a ``before_publish`` hook's write)."""
WAP_HOOK_DONE = "wap.hook-done"
"""The ``before_publish`` hook ran (e.g. quarantine published); the table's ``main`` has not moved."""
PUBLISH_COMMITTED = "publish.committed"
"""``main`` moved to the staged snapshot and the branch is gone (one commit); the caller is not told yet."""

FAULT_POINTS = (
    STAGE_BRANCH_CUT,
    STAGE_FILES_WRITTEN,
    STAGE_COMMITTED,
    WAP_AUDITED,
    WAP_HOOK_DONE,
    PUBLISH_COMMITTED,
)
"""Every fault point, in the order a write passes them."""

_hits: dict[str, int] = {}


def parse_fault_spec(spec: str) -> tuple[str, int]:
    """``name[:nth]`` → ``(name, nth)``.

    Raises:
        ConfigurationError: if the name is unknown or ``nth`` is not a positive integer.

    """
    name, _, nth = spec.partition(":")
    if name not in FAULT_POINTS:
        raise ConfigurationError(f"{FAULT_POINT_ENV}: unknown fault point {name!r} (known: {FAULT_POINTS})")
    try:
        count = int(nth) if nth else 1
    except ValueError:
        count = 0
    if count < 1:
        raise ConfigurationError(f"{FAULT_POINT_ENV}: {spec!r} needs a positive hit count after ':'")
    return name, count


def fault_point(name: str) -> None:
    """Kill this process with ``SIGKILL`` if ``LAKEHOUSE_FAULT_POINT`` selects this hit of ``name``.

    A no-op unless the variable is set (test hook). The hit counter is per process and per name.

    Raises:
        ConfigurationError: if the variable is set to an unknown point or a bad count.

    """
    spec = os.environ.get(FAULT_POINT_ENV)
    if not spec:
        return
    wanted, nth = parse_fault_spec(spec)
    if wanted != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] == nth:
        # Unbuffered, so the line is on stderr whatever happens to the logging handlers.
        os.write(2, f"lakehouse fault point {name}:{nth} hit: SIGKILL\n".encode())
        os.kill(os.getpid(), signal.SIGKILL)
