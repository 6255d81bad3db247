"""The server's own repositories for `m365vault repo check|stats|prune --data-dir DIR`.

The repository's location and password come from the server's configuration database (the
password is sealed with the server key in DIR); the password never appears on a command line.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

import typer
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from m365vault.db.config_tables import BackupRepository
from m365vault.db.engine import make_engine, sqlite_url
from m365vault.secretbox import KEY_FILE_NAME, SecretBoxError, open_secretbox


@dataclass(frozen=True)
class ServerRepository:
    id: str
    name: str
    location: str
    password: str = field(repr=False)


def find(data_dir: Path, db_url: str | None, wanted: str | None) -> tuple[ServerRepository, Engine]:
    """The repository named or numbered `wanted` (default: the only one, else the default one)."""
    if not (data_dir / KEY_FILE_NAME).is_file():
        raise typer.BadParameter(f"{data_dir} is not a server data directory (no {KEY_FILE_NAME})")
    engine = make_engine(db_url or sqlite_url(data_dir))
    with Session(engine) as db:
        repos = list(db.scalars(select(BackupRepository).order_by(BackupRepository.created_at)))
    if not repos:
        raise typer.BadParameter("the server has no backup repository")
    if wanted is None:
        chosen = repos[0]
    else:
        matches = [r for r in repos if r.name.casefold() == wanted.casefold() or _same_id(r.id, wanted)]
        if not matches:
            names = ", ".join(repr(r.name) for r in repos)
            raise typer.BadParameter(f"no repository {wanted!r} (the server has {names})")
        chosen = matches[0]
    try:
        password = open_secretbox(data_dir).open(chosen.password_sealed, f"repository:{chosen.id}:password")
    except SecretBoxError as exc:
        raise typer.BadParameter(
            f"the repository password cannot be opened with this server key: {exc}"
        ) from exc
    return ServerRepository(str(chosen.id), chosen.name, chosen.path, password), engine


def _same_id(value: uuid.UUID, text: str) -> bool:
    try:
        return value == uuid.UUID(text)
    except ValueError:
        return False
