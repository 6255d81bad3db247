"""m365vault: a self-hosted backup server for Microsoft 365 with a Veeam-compatible REST API.

Layers (data flows down, never up; enforced by import-linter, see pyproject.toml):
cli -> bootstrap -> api -> control -> engine | restore -> catalog | m365 | repository -> db.
`emulator` stands apart: it imports nothing of the package and only the CLI and tests import it.
"""

__version__ = "0.1.0.dev0"
