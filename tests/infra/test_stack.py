"""The local stack: real Postgres, SeaweedFS and Prefect server on loopback, stopped by PID."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from infra import stack as infra_stack
from infra.stack import Secrets, Stack, StackError

ROOT = Path(__file__).resolve().parents[2]


def _gone(pid: int) -> bool:
    """No such process, or only a zombie waiting for a reaper (it holds no port nor file)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return text[text.rindex(")") + 2] in "ZX"


def _assert_no_secret_in_logs(root: Path) -> None:
    stack_secrets = Secrets.load_or_create(root)
    values = [
        stack_secrets.postgres_password,
        stack_secrets.s3_access_key_id,
        stack_secrets.s3_secret_access_key,
    ]
    for log in (root / "logs").glob("*.log"):
        text = log.read_text(errors="replace")
        assert not [v for v in values if v in text], f"a secret leaked into {log.name}"


@pytest.fixture
def stack_dir() -> Iterator[Path]:
    """A stack directory the unprivileged Postgres user can reach (pytest's tmp dirs are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="infra-stack-"))
    path.chmod(0o711)
    yield path / "stack"
    shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------------------------------- units


def test_pyiceberg_env_names_follow_pyiceberg_mapping() -> None:
    assert infra_stack._pyiceberg_key("lakehouse", "s3.access-key-id") == (
        "PYICEBERG_CATALOG__LAKEHOUSE__S3__ACCESS_KEY_ID"
    )
    assert infra_stack._pyiceberg_key("lakehouse", "uri") == "PYICEBERG_CATALOG__LAKEHOUSE__URI"


def test_env_values_are_quoted_for_the_shell_only_where_needed() -> None:
    env = {"B": "postgresql+psycopg2://u:p-w_1@127.0.0.1:5/db", "A": '{"k":"/x/*"}'}
    assert (
        infra_stack.format_env(env) == 'A=\'{"k":"/x/*"}\'\nB=postgresql+psycopg2://u:p-w_1@127.0.0.1:5/db\n'
    )


def test_secrets_are_generated_once_private_and_redacted(tmp_path: Path) -> None:
    first = Secrets.load_or_create(tmp_path)
    assert stat.S_IMODE((tmp_path / "secrets.env").stat().st_mode) == 0o600
    assert Secrets.load_or_create(tmp_path) == first
    assert first.postgres_password not in repr(first)
    assert first.redact(f"pw={first.postgres_password}") == "pw=***"


def test_env_example_lists_every_variable_of_a_full_stack(tmp_path: Path) -> None:
    ports = {"postgres": 1, "s3": 2, "api": 3}
    stack_secrets = Secrets.load_or_create(tmp_path)
    env = infra_stack.base_env(tmp_path)
    for name in (infra_stack.POSTGRES, infra_stack.SEAWEEDFS, infra_stack.PREFECT_SERVER):
        env.update(infra_stack.service_env(name, ports, stack_secrets, tmp_path))
    example = (ROOT / "infra" / ".env.example").read_text()
    documented = {line.split("=", 1)[0] for line in example.splitlines() if line and not line.startswith("#")}
    assert set(env) <= documented


# ---------------------------------------------------------------------------------- integration


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_iceberg_on_postgres_catalog_and_seaweedfs_warehouse(
    stack_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow as pa
    import pyarrow.fs as pafs
    from pyiceberg.catalog import load_catalog
    from pyiceberg.utils.config import Config

    with infra_stack.postgres(stack_dir) as pg, infra_stack.seaweedfs(stack_dir) as s3:
        pids = [pg.pid, s3.pid]
        # Exactly what a user gets from `python -m infra.stack env`: configuration by environment only.
        for key, value in {**infra_stack.base_env(stack_dir), **pg.env, **s3.env}.items():
            monkeypatch.setenv(key, value)

        # pyiceberg reads PYICEBERG_* once, at import (catalog._ENV_CONFIG): parse them afresh.
        config = Config().get_catalog_config("lakehouse")
        assert config is not None
        properties = {key: str(value) for key, value in config.items()}
        catalog = load_catalog("lakehouse", **properties)
        catalog.create_namespace("smoke")
        rows = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "name": ["a", "b", "c"]})
        table = catalog.create_table("smoke.items", schema=rows.schema)
        table.append(rows)
        table.append(rows.slice(0, 1))

        reread = load_catalog("lakehouse", **properties).load_table("smoke.items").scan().to_arrow()
        assert sorted(reread.column("id").to_pylist()) == [1, 1, 2, 3]
        assert table.metadata_location.startswith("s3://warehouse/smoke/items/metadata/")

        fs, path = pafs.FileSystem.from_uri("s3://landing/tpch/orders/dt=1995-03-02")
        with fs.open_output_stream(f"{path}/part-0.csv") as out:
            out.write(b"o_orderkey\n1\n")
        listed = fs.get_file_info(pafs.FileSelector("landing/tpch", recursive=True))
        assert "landing/tpch/orders/dt=1995-03-02/part-0.csv" in {info.path for info in listed}

    assert all(_gone(pid) for pid in pids)
    assert stat.S_IMODE((stack_dir / "secrets.env").stat().st_mode) == 0o600
    _assert_no_secret_in_logs(stack_dir)


class _Receiver(BaseHTTPRequestHandler):
    """Collects JSON webhook posts (the notification block's target)."""

    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.received.append(json.loads(body or b"{}"))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    _Receiver.received = []
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", _Receiver.received
    server.shutdown()
    server.server_close()


# One interpreter (one Prefect import) for both steps: create the automation, then fail a flow.
NOTIFY_THEN_FAIL = textwrap.dedent(
    """
    from prefect import flow

    from infra import notifications

    assert notifications.main([]) == 0

    @flow(name="infra-notification-probe")
    def probe() -> None:
        raise RuntimeError("probe failure")

    probe(return_state=True)
    """
)


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_full_stack_with_prefect_server_worker_and_failure_notification(
    stack_dir: Path, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    hook_url, received = webhook
    with Stack.start(stack_dir, prefect=True, worker=True, ui=False) as stack:
        pids = [service.pid for service in stack.services]
        recorded = json.loads((stack_dir / "pids.json").read_text())["services"]
        assert [r["name"] for r in recorded] == ["postgres", "seaweedfs", "prefect-server", "prefect-worker"]
        assert [r["pid"] for r in recorded] == pids

        api = stack.env["PREFECT_API_URL"]
        with urllib.request.urlopen(f"{api}/health", timeout=5) as response:
            assert json.loads(response.read()) is True

        env = {**os.environ, **stack.env, "LAKEHOUSE_ALERT_WEBHOOK_URL": hook_url}
        run = subprocess.run(
            [sys.executable, "-c", NOTIFY_THEN_FAIL], env=env, cwd=ROOT, capture_output=True, text=True
        )
        assert run.returncode == 0, run.stderr[-2000:]
        deadline = time.monotonic() + 30
        while not received and time.monotonic() < deadline:
            time.sleep(0.5)
        assert received, "no failure notification reached the webhook"
        assert "infra-notification-probe" in received[0]["subject"]
        assert "Failed" in received[0]["subject"]

    assert all(_gone(pid) for pid in pids)
    assert not (stack_dir / "pids.json").exists()
    _assert_no_secret_in_logs(stack_dir)


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_cli_up_env_status_down(stack_dir: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "infra.stack", *args, "--dir", str(stack_dir)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )

    up = cli("up", "--no-prefect")
    try:
        assert up.returncode == 0, up.stderr
        assert cli("status").returncode == 0
        env = dict(line.split("=", 1) for line in cli("env").stdout.splitlines())
        assert env["PYICEBERG_CATALOG__LAKEHOUSE__WAREHOUSE"] == "s3://warehouse/"
        assert env["LAKEHOUSE_LANDING_URI"] == "s3://landing/"
        password = Secrets.load_or_create(stack_dir).postgres_password
        assert password in env["PYICEBERG_CATALOG__LAKEHOUSE__URI"]
        assert password not in up.stderr
        assert cli("up", "--no-prefect").returncode == 1  # already running
    finally:
        records = json.loads((stack_dir / "pids.json").read_text())["services"]
        down = cli("down")
    assert down.returncode == 0, down.stderr
    assert all(_gone(record["pid"]) for record in records)
    assert cli("status").returncode == 1


def _processes_using(path: Path) -> list[int]:
    """PIDs whose command line mentions ``path`` (live ones only)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and not _gone(int(entry.name)):
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if str(path).encode() in cmdline:
                found.append(int(entry.name))
    return found


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_component_that_cannot_start_fails_with_its_log_tail_and_is_stopped(stack_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(
            StackError, match=r"(?s)seaweedfs failed \(.*Port allocation failed.*seaweedfs\.log"
        ):
            infra_stack.seaweedfs(stack_dir, port=port, timeout=20)
    assert _processes_using(stack_dir) == []


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_failed_stack_start_stops_what_it_started(stack_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_seaweedfs(root: Path) -> infra_stack.Service:
        assert _processes_using(stack_dir), "postgres should be running by now"
        raise StackError("seaweedfs broke")

    monkeypatch.setattr(infra_stack, "seaweedfs", broken_seaweedfs)
    with pytest.raises(StackError, match="seaweedfs broke"):
        Stack.start(stack_dir)
    assert _processes_using(stack_dir) == []
    assert not (stack_dir / "pids.json").exists()
