"""The `serve` process itself: first start without a preset password, plain HTTP, SIGTERM, and the
admin command."""

from __future__ import annotations

import re
import signal
import ssl
import subprocess
import time
from pathlib import Path

import httpx

from tests.api.conftest import M365VAULT
from tests.support.net import free_port
from tests.support.processes import ChildProcess


def test_first_start_prints_a_generated_password_once_and_sigterm_exits_cleanly(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    argv = [M365VAULT, "serve", "--data-dir", str(data), "--port", str(port), "--http"]
    proc = ChildProcess(
        argv, tmp_path / "first.log", env={"M365VAULT_ADMIN_USER": "", "M365VAULT_ADMIN_PASSWORD": ""}
    )
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/health")
        match = re.search(r"Generated password \(shown only now\): (\S+)", proc.log())
        assert match, proc.log()
        r = httpx.post(
            f"http://127.0.0.1:{port}/v3/Token",
            data={"grant_type": "password", "username": "admin", "password": match.group(1)},
        )
        assert r.status_code == 200
        assert (data / "server.key").stat().st_mode & 0o777 == 0o600
        started = time.monotonic()
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(15) == 0
        assert time.monotonic() - started < 10
    finally:
        proc.terminate()
    # Second start: no new administrator, no password printed.
    proc = ChildProcess(argv, tmp_path / "second.log")
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/health")
        assert "Generated password" not in proc.log()
    finally:
        assert proc.terminate() == 0


def test_given_tls_certificate_is_used(tmp_path: Path) -> None:
    from m365vault.cli.tls import ensure_self_signed

    cert, key = ensure_self_signed(tmp_path)
    port = free_port()
    argv = [
        M365VAULT,
        "serve",
        "--data-dir",
        str(tmp_path / "d"),
        "--port",
        str(port),
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
    ]
    proc = ChildProcess(argv, tmp_path / "tls.log", env={"M365VAULT_ADMIN_PASSWORD": "Admin-Pass-1"})
    try:
        proc.wait_http(f"https://127.0.0.1:{port}/health")
        assert not (tmp_path / "d" / "tls-cert.pem").exists()
        assert (
            httpx.get(
                f"https://127.0.0.1:{port}/health", verify=ssl.create_default_context(cafile=str(cert))
            ).status_code
            == 200
        )
    finally:
        assert proc.terminate() == 0


def test_admin_command(tmp_path: Path) -> None:
    data = str(tmp_path / "data")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([M365VAULT, "admin", *args, "--data-dir", data], capture_output=True, text=True)

    assert run("add", "Alice", "--password", "Alice-Pass-1").returncode == 0
    assert run("add", "bob", "--password", "Bob-Pass-12").returncode == 0
    dup = run("add", "ALICE", "--password", "Other-Pass-1")
    assert dup.returncode == 1 and "already exists" in dup.stderr
    short = run("add", "carol", "--password", "short")
    assert short.returncode == 1 and "8 characters" in short.stderr
    assert run("list").stdout.split() == ["Alice", "bob"]
    assert run("passwd", "alice", "--password", "New-Alice-Pass").returncode == 0
    assert run("passwd", "nobody", "--password", "New-Alice-Pass").returncode == 1
