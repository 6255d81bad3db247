"""`m365vault admin add|passwd|list`: administrator accounts, straight on the database."""

from __future__ import annotations

from pathlib import Path

import typer

from m365vault.bootstrap import ServerConfig, build_control, open_database
from m365vault.control.errors import ControlError
from m365vault.control.facade import Control

admin_app = typer.Typer(help="Manage administrator accounts.", no_args_is_help=True)

DataDir = typer.Option(..., "--data-dir", help="The server's data dir (holds server.key and the database)")
DbUrl = typer.Option(None, "--db", help="Database URL (default: SQLite in the data dir)")


def _control(data_dir: Path, db: str | None) -> Control:
    config = ServerConfig(data_dir=data_dir.resolve(), db_url=db)
    return build_control(config, open_database(config))


def _password(password: str | None) -> str:
    if password is not None:
        return password
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


@admin_app.command("add")
def add(
    name: str,
    data_dir: Path = DataDir,
    db: str | None = DbUrl,
    password: str | None = typer.Option(
        None, "--password", envvar="M365VAULT_ADMIN_PASSWORD", help="Else prompted"
    ),
) -> None:
    """Add an administrator."""
    try:
        _control(data_dir, db).accounts.add(name, _password(password))
    except ControlError as exc:
        typer.echo(exc.message, err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"Added administrator '{name}'.")


@admin_app.command("passwd")
def passwd(
    name: str,
    data_dir: Path = DataDir,
    db: str | None = DbUrl,
    password: str | None = typer.Option(
        None, "--password", envvar="M365VAULT_ADMIN_PASSWORD", help="Else prompted"
    ),
) -> None:
    """Set an administrator's password (ends the account's sessions)."""
    try:
        _control(data_dir, db).accounts.set_password(name, _password(password))
    except ControlError as exc:
        typer.echo(exc.message, err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"Password of '{name}' changed.")


@admin_app.command("list")
def list_(data_dir: Path = DataDir, db: str | None = DbUrl) -> None:
    """List administrators."""
    for name in _control(data_dir, db).accounts.names():
        typer.echo(name)


def register(app: typer.Typer) -> None:
    app.add_typer(admin_app, name="admin")
