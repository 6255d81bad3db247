"""`m365vault repo ...`: create, check, inspect and prune a repository at a path or S3 URL.

The password comes from `--password-file` or a prompt and is never echoed or logged. The command
bodies are plain async functions over an opened backend, so the server's own configuration (which
keeps each repository's master key) can call them with a key instead of a password.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import typer

from m365vault.repository import (
    ObjectLockPolicy,
    Repository,
    RepositoryConfig,
    RepositoryError,
    SafetyParameters,
    WrongPassword,
)
from m365vault.repository.backends.base import Backend, BackendError
from m365vault.repository.backends.location import S3Options, open_backend
from m365vault.repository.check import format_report

app = typer.Typer(name="repo", help="Work with a backup repository (a directory or s3://bucket/prefix).")
T = TypeVar("T")

PasswordFile = typer.Option(None, "--password-file", help="File whose first line is the password.")
Endpoint = typer.Option(None, "--s3-endpoint", envvar="M365VAULT_S3_ENDPOINT", help="S3 endpoint URL.")
AccessKey = typer.Option(None, "--s3-access-key", envvar="M365VAULT_S3_ACCESS_KEY", help="S3 access key.")
SecretKey = typer.Option(None, "--s3-secret-key", envvar="M365VAULT_S3_SECRET_KEY", help="S3 secret key.")
Region = typer.Option(None, "--s3-region", envvar="M365VAULT_S3_REGION", help="S3 region.")
Location = typer.Argument(None, help="Directory or s3://bucket/prefix (or use --data-dir).")
DataDir = typer.Option(None, "--data-dir", help="A server's data dir: work on that server's repository.")
RepositoryName = typer.Option(None, "--repository", help="With --data-dir: the repository's name or id.")
ServerDb = typer.Option(
    None, "--db", help="With --data-dir: the server's database URL (default: its SQLite)."
)


def _target(
    location: str | None,
    data_dir: Path | None,
    repository: str | None,
    db: str | None,
    password_file: Path | None,
) -> tuple[str, str, Callable[[], list[str]] | None]:
    """(location, password, live refs of the server's catalog or None) for a command."""
    if data_dir is None:
        if location is None:
            raise typer.BadParameter("give a repository location or --data-dir")
        return location, read_password(password_file), None
    if location is not None:
        raise typer.BadParameter("give either a location or --data-dir, not both")
    from m365vault.catalog import ContentRefs
    from m365vault.cli.server_repos import find

    found, engine = find(data_dir.resolve(), db, repository)
    return found.location, found.password, lambda: list(ContentRefs(engine).live_refs(found.id))


def read_password(password_file: Path | None, *, confirm: bool = False) -> str:
    if password_file is not None:
        try:
            lines = password_file.read_text().splitlines()
        except OSError as err:
            raise typer.BadParameter(f"cannot read password file: {err.strerror}") from None
        if not lines or not lines[0]:
            raise typer.BadParameter("the password file is empty")
        return lines[0]
    password: str = typer.prompt("Repository password", hide_input=True, confirmation_prompt=confirm)
    if not password:
        raise typer.BadParameter("the password must not be empty")
    return password


def _run(location: str, s3: S3Options, body: Callable[[Backend], Awaitable[T]]) -> T:
    async def main() -> T:
        backend = await open_backend(location, s3)
        try:
            return await body(backend)
        finally:
            await backend.close()

    try:
        return asyncio.run(main())
    except WrongPassword as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    except (RepositoryError, BackendError, ValueError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None


def _refs(refs_file: Path | None) -> list[str] | None:
    if refs_file is None:
        return None
    return [line.strip() for line in refs_file.read_text().splitlines() if line.strip()]


@app.command("init")
def init_command(
    location: str = typer.Argument(..., help="Directory or s3://bucket/prefix."),
    password_file: Path | None = PasswordFile,
    object_lock_mode: str | None = typer.Option(
        None, help="COMPLIANCE or GOVERNANCE (S3 buckets with Object Lock)."
    ),
    object_lock_days: int = typer.Option(30, help="Retention period of every data object, in days."),
    pack_size_mib: int = typer.Option(32, help="Target pack size."),
    s3_endpoint: str | None = Endpoint,
    s3_access_key: str | None = AccessKey,
    s3_secret_key: str | None = SecretKey,
    s3_region: str | None = Region,
) -> None:
    """Create a new, empty repository."""
    lock = ObjectLockPolicy(object_lock_mode.upper(), object_lock_days) if object_lock_mode else None
    config = RepositoryConfig(pack_size=pack_size_mib * 1024 * 1024)
    password = read_password(password_file, confirm=True)

    async def body(backend: Backend) -> str:
        repo = await Repository.init(backend, password, config=config, object_lock=lock)
        await repo.close()
        return repo.config.id

    repo_id = _run(location, S3Options(s3_endpoint, s3_access_key, s3_secret_key, s3_region), body)
    typer.echo(f"created repository {repo_id[:16]} at {location}")


@app.command("check")
def check_command(
    location: str | None = Location,
    read_data: bool = typer.Option(False, "--read-data", help="Read and authenticate every blob."),
    refs_file: Path | None = typer.Option(None, help="Also verify these item refs (one a line)."),
    password_file: Path | None = PasswordFile,
    s3_endpoint: str | None = Endpoint,
    s3_access_key: str | None = AccessKey,
    s3_secret_key: str | None = SecretKey,
    s3_region: str | None = Region,
    data_dir: Path | None = DataDir,
    repository: str | None = RepositoryName,
    db: str | None = ServerDb,
) -> None:
    """Verify structure and index; with --read-data every blob. Exit 1 on any error."""
    location, password, _ = _target(location, data_dir, repository, db, password_file)

    async def body(backend: Backend) -> bool:
        repo = await Repository.open(backend, password)
        try:
            report = await repo.check(read_data=read_data, refs=_refs(refs_file))
        finally:
            await repo.close()
        typer.echo(format_report(report))
        return report.ok

    if not _run(location, S3Options(s3_endpoint, s3_access_key, s3_secret_key, s3_region), body):
        raise typer.Exit(1)


@app.command("stats")
def stats_command(
    location: str | None = Location,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    password_file: Path | None = PasswordFile,
    s3_endpoint: str | None = Endpoint,
    s3_access_key: str | None = AccessKey,
    s3_secret_key: str | None = SecretKey,
    s3_region: str | None = Region,
    data_dir: Path | None = DataDir,
    repository: str | None = RepositoryName,
    db: str | None = ServerDb,
) -> None:
    """Sizes and counts: packs, blobs, content versus stored bytes."""
    location, password, _ = _target(location, data_dir, repository, db, password_file)

    async def body(backend: Backend) -> dict[str, int]:
        async with await Repository.open(backend, password) as repo:
            return asdict(await repo.stats())

    stats = _run(location, S3Options(s3_endpoint, s3_access_key, s3_secret_key, s3_region), body)
    if as_json:
        typer.echo(json.dumps(stats))
    else:
        for key, value in stats.items():
            typer.echo(f"{key:16} {value}")


@app.command("prune")
def prune_command(
    location: str | None = Location,
    refs_file: Path | None = typer.Option(
        None, help="Item refs still needed, one a line. Without it every indexed blob is kept."
    ),
    grace_hours: float = typer.Option(1.0, help="Wait between marking and deleting (concurrent backups)."),
    password_file: Path | None = PasswordFile,
    s3_endpoint: str | None = Endpoint,
    s3_access_key: str | None = AccessKey,
    s3_secret_key: str | None = SecretKey,
    s3_region: str | None = Region,
    data_dir: Path | None = DataDir,
    repository: str | None = RepositoryName,
    db: str | None = ServerDb,
) -> None:
    """Reclaim space in two phases: a run marks, a later run (after the grace period) deletes.
    With --data-dir the refs still needed are every live reference of the server's catalog."""
    location, password, live = _target(location, data_dir, repository, db, password_file)
    safety = SafetyParameters(grace=timedelta(hours=grace_hours))
    refs = live() if live is not None and refs_file is None else _refs(refs_file)

    async def body(backend: Backend) -> dict[str, object]:
        async with await Repository.open(backend, password) as repo:
            return asdict(await repo.prune(refs, safety=safety))

    report = _run(location, S3Options(s3_endpoint, s3_access_key, s3_secret_key, s3_region), body)
    for key, value in report.items():
        if value not in (0, [], ""):
            typer.echo(f"{key:20} {value}")
