"""The `m365vault` command: serve, emulator, demo, repo, proxy, admin.

Each command group lives in a module of its own beside this file and is registered below.
"""

from __future__ import annotations

import typer

from m365vault import __version__

app = typer.Typer(
    name="m365vault",
    help="Self-hosted backup server for Microsoft 365 with a Veeam-compatible REST API.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


# Command groups register here, one line each (keeps merges trivial). Imported late because each
# module adds its commands to `app` above.
from m365vault.cli import admin, repo, serve  # noqa: E402
from m365vault.cli import demo as _demo  # noqa: E402
from m365vault.cli import emulator as _emulator  # noqa: E402, F401  (its decorator registers the command)

serve.register(app)
admin.register(app)
app.add_typer(repo.app, name="repo")
_demo.register(app)


def main() -> None:
    app()
