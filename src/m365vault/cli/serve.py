"""`m365vault serve`: the REST server (HTTPS by default, self-signed certificate on first start)."""

from __future__ import annotations

import gc
import logging
import os
import signal
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer

from m365vault.engine.budget import DEFAULT_BUDGET

DEFAULT_DATA_DIR = Path("./m365vault-data")


def serve(
    data_dir: Path = typer.Option(
        DEFAULT_DATA_DIR, "--data-dir", help="Configuration, keys and the default repository"
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on"),
    port: int = typer.Option(4443, "--port", help="TCP port (Veeam's default is 4443)"),
    db: str | None = typer.Option(None, "--db", help="Database URL (default: SQLite in the data dir)"),
    tls_cert: Path | None = typer.Option(None, "--tls-cert", help="PEM certificate (default: self-signed)"),
    tls_key: Path | None = typer.Option(None, "--tls-key", help="PEM private key of --tls-cert"),
    http: bool = typer.Option(False, "--http", help="Plain HTTP, for local development only"),
    restore_idle_minutes: float = typer.Option(
        30.0, "--restore-idle-minutes", min=0.05, help="Stop restore sessions idle for this long"
    ),
    graph_ca_file: Path | None = typer.Option(
        None,
        "--graph-ca-file",
        envvar="M365VAULT_GRAPH_CA_FILE",
        help="CA bundle trusted for Graph and the login authority (e.g. the emulator's certificate)",
    ),
    graph_insecure: bool = typer.Option(
        False,
        "--graph-insecure",
        envvar="M365VAULT_GRAPH_INSECURE",
        help="Do not verify Graph's TLS certificate (development only)",
    ),
    timezone: str | None = typer.Option(
        None, "--timezone", help="Time zone job schedules are read in (default: the system's)"
    ),
    no_scheduler: bool = typer.Option(
        False, "--no-scheduler", help="Do not start scheduled jobs or repositories' retention passes"
    ),
    content_buffer_mib: int = typer.Option(
        DEFAULT_BUDGET // (1024 * 1024),
        "--content-buffer-mib",
        min=1,
        help="Item content the backup workers hold in memory at once, downloaded and not yet "
        "stored (bounds the server's memory however many workers are busy)",
    ),
    bare: bool = typer.Option(
        False,
        "--bare",
        help="API and configuration only: no Microsoft 365 connector, backup engine or repository "
        "formatting (API development and its tests)",
    ),
) -> None:
    """Run the REST API server until SIGTERM or Ctrl-C."""
    from m365vault.cli.malloc import bound_malloc

    bound_malloc()  # before any thread starts: arenas are made per thread on first use
    # Imported here so that other commands (admin, ...) do not load the web stack.
    import uvicorn

    from m365vault.bootstrap import ProductSettings, RestoreOptions, ServerConfig, build_app
    from m365vault.cli.tls import ensure_self_signed
    from m365vault.control.errors import ControlError

    if (tls_cert is None) != (tls_key is None):
        raise typer.BadParameter("--tls-cert and --tls-key go together")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # httpx logs every request's full URL at INFO: Graph's pre-authenticated download URLs carry
    # a bearer token in them, and a backup makes hundreds of thousands of requests.
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    data_dir = data_dir.resolve()
    if timezone is not None:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise typer.BadParameter(f"unknown time zone {timezone!r}") from exc
    product = ProductSettings(
        graph_ca_file=str(graph_ca_file.resolve()) if graph_ca_file else None,
        graph_insecure=graph_insecure,
        timezone=timezone,
        scheduler=not no_scheduler,
        content_budget=content_buffer_mib * 1024 * 1024,
    )
    restore = RestoreOptions(
        idle_timeout=timedelta(minutes=restore_idle_minutes),
        graph_verify=False if graph_insecure else (product.graph_ca_file or True),
    )
    config = ServerConfig(data_dir=data_dir, db_url=db, restore=restore, product=None if bare else product)
    try:
        app, first = build_app(
            config, os.environ.get("M365VAULT_ADMIN_USER"), os.environ.get("M365VAULT_ADMIN_PASSWORD")
        )
    except ControlError as exc:  # e.g. M365VAULT_ADMIN_PASSWORD too short
        typer.echo(f"Cannot start: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    if first.admin_created:
        typer.echo(f"Created administrator '{first.admin_created}'.")
        if first.generated_password:
            # Printed once on purpose: it is stored only as an argon2 hash.
            typer.echo(f"Generated password (shown only now): {first.generated_password}")
    ssl: dict[str, str] = {}
    if not http:
        cert, key = (tls_cert, tls_key) if tls_cert and tls_key else ensure_self_signed(data_dir)
        ssl = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    scheme = "http" if http else "https"
    typer.echo(f"m365vault listening on {scheme}://{host}:{port}/v3 (Swagger UI at /swagger)")
    # uvicorn shuts down gracefully on SIGTERM and then re-raises the signal under the handler that
    # was installed before it; make that handler a normal exit, so a clean stop exits with 0.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    # What start-up built (modules, FastAPI routes, pydantic schemas, SQLAlchemy tables: ~240,000
    # objects) lives as long as the process: left in the collector's oldest generation, every full
    # collection walked all of it again (60-125 ms each, ~6 % of a backup's server CPU).
    gc.collect()
    gc.freeze()
    uvicorn.run(app, host=host, port=port, log_level="info", server_header=False, **ssl)  # type: ignore[arg-type]


def _exit_cleanly(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


def register(app: typer.Typer) -> None:
    app.command(name="serve")(serve)
