"""Run a command as a subprocess and measure it: wall time and peak RSS of its whole process tree.

RSS is sampled from ``/proc`` (no psutil in the project): every ``interval`` seconds the tree of
the child (its descendants found through ``/proc/<pid>/task/<tid>/children``, falling back to a
scan of every ``/proc/<pid>/stat``) is walked and the resident set sizes are summed. The peak is
the largest sum seen. Two caveats, both recorded with the figures:

- a spike shorter than the interval can be missed, so each process's own high-water mark
  (``VmHWM``) is kept too: the largest of them is a lower bound of the true tree peak;
- pages shared by several processes of the tree (e.g. libraries) are counted once per process,
  so the sum slightly over-states memory actually used.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
GIB = 1024**3
DEFAULT_INTERVAL = 0.1


@dataclass(frozen=True)
class Measurement:
    """What one run of a command cost, and how it ended."""

    command: list[str]
    returncode: int | None  # None if it was killed on timeout
    started: float  # epoch seconds
    seconds: float
    peak_rss_gb: float  # largest sampled sum of RSS over the process tree
    max_process_hwm_gb: float  # largest VmHWM of any process of the tree (a lower bound of the peak)
    max_processes: int  # most processes seen at once in the tree
    samples: int
    log: str  # stdout and stderr of the command
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        """True if the command exited 0 in time."""
        return self.returncode == 0 and not self.timed_out

    def as_dict(self) -> dict[str, object]:
        """The measurement as JSON-ready values (the command line joined)."""
        out = asdict(self)
        out["command"] = " ".join(self.command)
        return out


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="ascii", errors="replace")
    except OSError:  # the process ended meanwhile
        return None


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (of all its threads)."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return []
    out: list[int] = []
    for task in tasks:
        text = _read(str(task / "children"))
        if text is None:
            return _children_by_scan(pid)
        out.extend(int(c) for c in text.split())
    return out


def _children_by_scan(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _read(str(entry / "stat"))
        # the command name (2nd field) is in parentheses and may hold spaces: split after it
        if stat and int(stat[stat.rfind(")") + 2 :].split()[1]) == pid:
            out.append(int(entry.name))
    return out


def tree(root: int) -> list[int]:
    """``root`` and all its descendants alive now."""
    seen, todo = [], [root]
    while todo:
        pid = todo.pop()
        seen.append(pid)
        todo.extend(children(pid))
    return seen


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` now (0 if it is gone)."""
    text = _read(f"/proc/{pid}/statm")
    return int(text.split()[1]) * PAGE_SIZE if text else 0


def hwm_bytes(pid: int) -> int:
    """Peak resident set size of ``pid`` so far (``VmHWM``; 0 if it is gone or a kernel thread)."""
    text = _read(f"/proc/{pid}/status") or ""
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


class TreeSampler:
    """Samples the RSS of a process tree in a background thread until stopped."""

    def __init__(self, root: int, interval: float = DEFAULT_INTERVAL) -> None:
        """Sample the tree of ``root`` every ``interval`` seconds once started."""
        self.root = root
        self.interval = interval
        self.peak = 0
        self.hwm: dict[int, int] = {}
        self.max_processes = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rss-{root}", daemon=True)

    def sample(self) -> None:
        """Take one sample now."""
        pids = tree(self.root)
        self.peak = max(self.peak, sum(rss_bytes(p) for p in pids))
        for pid in pids:
            self.hwm[pid] = max(self.hwm.get(pid, 0), hwm_bytes(pid))
        self.max_processes = max(self.max_processes, len(pids))
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill the child's process group (it was started in its own session), then reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def run(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    log_path: Path,
    cwd: Path | None = None,
    timeout: float | None = None,
    interval: float = DEFAULT_INTERVAL,
) -> Measurement:
    """Run ``command`` to its end (or ``timeout``), sampling its tree; output goes to ``log_path``.

    The child gets its own session, so a timeout kills it with every process it started.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        started, began = time.time(), time.perf_counter()
        proc = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        timed_out = False
        with TreeSampler(proc.pid, interval) as sampler:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(proc)
            except BaseException:  # interrupted: do not leave the child running
                _kill_group(proc)
                raise
        seconds = time.perf_counter() - began
    # the child itself is reaped by now, but descendants it left behind (daemons) are not ours to
    # wait for: kill whatever is still in its process group
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    return Measurement(
        command=list(command),
        returncode=None if timed_out else proc.returncode,
        started=round(started, 3),
        seconds=round(seconds, 3),
        peak_rss_gb=round(sampler.peak / GIB, 4),
        max_process_hwm_gb=round(max(sampler.hwm.values(), default=0) / GIB, 4),
        max_processes=sampler.max_processes,
        samples=sampler.samples,
        log=str(log_path),
        timed_out=timed_out,
    )


def log_tail(path: str | Path, lines: int = 15) -> str:
    """The last lines of a log, for error messages in the results."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])
