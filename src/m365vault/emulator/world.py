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

# JSON name -> (attribute, kind, low, high). Bounds keep a typo from wedging the emulator.
_SETTINGS: dict[str, tuple[str, type, float, float]] = {
    "latencyMs": ("latency_ms", int, 0, 60_000),
    "faultRate": ("fault_rate", float, 0, 1),
    "tokenLifetimeSeconds": ("token_lifetime_seconds", int, 1, 86_400),
    "deltaGenerationsKept": ("delta_generations_kept", int, 1, 1000),
    "downloadUrlLifetimeSeconds": ("download_url_lifetime_seconds", int, 1, 86_400),
    "deltaDuplicates": ("delta_duplicates", bool, 0, 1),
    "enforceUploadFragmentMultiple": ("enforce_fragment_multiple", bool, 0, 1),
    "clockOffsetSeconds": ("clock_offset_seconds", int, -(10**9), 10**9),
    "deltaReplicationLagSeconds": ("delta_replication_lag_seconds", float, 0, 3600),
}
_THROTTLE: dict[str, tuple[str, type, float, float]] = {
    "enabled": ("enabled", bool, 0, 1),
    "mailboxConcurrency": ("mailbox_concurrency", int, 1, 1000),
    "mailboxRequestsPer10Min": ("mailbox_requests_per_10min", int, 1, 10**7),
    "mailboxUploadBytesPer5Min": ("mailbox_upload_bytes_per_5min", int, 1, 10**12),
    "sharePointResourceUnitsPerMinute": ("sharepoint_units_per_minute", int, 1, 10**7),
}


@dataclass
class Throttle:
    enabled: bool = False
    mailbox_concurrency: int = 4
    mailbox_requests_per_10min: int = 10_000
    mailbox_upload_bytes_per_5min: int = 150 * 1024 * 1024
    sharepoint_units_per_minute: int = 1_200


@dataclass
class Config:
    """The admin knobs (POST /_emulator/config). Defaults: no latency, no faults, throttling off."""

    latency_ms: int = 0
    fault_rate: float = 0.0
    throttle: Throttle = field(default_factory=Throttle)
    token_lifetime_seconds: int = 3599
    delta_generations_kept: int = 5
    download_url_lifetime_seconds: int = 3600
    delta_duplicates: bool = False
    enforce_fragment_multiple: bool = False
    clock_offset_seconds: int = 0
    delta_replication_lag_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(self, attr) for name, (attr, *_) in _SETTINGS.items()}
        out["throttle"] = {name: getattr(self.throttle, attr) for name, (attr, *_) in _THROTTLE.items()}
        return out

    def update(self, data: dict[str, Any]) -> None:
        """Validate everything first, then apply: bad input changes nothing."""
        if not isinstance(data, dict):
            raise ValueError("config must be a JSON object")
        settings = {k: v for k, v in data.items() if k != "throttle"}
        values = _checked(settings, _SETTINGS, "")
        throttle = data.get("throttle", {})
        if not isinstance(throttle, dict):
            raise ValueError("throttle must be an object")
        throttle_values = _checked(throttle, _THROTTLE, "throttle.")
        for attr, value in values.items():
            setattr(self, attr, value)
        for attr, value in throttle_values.items():
            setattr(self.throttle, attr, value)


def _checked(
    data: dict[str, Any], table: dict[str, tuple[str, type, float, float]], prefix: str
) -> dict[str, Any]:
    unknown = set(data) - set(table)
    if unknown:
        raise ValueError(f"unknown settings: {sorted(prefix + u for u in unknown)}")
    out = {}
    for name, value in data.items():
        attr, kind, lo, hi = table[name]
        if kind is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{prefix}{name} must be true or false")
        elif isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
            raise ValueError(f"{prefix}{name} must be a number in [{lo}, {hi}]")
        out[attr] = kind(value)
    return out


@dataclass
class Settings:
    """What the CLI passes in; persisted in the state dir on first start."""

    state_dir: Path
    tenant: str = "contoso.onmicrosoft.com"
    client_id: str = ""
    client_secret: str = ""
    seed: int = 1
    scale: str = "small"
    mail_corpus: str | None = None  # a directory of raw RFC 822 messages (*.txt), e.g. SpamAssassin


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
        if self.settings.mail_corpus:
            self.tenant.load_corpus(Path(self.settings.mail_corpus))
        self.seed = self.settings.seed
        self.signer = TokenSigner(bytes.fromhex(self.store.meta_get("signing_key") or ""))
        self.delta = DeltaEngine(
            self.store,
            self.signer,
            lambda: self.config.delta_generations_kept,
            lambda: self.config.delta_duplicates,
            lambda: self.config.delta_replication_lag_seconds,
            self.now,
        )
        self.certificates: dict[str, Any] = {}

    def _persisted(self, s: Settings) -> Settings:
        """The first start fixes tenant, seed, scale and credentials; restarts keep them."""
        stored = self.store.meta_get("settings")
        if stored:
            data = json.loads(stored)
            if s.client_secret and s.client_secret != data["client_secret"]:
                data["client_secret"] = s.client_secret
                self.store.meta_set("settings", json.dumps(data))
            return Settings(state_dir=s.state_dir, **{"mail_corpus": None, **data})
        data = {
            "tenant": s.tenant,
            "client_id": s.client_id or ids.guid(s.seed, "app", s.tenant),
            "client_secret": s.client_secret or secrets.token_urlsafe(30),
            "seed": s.seed,
            "scale": s.scale,
            "mail_corpus": s.mail_corpus,
        }
        self.store.meta_set("settings", json.dumps(data))
        self.store.meta_set("signing_key", secrets.token_hex(32))
        return Settings(state_dir=s.state_dir, **data)

    def save_config(self) -> None:
        self.store.meta_set("config", json.dumps(self.config.to_json()))

    def now(self) -> float:
        """The emulator's time: the injected clock plus the admin offset (to age tokens without waiting)."""
        return self.clock() + self.config.clock_offset_seconds

    def now_iso(self) -> str:
        return iso(self.now())

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

    def delta_size(
        self, req: Req, options: dict[str, Any], default: int, *, prefer: bool
    ) -> tuple[int, bool]:
        """Page size of a delta page: `$top` of the first request is baked into the tokens (§3.1),
        `Prefer: odata.maxpagesize` counts on every request that sends it."""
        top = options.get("top")
        base = int(top) if isinstance(top, str) and top.isdigit() and int(top) > 0 else default
        return self.page_size(req, base, 1000, prefer=prefer)

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
