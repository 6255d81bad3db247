"""Simulated user activity (admin API): mail arrives, is read, moved and deleted; files appear, are
edited and deleted. Every action is a Graph request sent through the emulator's own router, so the
change journals see exactly what a Graph client's writes would produce. Deterministic per seed.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable
from typing import Any

from m365vault.emulator import archive, content, generate, ids
from m365vault.emulator.http import Req, Resp
from m365vault.emulator.tenant import MAIL_FOLDERS, User
from m365vault.emulator.world import World

KEYS = (
    "newMessages",
    "deletedMessages",
    "movedMessages",
    "updatedMessages",
    "newFiles",
    "editedFiles",
    "deletedFiles",
    "newGroupPosts",
    "newGroupThreads",
    "newArchiveItems",
    "deletedArchiveItems",
)
MAX_ACTIONS = 10_000
POST_ATTACHMENT_SHARE = 0.3  # new group posts that carry a file


def parse_request(data: Any) -> tuple[int, dict[str, int]]:
    if not isinstance(data, dict):
        raise ValueError("body must be a JSON object")
    unknown = set(data) - {"seed", *KEYS}
    if unknown:
        raise ValueError(f"unknown fields: {sorted(unknown)}")
    counts = {}
    for key in KEYS:
        value = data.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ACTIONS:
            raise ValueError(f"{key} must be an integer in [0, {MAX_ACTIONS}]")
        counts[key] = value
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError("seed must be an integer")
    return seed, counts


class Activity:
    def __init__(
        self, world: World, dispatch: Callable[[Req], Resp], base_url: str, archives: archive.Archives
    ) -> None:
        self.w = world
        self.dispatch = dispatch
        self.base_url = base_url
        self.archives = archives

    def _call(
        self, method: str, path: str, body: Any = None, *, ctype: str = "application/json", prefer: str = ""
    ) -> Resp:
        raw = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else b"")
        headers = {"content-type": ctype}
        if prefer:
            headers["prefer"] = prefer
        req = Req(
            method,
            "/" + path.lstrip("/"),
            {},
            headers,
            raw,
            self.base_url,
            "activity",
            app_id=self.w.settings.client_id,
        )
        return self.dispatch(req)

    def run(self, seed: int, counts: dict[str, int]) -> dict[str, Any]:
        rng = random.Random(f"activity:{self.w.seed}:{seed}")
        mailboxes = [u for u in self.w.tenant.users if u.has_mailbox]
        out: dict[str, Any] = {k: [] for k in KEYS}
        for _ in range(counts["newMessages"]):
            user = rng.choice(mailboxes)
            resp = self._call("POST", f"users/{user.id}/mailFolders/inbox/messages", self._message(rng, user))
            out["newMessages"].append({"user": user.id, "id": _id(resp)})
        for key, action in (
            ("updatedMessages", "update"),
            ("movedMessages", "move"),
            ("deletedMessages", "delete"),
        ):
            for _ in range(counts[key]):
                done = self._mail_action(rng, mailboxes, action)
                if done:
                    out[key].append(done)
        drives = list(self.w.tenant.drives)
        for n in range(counts["newFiles"]):
            drive = rng.choice(drives)
            ext = rng.choice(["docx", "txt", "pdf", "xlsx"])
            name = f"Activity {seed}-{n} {rng.choice(generate.WORDS)}.{ext}"
            data = content.read_all(self.w.seed, f"activity:{seed}:{n}", rng.randint(1_000, 400_000))
            resp = self._call(
                "PUT",
                f"drives/{drive.id}/root:/Activity/{name}:/content",
                data,
                ctype="application/octet-stream",
            )
            out["newFiles"].append({"drive": drive.id, "id": _id(resp), "name": name})
        for key in ("editedFiles", "deletedFiles"):
            for n in range(counts[key]):
                done = self._file_action(rng, drives, key, seed, n)
                if done:
                    out[key].append(done)
        self._group_activity(rng, counts, out)
        self._archive_activity(rng, counts, out)
        return out

    def _archive_activity(self, rng: random.Random, counts: dict[str, int], out: dict[str, Any]) -> None:
        """Mail lands in archives (as retention policies move it there) and is deleted from them.
        Nothing in Graph creates an archive item except an import, so new items are written directly;
        deletions go through the beta mailbox API like a client's."""
        owners = [u for u in self.w.tenant.users if archive.has_archive(u)]
        if not owners:
            return
        for _ in range(counts["newArchiveItems"]):
            user = rng.choice(owners)
            number = rng.randrange(len(archive.FOLDERS))
            sent = self.w.now() - rng.randint(400, 800) * 86400
            message = self._message(rng, user)
            state = {
                "type": "IPM.Note",
                "subject": message["subject"],
                "from": message["from"]["emailAddress"],
                "sender": message["from"]["emailAddress"],
                "toRecipients": [r["emailAddress"] for r in message["toRecipients"]],
                "body": message["body"],
                "receivedDateTime": sent,
                "sentDateTime": sent,
                "createdDateTime": sent,
                "attachments": [],
                "internetMessageId": f"<archive-{seed_of(rng)}@{self.w.tenant.domain}>",
            }
            item_id = self.archives.add_item(user, number, state)
            out["newArchiveItems"].append({"user": user.id, "id": item_id})
        for _ in range(counts["deletedArchiveItems"]):
            done = self._delete_archive_item(rng, owners)
            if done:
                out["deletedArchiveItems"].append(done)

    def _delete_archive_item(self, rng: random.Random, owners: list[User]) -> dict[str, Any] | None:
        for _ in range(50):
            user = rng.choice(owners)
            box = self.archives.mailbox_id(user, "archive")
            number = rng.choice([n for n, f in enumerate(archive.FOLDERS) if not f[3]])  # not expanded
            fid = self.archives.folder_id(user, number)
            listing = self._call(
                "GET",
                f"beta/admin/exchange/mailboxes/{box}/folders/{fid}/items/delta",
                prefer="odata.maxpagesize=50",
            )
            values = listing.body.get("value", []) if isinstance(listing.body, dict) else []
            live = [v for v in values if "@removed" not in v]
            if live:
                item_id = rng.choice(live)["id"]
                self._call("DELETE", f"beta/admin/exchange/mailboxes/{box}/folders/{fid}/items/{item_id}")
                return {"user": user.id, "id": item_id}
        return None

    def _post(self, rng: random.Random) -> dict[str, Any]:
        sender = rng.choice([u for u in self.w.tenant.users if u.has_mailbox])
        post: dict[str, Any] = {
            "body": {"contentType": "html", "content": f"<p>{generate.sentence(rng, 25).capitalize()}.</p>"},
            "from": {"emailAddress": {"name": sender.display_name, "address": sender.mail or sender.upn}},
        }
        if rng.random() < POST_ATTACHMENT_SHARE:  # a shared file, as people post the same deck to many groups
            k = rng.randrange(len(generate.SHARED_ATTACHMENTS))
            name, ctype, size = generate.SHARED_ATTACHMENTS[k]
            data = content.read_all(self.w.seed, f"shared-attachment:{k}", size)
            post["attachments"] = [
                {
                    "@odata.type": "#microsoft.graph.fileAttachment",
                    "name": name,
                    "contentType": ctype,
                    "contentBytes": base64.b64encode(data).decode(),
                }
            ]
        return post

    def _group_activity(self, rng: random.Random, counts: dict[str, int], out: dict[str, Any]) -> None:
        """Replies to existing group threads, then new threads (each one post), in random groups."""
        groups = self.w.tenant.groups
        for _ in range(counts["newGroupPosts"]):
            group = rng.choice(groups)
            listing = self._call("GET", f"groups/{group.id}/threads")
            threads = listing.body.get("value", []) if isinstance(listing.body, dict) else []
            if not threads:
                continue
            thread = rng.choice(threads)["id"]
            self._call("POST", f"groups/{group.id}/threads/{thread}/reply", {"post": self._post(rng)})
            out["newGroupPosts"].append({"group": group.id, "thread": thread})
        for _ in range(counts["newGroupThreads"]):
            group = rng.choice(groups)
            topic = generate.sentence(rng, 4).capitalize()
            resp = self._call(
                "POST", f"groups/{group.id}/threads", {"topic": topic, "posts": [self._post(rng)]}
            )
            out["newGroupThreads"].append({"group": group.id, "thread": _id(resp)})

    def _message(self, rng: random.Random, user: User) -> dict[str, Any]:
        sender = rng.choice(self.w.tenant.users)
        now = self.w.now_iso()
        return {
            "subject": generate.sentence(rng, 5).capitalize(),
            "body": {"contentType": "html", "content": f"<p>{generate.sentence(rng, 30)}.</p>"},
            "from": {"emailAddress": {"name": sender.display_name, "address": sender.mail or sender.upn}},
            "toRecipients": [{"emailAddress": {"name": user.display_name, "address": user.mail}}],
            "isRead": False,
            "singleValueExtendedProperties": [
                {"id": "Integer 0x0E07", "value": "1"},
                {"id": "SystemTime 0x0039", "value": now},
                {"id": "SystemTime 0x0E06", "value": now},
            ],
        }

    def _pick_message(self, rng: random.Random, mailboxes: list[User]) -> tuple[User, str] | None:
        for _ in range(50):  # retry: the picked message may already be gone
            user = rng.choice(mailboxes)
            folder = rng.choice(
                [f for f in MAIL_FOLDERS if self.w.tenant.folder_message_count(user, f.number)]
            )
            resp = self._call(
                "GET",
                f"users/{user.id}/mailFolders/{self._fid(user, folder.number)}/messages",
                prefer="odata.maxpagesize=50",
            )
            values = resp.body.get("value", []) if isinstance(resp.body, dict) else []
            if values:
                return user, rng.choice(values)["id"]
        return None

    def _fid(self, user: User, number: int) -> str:
        return ids.make(self.w.seed, "AQMk", 2, user.index, number)

    def _mail_action(self, rng: random.Random, mailboxes: list[User], action: str) -> dict[str, Any] | None:
        picked = self._pick_message(rng, mailboxes)
        if picked is None:
            return None
        user, mid = picked
        if action == "update":
            self._call(
                "PATCH",
                f"users/{user.id}/messages/{mid}",
                {"isRead": True, "flag": {"flagStatus": "flagged"}},
            )
            return {"user": user.id, "id": mid}
        if action == "delete":
            self._call("DELETE", f"users/{user.id}/messages/{mid}")
            return {"user": user.id, "id": mid}
        dest = rng.choice(["archive", "deleteditems", self._fid(user, 11)])
        resp = self._call(
            "POST",
            f"users/{user.id}/messages/{mid}/move",
            {"destinationId": dest},
            prefer='IdType="ImmutableId"',
        )
        return {"user": user.id, "id": mid, "newId": _id(resp), "destination": dest}

    def _file_action(
        self, rng: random.Random, drives: list[Any], key: str, seed: int, n: int
    ) -> dict[str, Any] | None:
        for _ in range(50):
            drive = rng.choice(drives)
            resp = self._call("GET", f"drives/{drive.id}/root/children")
            files = (
                [v for v in (resp.body or {}).get("value", []) if "file" in v]
                if isinstance(resp.body, dict)
                else []
            )
            folders = (
                [v for v in (resp.body or {}).get("value", []) if "folder" in v]
                if isinstance(resp.body, dict)
                else []
            )
            if not files and folders:
                sub = self._call("GET", f"drives/{drive.id}/items/{rng.choice(folders)['id']}/children")
                files = (
                    [v for v in sub.body.get("value", []) if "file" in v]
                    if isinstance(sub.body, dict)
                    else []
                )
            if not files:
                continue
            item = rng.choice(files)
            if key == "deletedFiles":
                self._call("DELETE", f"drives/{drive.id}/items/{item['id']}")
                return {"drive": drive.id, "id": item["id"]}
            size = max(1, int(item["size"] * rng.uniform(0.9, 1.2))) if item["size"] < 4_000_000 else 200_000
            data = content.read_all(self.w.seed, f"edit:{seed}:{n}:{item['id']}", size)
            self._call(
                "PUT", f"drives/{drive.id}/items/{item['id']}/content", data, ctype="application/octet-stream"
            )
            return {"drive": drive.id, "id": item["id"]}
        return None


def seed_of(rng: random.Random) -> str:
    return f"{rng.getrandbits(48):012x}"


def _id(resp: Resp) -> str | None:
    if isinstance(resp.body, dict):
        value = resp.body.get("id")
        return str(value) if value is not None else None
    return None
