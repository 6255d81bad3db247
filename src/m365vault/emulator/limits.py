"""Throttling and fault injection (graph-protocol.md §6): real limiters, not random refusals.

Exchange: per (app, mailbox) in-flight requests over `mailboxConcurrency` → 429 ApplicationThrottled;
per (app, mailbox) requests in a sliding 10-minute window over `mailboxRequestsPer10Min` → 429
TooManyRequests. SharePoint/OneDrive: per app resource units (1 single GET or delta with token or
download, 2 listings, delta without token and writes) in a sliding minute over
`sharePointResourceUnitsPerMinute` → 503 with Retry-After, and RateLimit-* headers above 80 %.
Throttled requests count too, as on the real service.
"""

from __future__ import annotations

import math
import random
import threading
from collections import defaultdict, deque
from dataclasses import dataclass

from m365vault.emulator.errors import GraphError
from m365vault.emulator.http import Req
from m365vault.emulator.world import World

MAILBOX_SEGMENTS = {
    "messages",
    "mailfolders",
    "events",
    "calendar",
    "calendars",
    "calendarview",
    "contacts",
    "contactfolders",
    "mailboxsettings",
}


@dataclass
class Ticket:
    """What a request holds while in flight; released when its response is sent."""

    mailbox: tuple[str, str] | None = None
    headers: dict[str, str] | None = None


class Limiter:
    def __init__(self, world: World) -> None:
        self.w = world
        self._lock = threading.Lock()
        self._in_flight: dict[tuple[str, str], int] = defaultdict(int)
        self._window: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._units: dict[str, deque[tuple[float, int]]] = defaultdict(deque)
        self._uploads: dict[tuple[str, str], deque[tuple[float, int]]] = defaultdict(deque)
        self._faults = random.Random(world.seed)

    def classify(self, req: Req) -> tuple[str, str | None]:
        segs = [s.lower() for s in req.path.strip("/").split("/")]
        if len(segs) >= 3 and segs[0] == "users" and segs[2] in MAILBOX_SEGMENTS:
            user = self.w.tenant.user(req.path.strip("/").split("/")[1])
            return "mailbox", user.id if user else segs[1]
        if len(segs) >= 3 and segs[0] == "groups" and segs[2] in ("threads", "conversations"):
            return "mailbox", segs[1]  # a group mailbox is an Exchange mailbox with the same limits
        if segs[0] in ("drives", "sites") or (len(segs) >= 3 and segs[2] in ("drive", "drives")):
            return "sharepoint", None
        return "other", None

    @staticmethod
    def units(req: Req) -> int:
        """SharePoint resource units of a request (§6.3)."""
        last = req.path.rstrip("/").split("/")[-1].lower()
        if req.method != "GET":
            return 2
        if last == "delta":
            return 1 if ("token" in req.query and req.query["token"] != "latest") else 2
        if last in ("children", "items", "drives", "lists", "versions", "getallsites", "sites"):
            return 2
        return 1

    def acquire(self, req: Req, app: str, body_size: int = 0) -> Ticket:
        """Admit the request or raise the throttling error; counts throttled requests too."""
        t = self.w.config.throttle
        ticket = Ticket()
        if not t.enabled:
            return ticket
        kind, key = self.classify(req)
        now = self.w.now()
        with self._lock:
            if kind == "mailbox" and key:
                mk = (app, key)
                window = self._window[mk]
                while window and window[0] <= now - 600:
                    window.popleft()
                window.append(now)
                if self._in_flight[mk] >= t.mailbox_concurrency:
                    raise GraphError(
                        429,
                        "ApplicationThrottled",
                        "Application is over its MailboxConcurrency limit.",
                        headers={"Retry-After": "1"},
                        with_inner=False,
                    )
                if len(window) > t.mailbox_requests_per_10min:
                    wait = max(1, math.ceil(window[0] + 600 - now))
                    raise GraphError(
                        429,
                        "TooManyRequests",
                        "Please retry again later.",
                        headers={"Retry-After": str(wait)},
                        inner_code="429",
                    )
                if body_size and req.method in ("POST", "PATCH", "PUT"):
                    self._upload_budget(mk, now, body_size, t.mailbox_upload_bytes_per_5min)
                self._in_flight[mk] += 1
                ticket.mailbox = mk
            elif kind == "sharepoint":
                units = self._units[app]
                while units and units[0][0] <= now - 60:
                    units.popleft()
                cost = self.units(req)
                used = sum(u for _, u in units)
                units.append((now, cost))
                limit = t.sharepoint_units_per_minute
                if used + cost > limit:
                    wait = max(1, math.ceil(units[0][0] + 60 - now))
                    raise GraphError(
                        503,
                        "serviceNotAvailable",
                        "The request has been throttled.",
                        headers={"Retry-After": str(wait)},
                        inner_code="throttledRequest",
                    )
                if used + cost >= 0.8 * limit:
                    reset = max(1, math.ceil(units[0][0] + 60 - now))
                    ticket.headers = {
                        "RateLimit-Limit": str(limit),
                        "RateLimit-Remaining": str(limit - used - cost),
                        "RateLimit-Reset": str(reset),
                    }
        return ticket

    def _upload_budget(self, mk: tuple[str, str], now: float, size: int, limit: int) -> None:
        """150 MB of request bodies per 5 minutes per (app, mailbox) (§6.2)."""
        uploads = self._uploads[mk]
        while uploads and uploads[0][0] <= now - 300:
            uploads.popleft()
        used = sum(n for _, n in uploads)
        uploads.append((now, size))
        if used + size > limit:
            wait = max(1, math.ceil(uploads[0][0] + 300 - now))
            raise GraphError(
                429,
                "TooManyRequests",
                "The mailbox upload limit of this application was exceeded; please retry later.",
                headers={"Retry-After": str(wait)},
                inner_code="429",
            )

    def release(self, ticket: Ticket) -> None:
        if ticket.mailbox:
            with self._lock:
                self._in_flight[ticket.mailbox] -= 1

    def fault(self) -> str | None:
        """None, "500", "503" or "drop", drawn from the seeded fault sequence."""
        rate = self.w.config.fault_rate
        if rate <= 0:
            return None
        with self._lock:
            if self._faults.random() >= rate:
                return None
            return self._faults.choice(["500", "503", "drop"])
