"""`m365vault emulator`: serve the Graph-compatible Microsoft 365 tenant emulator."""

from __future__ import annotations

from pathlib import Path

import typer

from m365vault.cli import app


@app.command(name="emulator")
def emulator(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(9443, help="Port to listen on."),
    state_dir: Path = typer.Option(
        Path("emulator-state"), "--state-dir", help="Where tenant state persists."
    ),
    tenant: str = typer.Option("contoso.onmicrosoft.com", help="Tenant domain (first start only)."),
    client_id: str = typer.Option("", "--client-id", help="App id (default: derived from seed and tenant)."),
    client_secret: str = typer.Option("", "--client-secret", help="App secret (default: random, printed)."),
    seed: int = typer.Option(1, help="Seed of the generated tenant (first start only)."),
    scale: str = typer.Option("small", help="small | tenth | medium | large (first start only)."),
    client_cert: Path | None = typer.Option(
        None, "--client-cert", help="PEM certificate accepted for client-assertion (certificate) credentials."
    ),
    mail_corpus: Path | None = typer.Option(
        None,
        "--mail-corpus",
        help="Directory of raw messages (*.txt, e.g. SpamAssassin) for a share of the mail.",
    ),
    http: bool = typer.Option(False, "--http", help="Serve plain HTTP instead of HTTPS."),
) -> None:
    """Serve a Microsoft Graph v1.0-compatible tenant for tests, benchmarks and the demo."""
    from m365vault.emulator.server import run  # imported here so other commands start fast
    from m365vault.emulator.tenant import SCALES
    from m365vault.emulator.world import Settings

    if scale not in SCALES:
        raise typer.BadParameter(f"scale must be one of {', '.join(SCALES)}")
    if client_cert is not None and not client_cert.is_file():
        raise typer.BadParameter(f"{client_cert} is not a file")
    if mail_corpus is not None and not mail_corpus.is_dir():
        raise typer.BadParameter(f"{mail_corpus} is not a directory")
    settings = Settings(
        state_dir=state_dir,
        tenant=tenant,
        client_id=client_id,
        client_secret=client_secret,
        seed=seed,
        scale=scale,
        mail_corpus=str(mail_corpus.resolve()) if mail_corpus else None,
    )
    run(settings, host, port, https=not http, client_cert=client_cert)
