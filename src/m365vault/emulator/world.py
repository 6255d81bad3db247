"""The emulated tenant as a whole: base tenant + store + delta engine + clock + knobs.

Handlers receive a World; it holds the shared pieces and the helpers every workload uses
(paging links, $select, lookups of directory objects).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from m365vault.emulator import ids
from m365vault.emulator.clock import Clock, iso, system_clock
from m365vault.emulator.delta import DeltaEngine
from m365vault.emulator.errors import GraphError
from m365vault.emulator.http import Req
from m365vault.emulator.store import Store
from m365vault.emulator.tenant import Drive, Site, Tenant, User
from m365vault.emulator.tokens import TokenSigner


@dataclass
class Throttle:
    enabled: bool = False
    mailbox_concurrency: int = 4
    mailbox_requests_per_10min: int = 10_000
    sharepoint_units_per_minute: int = 1_200


@dataclass
class Config:
    latency_ms: int = 0
    fault_rate: float = 0.0
    throttle: Throttle = field(default_factory=Throttle)
    token_lifetime_seconds: int = 3599
    delta_generations_kept: int = 5
    download_url_lifetime_seconds: int = 3600

    def to_json(self) -> dict[str, Any]:
        return {
            "latencyMs": self.latency_ms,
            "faultRate": self.fault_rate,
            "throttle": {
                "enabled": self.throttle.enabled,
                "mailboxConcurrency": self.throttle.mailbox_concurrency,
                "mailboxRequestsPer10Min": self.throttle.mailbox_requests_per_10min,
                "sharePointResourceUnitsPerMinute": self.throttle.sharepoint_units_per_minute,
            },
            "tokenLifetimeSeconds": self.token_lifetime_seconds,
            "deltaGenerationsKept": self.delta_generations_kept,
            "downloadUrlLifetimeSeconds": self.download_url_lifetime_seconds,
        }

    def update(self, data: dict[str, Any]) -> None:
        """Validate everything first, then apply: bad input changes nothing."""

        def num(key: str, value: Any, kind: type, lo: float, hi: float) -> Any:
            if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
                raise ValueError(f"{key} must be a number in [{lo}, {hi}]")
            return kind(value)

        known = {
            "latencyMs",
            "faultRate",
            "throttle",
            "tokenLifetimeSeconds",
            "deltaGenerationsKept",
            "downloadUrlLifetimeSeconds",
        }
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown settings: {sorted(unknown)}")
        new = Config(**{**self.__dict__, "throttle": Throttle(**self.throttle.__dict__)})
        if "latencyMs" in data:
            new.latency_ms = num("latencyMs", data["latencyMs"], int, 0, 60_000)
        if "faultRate" in data:
            new.fault_rate = num("faultRate", data["faultRate"], float, 0, 1)
        if "tokenLifetimeSeconds" in data:
            new.token_lifetime_seconds = num(
                "tokenLifetimeSeconds", data["tokenLifetimeSeconds"], int, 1, 86_400
            )
        if "deltaGenerationsKept" in data:
            new.delta_generations_kept = num(
                "deltaGenerationsKept", data["deltaGenerationsKept"], int, 1, 1000
            )
        if "downloadUrlLifetimeSeconds" in data:
            new.download_url_lifetime_seconds = num(
                "downloadUrlLifetimeSeconds", data["downloadUrlLifetimeSeconds"], int, 1, 86_400
            )
        if "throttle" in data:
            new.throttle = _throttle(new.throttle, data["throttle"], num)
        self.__dict__.update(new.__dict__)


def _throttle(current: Throttle, t: Any, num: Any) -> Throttle:
    """The throttle settings with `t` applied (validated)."""
    keys = {"enabled", "mailboxConcurrency", "mailboxRequestsPer10Min", "sharePointResourceUnitsPerMinute"}
    if not isinstance(t, dict) or set(t) - keys:
        raise ValueError(f"throttle must be an object with {sorted(keys)}")
    new = Throttle(**current.__dict__)
    if "enabled" in t:
        if not isinstance(t["enabled"], bool):
            raise ValueError("throttle.enabled must be a boolean")
        new.enabled = t["enabled"]
    if "mailboxConcurrency" in t:
        new.mailbox_concurrency = num("mailboxConcurrency", t["mailboxConcurrency"], int, 1, 1000)
    if "mailboxRequestsPer10Min" in t:
        new.mailbox_requests_per_10min = num(
            "mailboxRequestsPer10Min", t["mailboxRequestsPer10Min"], int, 1, 10**7
        )
    if "sharePointResourceUnitsPerMinute" in t:
        new.sharepoint_units_per_minute = num(
            "sharePointResourceUnitsPerMinute", t["sharePointResourceUnitsPerMinute"], int, 1, 10**7
        )
    return new


@dataclass
class Settings:
    """What the CLI passes in; persisted in the state dir on first start."""

    state_dir: Path
    tenant: str = "contoso.onmicrosoft.com"
    client_id: str = ""
    client_secret: str = ""
    seed: int = 1
    scale: str = "small"


class World:
    def __init__(self, settings: Settings, clock: Clock = system_clock) -> None:
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        self.store = Store(settings.state_dir)
        self.settings = self._persisted(settings)
        self.clock = clock
        self.config = Config()
        saved = self.store.meta_get("config")
        if saved:
            self.config.update(json.loads(saved))
        self.tenant = Tenant(self.settings.seed, self.settings.scale, self.settings.tenant)
        self.seed = self.settings.seed
        self.signer = TokenSigner(bytes.fromhex(self.store.meta_get("signing_key") or ""))
        self.delta = DeltaEngine(self.store, self.signer, lambda: self.config.delta_generations_kept)
        self.certificates: dict[str, Any] = {}

    def _persisted(self, s: Settings) -> Settings:
        """The first start fixes tenant, seed, scale and credentials; restarts keep them."""
        stored = self.store.meta_get("settings")
        if stored:
            data = json.loads(stored)
            if s.client_secret and s.client_secret != data["client_secret"]:
                data["client_secret"] = s.client_secret
                self.store.meta_set("settings", json.dumps(data))
            return Settings(state_dir=s.state_dir, **data)
        data = {
            "tenant": s.tenant,
            "client_id": s.client_id or ids.guid(s.seed, "app", s.tenant),
            "client_secret": s.client_secret or secrets.token_urlsafe(30),
            "seed": s.seed,
            "scale": s.scale,
        }
        self.store.meta_set("settings", json.dumps(data))
        self.store.meta_set("signing_key", secrets.token_hex(32))
        return Settings(state_dir=s.state_dir, **data)

    def save_config(self) -> None:
        self.store.meta_set("config", json.dumps(self.config.to_json()))

    def now(self) -> float:
        return self.clock()

    def now_iso(self) -> str:
        return iso(self.clock())

    # ------------------------------------------------------------------ directory lookups
    def user(self, key: str) -> User:
        user = self.tenant.user(key)
        if user is None:
            raise GraphError(
                404,
                "Request_ResourceNotFound",
                f"Resource '{key}' does not exist or one of its queried reference-property "
                "objects are not present.",
            )
        return user

    def mailbox_user(self, key: str) -> User:
        user = self.tenant.user(key)
        if user is None:
            raise GraphError(404, "ErrorInvalidUser", f"The requested user '{key}' is invalid.")
        if not user.has_mailbox:
            raise GraphError(
                404,
                "MailboxNotEnabledForRESTAPI",
                "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
            )
        return user

    def site(self, key: str) -> Site:
        low = key.lower()
        if low == "root":
            return self.tenant.sites[0]
        site = self.tenant.site_by_id.get(low)
        if site is None:  # also accept "{host},{collection-guid}" without the web id
            site = next((s for s in self.tenant.sites if s.id.lower().startswith(low + ",")), None)
        if site is None:
            raise GraphError(404, "itemNotFound", "Requested site could not be found")
        return site

    def drive(self, key: str) -> Drive:
        drive = self.tenant.drive_by_id.get(key)
        if drive is None:
            raise GraphError(404, "itemNotFound", "The resource could not be found.")
        return drive

    # ------------------------------------------------------------------ shaping
    @staticmethod
    def pick(
        obj: dict[str, Any], select: list[str] | None, always: tuple[str, ...] = ("id",)
    ) -> dict[str, Any]:
        if not select:
            return obj
        wanted = {s.lower() for s in select} | {a.lower() for a in always}
        return {
            k: v
            for k, v in obj.items()
            if k.lower() in wanted or k.startswith("@odata.") or k.startswith("@removed") or k in ("deleted",)
        }

    @staticmethod
    def link(req: Req, path: str, **query: str) -> str:
        q = urlencode(query, safe="'(),$")
        return f"{req.graph_base}{path}" + (f"?{q}" if q else "")

    def page_size(self, req: Req, default: int, maximum: int, *, prefer: bool) -> tuple[int, bool]:
        """(size, whether Prefer: odata.maxpagesize was applied)."""
        size, applied = default, False
        if prefer and req.prefer("odata.maxpagesize") is not None:
            try:
                size, applied = int(req.prefer("odata.maxpagesize") or ""), True
            except ValueError as exc:
                raise GraphError(400, "BadRequest", "odata.maxpagesize must be an integer.") from exc
        top = req.query.get("$top")
        if top is not None:
            if not top.isdigit() or int(top) < 1:
                raise GraphError(400, "BadRequest", f"Invalid value '{top}' for $top query option.")
            size = int(top)
        return max(1, min(size, maximum)), applied
