"""Server-wide settings documents: mailbox-folder exclusions and the e-mail (SMTP) settings of job
notifications and of the explorers' send actions. Each is a small document with defaults; an
update changes only the given fields. SMTP passwords are sealed and never read back out."""

from __future__ import annotations

from typing import Any

from m365vault.control.errors import InvalidRequest
from m365vault.control.services import Services
from m365vault.db.config_tables import ServerSetting

EXCLUSIONS = "exclusions"
EMAIL_KINDS = ("vbo", "vex", "vesp", "veod")

DEFAULTS: dict[str, dict[str, Any]] = {
    EXCLUSIONS: {
        "deletedItems": False,
        "drafts": False,
        "junkEmail": False,
        "outbox": False,
        "syncIssues": True,
        "litigationHold": False,
        "inPlaceHold": False,
    },
    "email:vbo": {
        "enableNotification": False,
        "smtpServer": "",
        "port": 25,
        "useAuthentication": False,
        "username": "",
        "useSSL": False,
        "from": "",
        "to": "",
        "subject": "[%JobResult%] %OrgName% - %JobName%",
        "notifyOnSuccess": True,
        "notifyOnWarning": True,
        "notifyOnFailure": True,
        "supressUntilLastRetry": True,
        "attachDetailedReport": False,
    },
    **{
        f"email:{kind}": {
            "enableNotification": False,
            "server": "",
            "port": 25,
            "from": "",
            "useAuthentication": False,
            "useSSL": False,
            "username": "",
        }
        for kind in ("vex", "vesp", "veod")
    },
}


class Settings:
    def __init__(self, services: Services) -> None:
        self._s = services

    def get(self, name: str) -> dict[str, Any]:
        with self._s.unit_of_work() as db:
            row = db.get(ServerSetting, name)
            return {**DEFAULTS[name], **(row.value if row else {})}

    def update(self, name: str, changes: dict[str, Any], secret: str | None = None) -> dict[str, Any]:
        unknown = set(changes) - set(DEFAULTS[name])
        if unknown:
            raise InvalidRequest(f"Unknown setting(s): {', '.join(sorted(unknown))}.")
        if "port" in changes and not 1 <= int(changes["port"]) <= 65535:
            raise InvalidRequest("'port' must be between 1 and 65535.")
        with self._s.unit_of_work() as db:
            row = db.get(ServerSetting, name)
            if row is None:
                row = ServerSetting(name=name, value={})
                db.add(row)
            row.value = {**row.value, **changes}
            if secret is not None:
                row.secret_sealed = self._s.secrets.seal(secret, f"setting:{name}:password")
            return {**DEFAULTS[name], **row.value}

    def secret(self, name: str) -> str | None:
        """The stored SMTP password in plaintext, for the mail sender only."""
        with self._s.unit_of_work() as db:
            row = db.get(ServerSetting, name)
            if row is None or row.secret_sealed is None:
                return None
            return self._s.secrets.open(row.secret_sealed, f"setting:{name}:password")
