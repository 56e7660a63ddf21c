"""Headless Chromium (Debian's ``chromium``) driven over the Chrome DevTools protocol, for page tests.

``Browser`` starts one Chromium with a fresh profile and every background-network feature off, and
loads pages in its one tab: each load reports the console errors, uncaught exceptions and failed
resource loads of the page, what a script measured in it, and can take a screenshot.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--remote-debugging-port=0",
)
START_SECONDS = 60


def chromium() -> str | None:
    """The Chromium executable, or None when it is not installed."""
    return shutil.which("chromium")


@dataclass
class Loaded:
    """One page load: problems the page reported, and the value of the probe script."""

    url: str
    errors: list[str] = field(default_factory=list)
    probe: Any = None


class Browser:
    """One headless Chromium tab."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._events: list[dict[str, Any]] = []
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and return its result; events that arrive meanwhile are kept."""
        ident = next(self._ids)
        self._ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv(timeout=60))
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self._events.append(message)

    def _wait_for(self, event: str, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while not any(e.get("method") == event for e in self._events):
            self._events.append(json.loads(self._ws.recv(timeout=max(deadline - time.monotonic(), 0.1))))

    def load(self, url: str, probe: str = "null") -> Loaded:
        """Navigate to ``url``, wait for its load event, evaluate ``probe`` (JS) and collect problems."""
        self._events.clear()
        self.call("Page.navigate", url=url)
        self._wait_for("Page.loadEventFired")
        value = self.call("Runtime.evaluate", expression=probe, returnByValue=True)["result"].get("value")
        loaded = Loaded(url, probe=value)
        for event in self._events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                loaded.errors.append(f"exception: {params['exceptionDetails'].get('text')}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                loaded.errors.append(f"console.{params['type']}: {params.get('args')}")
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                loaded.errors.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
        return loaded

    def screenshot(self, url: str, path: Path, width: int = 1280, max_height: int = 1600) -> Path:
        """A PNG of ``url`` at ``width`` pixels, as tall as the page (at most ``max_height``)."""
        self.call(
            "Emulation.setDeviceMetricsOverride", width=width, height=800, deviceScaleFactor=1, mobile=False
        )
        self.load(url)
        content = self.call("Page.getLayoutMetrics")["cssContentSize"]
        height = min(int(content["height"]) + 1, max_height)
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path


@contextmanager
def browser() -> Iterator[Browser]:
    """A headless Chromium with a fresh profile, stopped (by its pid) on exit.

    Raises:
        RuntimeError: if Chromium is not installed or does not start.
    """
    executable = chromium()
    if executable is None:
        raise RuntimeError("chromium is not installed")
    # Chromium's helper processes may still write to the profile as the browser exits: the whole
    # process group is stopped, and a file they leave behind does not fail the test.
    with tempfile.TemporaryDirectory(prefix="chromium-", ignore_cleanup_errors=True) as profile:
        process = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + START_SECONDS
            while not port_file.exists() or not port_file.read_text().strip():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"chromium did not start (exit status {process.poll()})")
                time.sleep(0.1)
            port = port_file.read_text().split()[0]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
                targets = json.loads(answer.read())
            page = next(t for t in targets if t["type"] == "page")
            with connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10) as ws:
                yield Browser(ws)
        finally:
            _stop_group(process)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """Stop ``process`` and the helpers it started (its process group, by its id)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=10)
            break
        except subprocess.TimeoutExpired:
            continue
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the helpers outlive the browser by a moment
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
