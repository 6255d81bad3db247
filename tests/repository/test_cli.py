"""`m365vault repo ...` end to end through the command line entry point."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from m365vault.cli import app
from m365vault.repository import Repository
from m365vault.repository.backends.local import LocalBackend
from tests.repository.conftest import make_bucket
from tests.support.seaweed import S3Server

runner = CliRunner()


def pw_file(tmp_path: Path, password: str = "cli password") -> Path:
    path = tmp_path / "pw"
    path.write_text(password + "\n")
    return path


async def write_items(path: Path, password: str) -> list[str]:
    async with await Repository.open(LocalBackend(path), password) as repo:
        return [await repo.save_item(os.urandom(3000) * 3) for _ in range(5)]


def test_init_check_stats_prune_and_damage(tmp_path: Path) -> None:
    repo_dir, pw = tmp_path / "repo", pw_file(tmp_path)
    result = runner.invoke(
        app, ["repo", "init", str(repo_dir), "--password-file", str(pw), "--pack-size-mib", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "cli password" not in result.output
    refs = asyncio.run(write_items(repo_dir, "cli password"))

    result = runner.invoke(app, ["repo", "check", str(repo_dir), "--password-file", str(pw), "--read-data"])
    assert result.exit_code == 0 and "no errors" in result.output
    result = runner.invoke(app, ["repo", "stats", str(repo_dir), "--password-file", str(pw), "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["data_blobs"] == 5

    result = runner.invoke(app, ["repo", "prune", str(repo_dir), "--password-file", str(pw)])
    assert result.exit_code == 0, result.output

    packs = [p for p in (repo_dir / "data").rglob("*") if p.is_file()]
    assert packs
    raw = bytearray(packs[0].read_bytes())
    raw[10] ^= 0xFF
    packs[0].write_bytes(bytes(raw))
    result = runner.invoke(app, ["repo", "check", str(repo_dir), "--password-file", str(pw)])
    assert result.exit_code == 0  # structure is intact; only reading the data finds the flip
    result = runner.invoke(app, ["repo", "check", str(repo_dir), "--password-file", str(pw), "--read-data"])
    assert result.exit_code == 1
    assert "affected items:" in result.output and any(ref in result.output for ref in refs)


def test_wrong_password_and_bad_input_exit_non_zero(tmp_path: Path) -> None:
    repo_dir = tmp_path / "repo"
    assert (
        runner.invoke(
            app, ["repo", "init", str(repo_dir), "--password-file", str(pw_file(tmp_path))]
        ).exit_code
        == 0
    )
    wrong = runner.invoke(
        app, ["repo", "check", str(repo_dir), "--password-file", str(pw_file(tmp_path, "nope"))]
    )
    assert wrong.exit_code == 2 and "wrong password" in wrong.output
    again = runner.invoke(app, ["repo", "init", str(repo_dir), "--password-file", str(pw_file(tmp_path))])
    assert again.exit_code == 1 and "already exists" in again.output
    missing = runner.invoke(
        app, ["repo", "check", str(tmp_path / "none"), "--password-file", str(pw_file(tmp_path))]
    )
    assert missing.exit_code != 0
    assert not (tmp_path / "none").exists()
    lock_local = runner.invoke(
        app,
        [
            "repo",
            "init",
            str(tmp_path / "l"),
            "--password-file",
            str(pw_file(tmp_path)),
            "--object-lock-mode",
            "compliance",
        ],
    )
    assert lock_local.exit_code == 1 and "Object Lock" in lock_local.output


def test_prompted_password(tmp_path: Path) -> None:
    repo_dir = tmp_path / "repo"
    result = runner.invoke(app, ["repo", "init", str(repo_dir)], input="typed secret\ntyped secret\n")
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["repo", "check", str(repo_dir)], input="typed secret\n")
    assert result.exit_code == 0 and "no errors" in result.output


@pytest.mark.s3
def test_s3_url_with_object_lock(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = asyncio.run(make_bucket(s3_server, object_lock=True))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    pw = str(pw_file(tmp_path))
    url = f"s3://{bucket}/vault"
    common = ["--password-file", pw, "--s3-endpoint", s3_server.endpoint]
    result = runner.invoke(
        app, ["repo", "init", url, *common, "--object-lock-mode", "GOVERNANCE", "--object-lock-days", "1"]
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["repo", "check", url, *common, "--read-data"])
    assert result.exit_code == 0 and "no errors" in result.output, result.output
    assert s3_server.secret_key not in result.output
