"""Generated items: messages (with real RFC 822 MIME), events, contacts and list items.

Each item is a pure function of (seed, collection, index). Item states are plain JSON-able dicts;
keys starting with "_" are internal (content references) and never rendered.
"""

from __future__ import annotations

import email
import email.policy
import functools
import hashlib
import random
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, make_msgid, parsedate_to_datetime
from pathlib import Path
from typing import Any

from m365vault.emulator import content
from m365vault.emulator.tenant import BASE_TIME, Tenant, User

WORDS = [
    "budget",
    "review",
    "quarterly",
    "forecast",
    "meeting",
    "agenda",
    "contract",
    "renewal",
    "proposal",
    "invoice",
    "shipment",
    "customer",
    "onboarding",
    "roadmap",
    "release",
    "migration",
    "security",
    "audit",
    "training",
    "workshop",
    "travel",
    "expense",
    "approval",
    "deadline",
    "schedule",
    "update",
    "draft",
    "final",
    "minutes",
    "summary",
    "feedback",
    "design",
    "prototype",
    "launch",
    "campaign",
    "partner",
    "vendor",
    "license",
    "renewal",
    "compliance",
    "policy",
    "report",
    "analysis",
    "metrics",
    "pipeline",
    "hiring",
    "interview",
    "offer",
    "benefits",
    "holiday",
    "office",
    "move",
    "network",
    "outage",
    "maintenance",
    "backup",
]
EXTERNAL = [
    "news@northwind.example",
    "billing@fabrikam.example",
    "noreply@adatum.example",
    "team@litware.example",
    "support@tailspin.example",
    "events@wingtip.example",
]
SHARED_ATTACHMENTS = [  # the same files circulate between mailboxes, as in real tenants
    ("Company Handbook 2026.pdf", "application/pdf", 412_000),
    ("Q4 Results.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", 96_000),
    (
        "All-hands slides.pptx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        1_250_000,
    ),
    ("Travel policy.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", 58_000),
    ("logo.png", "image/png", 14_500),
    ("Org chart.pdf", "application/pdf", 233_000),
]


def _rng(seed: int, *parts: object) -> random.Random:
    return random.Random(":".join(str(p) for p in (seed, *parts)))


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choices(WORDS, k=n))


def _addr(user: User) -> dict[str, str]:
    return {"name": user.display_name, "address": user.mail or user.upn}


def _digest(*parts: object) -> str:
    return hashlib.sha1(":".join(map(str, parts)).encode()).hexdigest()[:24]


def change_key(*parts: object) -> str:
    return "CQAAABYAAA" + hashlib.sha1(":".join(map(str, parts)).encode()).hexdigest()[:22]


@functools.lru_cache(maxsize=8192)  # a delta page, then each message's $value: generate once
def message(tenant: Tenant, user: User, folder: int, folder_id: str, index: int) -> dict[str, Any]:
    """A generated message state. Cached: callers copy before changing it (states are never mutated)."""
    seed = tenant.seed
    rng = _rng(seed, "msg", user.index, folder, index)
    mailboxes = tenant.mailboxes
    other = rng.choice(mailboxes)
    sent_folder = folder in (2, 3, 7)
    sender = (
        _addr(user)
        if sent_folder
        else (_addr(other) if rng.random() < 0.6 else {"name": "", "address": rng.choice(EXTERNAL)})
    )
    to = [_addr(other) if sent_folder else _addr(user)]
    cc = [_addr(rng.choice(mailboxes))] if rng.random() < 0.3 else []
    received = BASE_TIME - (index + 1) * 3600 * rng.uniform(2, 30) - folder * 7919
    body_kind = rng.choice(["text", "html", "alternative", "alternative"])
    paragraph_count = rng.randint(1, 6)
    attachments: list[dict[str, Any]] = []
    if rng.random() < 0.18:
        for a in range(rng.randint(1, 2)):
            if rng.random() < 0.5:
                k = rng.randrange(len(SHARED_ATTACHMENTS))
                name, ctype, size = SHARED_ATTACHMENTS[k]
                key = f"shared-attachment:{k}"
            else:
                name = f"{rng.choice(WORDS)}-{index}-{a}.pdf"
                ctype, size, key = (
                    "application/pdf",
                    rng.randint(3_000, 300_000),
                    f"att:{user.index}:{folder}:{index}:{a}",
                )
            attachments.append(
                {
                    "name": name,
                    "contentType": ctype,
                    "size": size,
                    "isInline": False,
                    "contentId": None,
                    "_content": {"gen": key, "size": size},
                }
            )
    subject = sentence(rng, rng.randint(2, 7)).capitalize()
    if rng.random() < 0.25:
        subject = "RE: " + subject
    is_draft = folder == 2
    state: dict[str, Any] = {
        "subject": subject,
        "from": sender,
        "sender": sender,
        "toRecipients": to,
        "ccRecipients": cc,
        "bccRecipients": [],
        "replyTo": [],
        "receivedDateTime": received,
        "sentDateTime": received - 42,
        "createdDateTime": received,
        "lastModifiedDateTime": received,
        "isRead": rng.random() < 0.7,
        "isDraft": is_draft,
        "importance": rng.choice(["normal"] * 8 + ["high", "low"]),
        "categories": ["Blue category"] if rng.random() < 0.1 else [],
        "flag": {"flagStatus": "flagged" if rng.random() < 0.05 else "notFlagged"},
        "_bodyKind": body_kind,
        "_paragraphs": {"key": f"{seed}:{user.index}:{folder}:{index}", "n": paragraph_count},
        "internetMessageId": f"<{_digest(seed, user.index, folder, index)}@{tenant.domain}>",
        "conversationId": "AAQk" + hashlib.sha1(subject.removeprefix("RE: ").encode()).hexdigest()[:32],
        "attachments": attachments,
        "parentFolderId": folder_id,
        "changeKey": change_key(seed, user.index, folder, index, 0),
    }
    if tenant.corpus and not sent_folder and rng.random() < CORPUS_SHARE:
        path = tenant.corpus[int(_digest(seed, "corpus", user.index, folder, index), 16) % len(tenant.corpus)]
        real = corpus_fields(str(path))
        if real is not None:
            state = {k: v for k, v in state.items() if k not in ("_paragraphs", "_bodyKind")}
            state.update(real)
            state["receivedDateTime"] = received  # keep the folder's time order
            state["createdDateTime"] = state["lastModifiedDateTime"] = received
    return state


CORPUS_SHARE = 0.4  # share of received mail taken from the corpus when one is configured


def corpus_bytes(path: str) -> bytes:
    """The raw message without the mbox "From " separator line."""
    raw = Path(path).read_bytes()
    if raw.startswith(b"From "):
        raw = raw.split(b"\n", 1)[1] if b"\n" in raw else b""
    return raw


@functools.lru_cache(maxsize=4096)
def _corpus_parsed(path: str) -> dict[str, Any] | None:
    try:
        msg = email.message_from_bytes(corpus_bytes(path), policy=email.policy.default)
        frm = [{"name": n, "address": a} for n, a in getaddresses([str(v) for v in msg.get_all("From", [])])]
        try:
            sent = parsedate_to_datetime(str(msg["Date"])).timestamp() if msg["Date"] else BASE_TIME
        except (TypeError, ValueError):
            sent = BASE_TIME
        part = msg.get_body(preferencelist=("html", "plain"))
        body = {"contentType": "text", "content": ""}
        if part is not None:
            kind = "html" if part.get_content_type() == "text/html" else "text"
            body = {"contentType": kind, "content": str(part.get_content())}
        attachments = []
        for k, att in enumerate(msg.iter_attachments()):
            data = att.get_payload(decode=True)
            attachments.append(
                {
                    "name": att.get_filename() or f"attachment{k}",
                    "contentType": att.get_content_type(),
                    "size": len(data) if isinstance(data, bytes) else 0,
                    "isInline": False,
                    "contentId": None,
                    "_content": {"corpus": path, "part": k},
                }
            )
        return {
            "subject": str(msg["Subject"] or ""),
            "from": (frm or [{"name": "", "address": ""}])[0],
            "sender": (frm or [{"name": "", "address": ""}])[0],
            "toRecipients": [
                {"name": n, "address": a} for n, a in getaddresses([str(v) for v in msg.get_all("To", [])])
            ],
            "ccRecipients": [
                {"name": n, "address": a} for n, a in getaddresses([str(v) for v in msg.get_all("Cc", [])])
            ],
            "sentDateTime": sent,
            "internetMessageId": str(msg["Message-ID"] or "").strip() or None,
            "body": body,
            "attachments": attachments,
            "_corpus": path,
        }
    except Exception:  # a malformed real message: fall back to a generated one
        return None


def corpus_fields(path: str) -> dict[str, Any] | None:
    parsed = _corpus_parsed(path)
    return None if parsed is None else {**parsed, "attachments": [dict(a) for a in parsed["attachments"]]}


def corpus_attachment(path: str, part: int) -> bytes:
    msg = email.message_from_bytes(corpus_bytes(path), policy=email.policy.default)
    data = list(msg.iter_attachments())[part].get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def paragraphs(state: dict[str, Any]) -> list[str]:
    """The body text of a generated message, made only when asked for (delta pages rarely need it)."""
    spec = state["_paragraphs"]
    rng = random.Random(f"body:{spec['key']}")
    return [sentence(rng, rng.randint(8, 40)).capitalize() + "." for _ in range(int(spec["n"]))]


def body_of(state: dict[str, Any]) -> tuple[str, str]:
    """(contentType, content) of a message's body in Graph terms."""
    if "_paragraphs" not in state:
        body = state.get("body") or {"contentType": "text", "content": ""}
        return str(body.get("contentType", "text")).lower(), str(body.get("content", ""))
    paras = paragraphs(state)
    if state["_bodyKind"] == "text":
        return "text", "\r\n\r\n".join(paras)
    return "html", "<html><body>" + "".join(f"<p>{p}</p>" for p in paras) + "</body></html>"


def _fmt(addr: dict[str, Any]) -> str:
    name, address = addr.get("name") or "", addr.get("address") or ""
    return f'"{name}" <{address}>' if name else address


def build_mime(seed: int, state: dict[str, Any], attachment_bytes: list[bytes]) -> bytes:
    """RFC 822 bytes for a message state, built with the stdlib email package."""
    msg = EmailMessage()
    msg["Received"] = (
        "from mail.protection.outlook.com (10.0.0.1) by emulator.outlook.com; "
        + format_datetime(datetime.fromtimestamp(state["receivedDateTime"], UTC))
    )
    msg["From"] = _fmt(state["from"])
    if state.get("toRecipients"):
        msg["To"] = ", ".join(_fmt(r.get("emailAddress", r)) for r in state["toRecipients"])
    if state.get("ccRecipients"):
        msg["Cc"] = ", ".join(_fmt(r.get("emailAddress", r)) for r in state["ccRecipients"])
    msg["Subject"] = state.get("subject", "")
    msg["Date"] = format_datetime(datetime.fromtimestamp(state["sentDateTime"], UTC))
    msg["Message-ID"] = state.get("internetMessageId") or make_msgid()
    msg["X-MS-Exchange-Organization-AuthAs"] = "Internal"
    if state.get("importance") == "high":
        msg["Importance"] = "high"
    kind, text = body_of(state)
    if state.get("_bodyKind") == "alternative":
        msg.set_content("\r\n\r\n".join(paragraphs(state)))
        msg.add_alternative(text, subtype="html")
    elif kind == "html":
        msg.set_content(text, subtype="html")
    else:
        msg.set_content(text)
    for att, data in zip(state.get("attachments", []), attachment_bytes, strict=True):
        maintype, _, subtype = str(att["contentType"]).partition("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype or "octet-stream", filename=att["name"])
    # Fixed boundaries: the same message must serialise to the same bytes every time.
    tag = hashlib.sha1(str(msg["Message-ID"]).encode()).hexdigest()[:16]
    for depth, part in enumerate(p for p in msg.walk() if p.is_multipart()):
        part.set_boundary(f"_{depth:03d}_{tag}_")
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


def event(tenant: Tenant, user: User, index: int) -> dict[str, Any]:
    rng = _rng(tenant.seed, "event", user.index, index)
    start = BASE_TIME + rng.randint(-120, 120) * 86400 + rng.randint(8, 17) * 3600
    minutes = rng.choice([30, 30, 60, 60, 90, 120])
    attendees = [u for u in rng.sample(tenant.users, min(3, len(tenant.users))) if u.has_mailbox]
    return {
        "subject": sentence(rng, rng.randint(2, 5)).capitalize(),
        "body": {"contentType": "html", "content": f"<p>{sentence(rng, 20)}</p>"},
        "start": start,
        "end": start + minutes * 60,
        "isAllDay": False,
        "location": {"displayName": rng.choice(["Room 1", "Teams", "Cafeteria", "Board room"])},
        "organizer": {"emailAddress": _addr(user)},
        "attendees": [
            {
                "type": "required",
                "status": {"response": "none", "time": "0001-01-01T00:00:00Z"},
                "emailAddress": _addr(a),
            }
            for a in attendees
        ],
        "createdDateTime": start - 30 * 86400,
        "lastModifiedDateTime": start - 29 * 86400,
        "changeKey": change_key(tenant.seed, "ev", user.index, index, 0),
        "showAs": "busy",
        "importance": "normal",
        "sensitivity": "normal",
        "type": "singleInstance",
    }


def contact(tenant: Tenant, user: User, index: int) -> dict[str, Any]:
    rng = _rng(tenant.seed, "contact", user.index, index)
    first, last = (
        rng.choice(["Ana", "Ben", "Chloe", "Dev", "Eva", "Finn", "Gia", "Hugo"]),
        rng.choice(["Stone", "Rivers", "Hale", "Marsh", "Frost", "Lane"]),
    )
    domain = rng.choice(EXTERNAL).split("@")[1]
    return {
        "givenName": first,
        "surname": last,
        "displayName": f"{first} {last}",
        "emailAddresses": [{"name": f"{first} {last}", "address": f"{first}.{last}@{domain}".lower()}],
        "businessPhones": [f"+1 555 {rng.randint(1000, 9999)}"],
        "companyName": domain.split(".")[0].title(),
        "jobTitle": rng.choice(["Buyer", "CTO", "Account manager", "Counsel"]),
        "createdDateTime": BASE_TIME - rng.randint(10, 900) * 86400,
        "lastModifiedDateTime": BASE_TIME - rng.randint(1, 9) * 86400,
        "changeKey": change_key(tenant.seed, "ct", user.index, index, 0),
    }


def list_item(tenant: Tenant, site_index: int, index: int) -> dict[str, Any]:
    rng = _rng(tenant.seed, "listitem", site_index, index)
    created = BASE_TIME - rng.randint(5, 300) * 86400
    return {
        "fields": {
            "Title": sentence(rng, rng.randint(2, 6)).capitalize(),
            "Status": rng.choice(["Not started", "In progress", "Completed"]),
            "Priority": rng.choice(["(1) High", "(2) Normal", "(3) Low"]),
            "PercentComplete": rng.choice([0, 0.25, 0.5, 1.0]),
        },
        "createdDateTime": created,
        "lastModifiedDateTime": created + rng.randint(0, 30) * 86400,
        "version": 1,
    }


def content_bytes(seed: int, ref: dict[str, Any]) -> bytes:
    """Bytes of a generated or corpus content reference (blob references are read by the store)."""
    if "corpus" in ref:
        return corpus_attachment(str(ref["corpus"]), int(ref["part"]))
    return content.read_all(seed, str(ref["gen"]), int(ref["size"]))
