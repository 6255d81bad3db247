"""Group mailboxes: the conversations, threads and posts of Microsoft 365 (Unified) groups.

Graph exposes a group mailbox only as conversations (`/groups/{id}/conversations`), each holding
threads (`/threads`) that hold posts (`/threads/{id}/posts`); there is no delta. The emulator gives
each conversation one thread. Base threads are generated from (seed, group, index); a thread that was
written to (a reply, a new thread, a delete) lives in the store, whole, under collection `gt:{group}`,
with its posts inside its state. Listings are newest first (by lastDeliveredDateTime), as Graph's.

Posts carry file attachments: about one generated post in five has one or two (half of them the
tenant's shared files, the same bytes as in mail; one in ten of those posts also has a large file,
3-6 MB). A post keeps them in `_attachments` (never served as is); the wire shows `hasAttachments`,
`$expand=attachments` on posts, the `/attachments` collection (with `contentBytes`, unless `$select`
leaves it out) and each attachment's raw bytes at `/$value`. Replies and new threads may carry
fileAttachments with `contentBytes`. `attachment_reads` counts the requests that read attachments
(admin stats), so tests can see that an unchanged thread's attachments were not read again.
"""

from __future__ import annotations

import base64
import binascii
import random
from collections.abc import Callable, Iterator
from typing import Any

from m365vault.emulator import generate, ids
from m365vault.emulator.clock import iso, parse_iso
from m365vault.emulator.errors import GraphError
from m365vault.emulator.http import Req, Resp, Router
from m365vault.emulator.tenant import BASE_TIME, Group, Tenant
from m365vault.emulator.tokens import InvalidToken
from m365vault.emulator.world import World

THREAD_PREFIX = "AAQk"
POST_PREFIX = "AAMk"
THREAD, CONVERSATION, POST, ATTACHMENT = 7, 8, 9, 22  # id kind bytes
NEW_THREADS_FROM = 1_000_000  # thread numbers of created threads start here, above any base index
DEFAULT_PAGE, MAX_PAGE = 10, 100
ATTACHMENT_SHARE, LARGE_SHARE = 0.2, 0.1  # posts with attachments; of those, posts with a large file
MAX_POST_BYTES = 4 * 1024 * 1024  # Graph's request size limit, which caps attachments sent inline


def collection(group: Group) -> str:
    return f"gt:{group.id}"


def thread_count(tenant: Tenant, group: Group) -> int:
    rng = random.Random(f"{tenant.seed}:threads:{group.index}")
    return max(1, int(tenant.spec.threads_per_group * rng.uniform(0.5, 1.5)))


def thread_id(seed: int, group: Group, number: int) -> str:
    return ids.make(seed, THREAD_PREFIX, THREAD, group.index, number)


def _sender(user: Any) -> dict[str, Any]:
    return {"emailAddress": {"name": user.display_name, "address": user.mail or user.upn}}


def attachment_id(seed: int, group: Group, number: int, index: int, position: int) -> str:
    return ids.make(seed, POST_PREFIX, ATTACHMENT, group.index, number, index, position)


def _attachment(name: str, ctype: str, size: int, ref: dict[str, Any], when: str) -> dict[str, Any]:
    return {
        "name": name,
        "contentType": ctype,
        "size": size,
        "isInline": False,
        "lastModifiedDateTime": when,
        "_content": ref,
    }


def base_attachments(seed: int, group: Group, number: int, index: int, when: str) -> list[dict[str, Any]]:
    """The generated attachments of a base post (their own random stream, so adding them left the
    threads' topics, posts and senders as they were)."""
    rng = random.Random(f"{seed}:post-attachments:{group.index}:{number}:{index}")
    if rng.random() >= ATTACHMENT_SHARE:
        return []
    out = []
    for a in range(rng.randint(1, 2)):
        if rng.random() < 0.5:
            k = rng.randrange(len(generate.SHARED_ATTACHMENTS))
            name, ctype, size = generate.SHARED_ATTACHMENTS[k]
            key = f"shared-attachment:{k}"  # the same bytes as the shared mail attachments
        else:
            name = f"{rng.choice(generate.WORDS)}-{number}-{index}-{a}.pdf"
            ctype, size = "application/pdf", rng.randint(3_000, 300_000)
            key = f"post-attachment:{group.index}:{number}:{index}:{a}"
        out.append(_attachment(name, ctype, size, {"gen": key, "size": size}, when))
    if rng.random() < LARGE_SHARE:
        size = rng.randint(3_000_000, 6_000_000)
        key = f"post-attachment:{group.index}:{number}:{index}:large"
        out.append(
            _attachment(
                f"recording-{number}-{index}.mp4", "video/mp4", size, {"gen": key, "size": size}, when
            )
        )
    return out


def post_json(
    seed: int,
    group: Group,
    number: int,
    index: int,
    sender: dict[str, Any],
    html: str,
    at: float,
    attachments: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A post's stored form: its Graph JSON plus `_attachments` (see `post_wire`)."""
    when = iso(at)
    if attachments is None:
        attachments = base_attachments(seed, group, number, index, when)
    return {
        "id": ids.make(seed, POST_PREFIX, POST, group.index, number, index),
        "createdDateTime": when,
        "lastModifiedDateTime": when,
        "receivedDateTime": when,
        "changeKey": generate.change_key("post", seed, group.index, number, index),
        "categories": [],
        "hasAttachments": bool(attachments),
        "body": {"contentType": "html", "content": html},
        "from": sender,
        "sender": sender,
        "conversationThreadId": thread_id(seed, group, number),
        "conversationId": ids.make(seed, THREAD_PREFIX, CONVERSATION, group.index, number),
        "newParticipants": [],
        "_attachments": [
            {**att, "id": attachment_id(seed, group, number, index, position)}
            for position, att in enumerate(attachments)
        ],
    }


def post_wire(post: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in post.items() if k != "_attachments"}


def attachment_wire(att: dict[str, Any], data: bytes | None) -> dict[str, Any]:
    """An attachment as Graph shows it; `data` given, with its base64 `contentBytes`."""
    out = {"@odata.type": "#microsoft.graph.fileAttachment", "id": att["id"]}
    out.update({k: v for k, v in att.items() if not k.startswith("_") and k != "id"})
    out["contentId"] = None
    if data is not None:
        out["contentBytes"] = base64.b64encode(data).decode()
    return out


def base_thread(tenant: Tenant, group: Group, number: int) -> dict[str, Any]:
    """The stored form of a generated thread: its topic and posts (oldest first)."""
    rng = random.Random(f"{tenant.seed}:thread:{group.index}:{number}")
    senders = [u for u in tenant.users if u.has_mailbox] or tenant.users
    start = BASE_TIME - rng.uniform(5, 300) * 86400
    posts = []
    for index in range(rng.randint(1, 4)):
        at = start + index * rng.uniform(600, 86400)
        html = f"<p>{generate.sentence(rng, rng.randint(12, 60)).capitalize()}.</p>"
        posts.append(post_json(tenant.seed, group, number, index, _sender(rng.choice(senders)), html, at))
    return {"number": number, "topic": generate.sentence(rng, 4).capitalize(), "posts": posts}


def thread_json(seed: int, group: Group, domain: str, state: dict[str, Any]) -> dict[str, Any]:
    posts = state["posts"]
    last = posts[-1]
    senders: list[str] = []
    for post in posts:
        name = post["from"]["emailAddress"]["name"]
        if name not in senders:
            senders.append(name)
    text = last["body"]["content"].removeprefix("<p>").removesuffix("</p>")
    address = {"emailAddress": {"name": group.display_name, "address": f"{group.mail_nickname}@{domain}"}}
    return {
        "id": thread_id(seed, group, state["number"]),
        "topic": state["topic"],
        "hasAttachments": any(p["hasAttachments"] for p in posts),
        "lastDeliveredDateTime": last["receivedDateTime"],
        "uniqueSenders": senders,
        "toRecipients": [address],
        "ccRecipients": [],
        "preview": text[:255],
        "isLocked": False,
    }


def conversation_json(thread: dict[str, Any], seed: int, group: Group, number: int) -> dict[str, Any]:
    return {
        "id": ids.make(seed, THREAD_PREFIX, CONVERSATION, group.index, number),
        **{k: thread[k] for k in ("topic", "hasAttachments", "lastDeliveredDateTime", "uniqueSenders")},
        "preview": thread["preview"],
    }


class Conversations:
    def __init__(self, world: World) -> None:
        self.w = world
        self.attachment_reads = 0  # requests that read post attachments (admin stats)

    def group(self, key: str) -> Group:
        g = self.w.tenant.group_by_id.get(key.lower())
        if g is None:
            raise GraphError(
                404,
                "Request_ResourceNotFound",
                f"Resource '{key}' does not exist or one of its queried reference-property objects "
                "are not present.",
            )
        return g

    def states(self, group: Group) -> Iterator[dict[str, Any]]:
        """Every live thread of the group in its stored form, base threads first."""
        store, name = self.w.store, collection(group)
        touched = store.touched_in(name)
        for number in range(thread_count(self.w.tenant, group)):
            if thread_id(self.w.seed, group, number) not in touched:
                yield base_thread(self.w.tenant, group, number)
        for _, state in store.live_in(name):
            yield state

    def state(self, group: Group, key: str) -> dict[str, Any]:
        missing = GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        parsed = ids.parse(self.w.seed, THREAD_PREFIX, key)
        if parsed is None or parsed[0] != THREAD or parsed[1][0] != group.index:
            raise missing
        number = parsed[1][1]
        stored = self.w.store.item(key)
        if stored is not None:
            if stored[1] is None:
                raise missing
            return stored[1]
        if number >= thread_count(self.w.tenant, group):
            raise missing
        return base_thread(self.w.tenant, group, number)

    def threads(self, group: Group) -> list[dict[str, Any]]:
        out = [thread_json(self.w.seed, group, self.w.tenant.domain, s) for s in self.states(group)]
        out.sort(key=lambda t: (t["lastDeliveredDateTime"], t["id"]), reverse=True)
        return out

    def post(self, group: Group, thread: str, key: str) -> dict[str, Any]:
        posts: list[dict[str, Any]] = self.state(group, thread)["posts"]
        for post in posts:
            if post["id"] == key:
                return post
        raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")

    def attachment_bytes(self, att: dict[str, Any]) -> bytes:
        ref = att["_content"]
        if "blob" in ref:
            return self.w.store.blob_path(ref["blob"]).read_bytes()
        return generate.content_bytes(self.w.seed, ref)

    def attachments(self, post: dict[str, Any], select: list[str] | None) -> list[dict[str, Any]]:
        """A post's attachments as Graph lists them; bytes are read only when `contentBytes` is wanted."""
        self.attachment_reads += 1
        wanted = select is None or "contentbytes" in {s.lower() for s in select}
        return [
            self.w.pick(attachment_wire(att, self.attachment_bytes(att) if wanted else None), select)
            for att in post.get("_attachments", [])
        ]

    # ------------------------------------------------------------------ writes
    def _save(self, group: Group, state: dict[str, Any]) -> None:
        key = thread_id(self.w.seed, group, state["number"])
        self.w.store.write(self.w.now(), [(collection(group), key, state, None)])

    def _new_post(self, group: Group, state: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        post = body.get("post", body)
        content = post.get("body") or {}
        html = str(content.get("content") or "")
        sender = post.get("from") or {"emailAddress": {"name": "", "address": ""}}
        # Delivery times only move forward within a thread, as Exchange stamps them on arrival.
        at = max(self.w.now(), parse_iso(state["posts"][-1]["receivedDateTime"]) + 1 if state["posts"] else 0)
        attachments = self._sent_attachments(post.get("attachments"), iso(at))
        return post_json(
            self.w.seed, group, state["number"], len(state["posts"]), sender, html, at, attachments
        )

    def _sent_attachments(self, value: Any, when: str) -> list[dict[str, Any]]:
        """fileAttachments sent inline with a post (contentBytes), kept as blobs of the store."""
        if value is None:
            return []
        if not isinstance(value, list):
            raise GraphError(400, "ErrorInvalidRequest", "attachments must be a collection.")
        out = []
        for data in value:
            if not isinstance(data, dict) or data.get("@odata.type") != "#microsoft.graph.fileAttachment":
                raise GraphError(
                    400, "ErrorInvalidRequest", "Only #microsoft.graph.fileAttachment is supported."
                )
            try:
                raw = base64.b64decode(str(data.get("contentBytes", "")), validate=True)
            except (binascii.Error, ValueError) as exc:
                raise GraphError(400, "ErrorInvalidRequest", "contentBytes is not valid base64.") from exc
            name = str(data.get("name") or "attachment")
            ctype = str(data.get("contentType") or "application/octet-stream")
            out.append(_attachment(name, ctype, len(raw), {"blob": self.w.store.put_blob(raw)}, when))
        return out

    def reply(self, group: Group, key: str, body: dict[str, Any]) -> None:
        state = self.state(group, key)
        state = {**state, "posts": [*state["posts"], self._new_post(group, state, body)]}
        self._save(group, state)

    def create(self, group: Group, body: dict[str, Any]) -> dict[str, Any]:
        topic = body.get("topic")
        posts = body.get("posts")
        if not isinstance(topic, str) or not topic or not isinstance(posts, list) or not posts:
            raise GraphError(400, "ErrorInvalidRequest", "A thread needs a topic and at least one post.")
        number = NEW_THREADS_FROM + self.w.store.counter(f"threads:{group.id}")
        state: dict[str, Any] = {"number": number, "topic": topic, "posts": []}
        for post in posts:
            state["posts"].append(self._new_post(group, state, post))
        self._save(group, state)
        return thread_json(self.w.seed, group, self.w.tenant.domain, state)

    def delete(self, group: Group, key: str) -> None:
        self.state(group, key)
        self.w.store.write(self.w.now(), [(collection(group), key, None, None)])


def _page(
    w: World,
    req: Req,
    path: str,
    objects: list[dict[str, Any]],
    context: str,
    render: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> Resp:
    """One page of `objects`; `render` makes the wire form of those on the page only."""
    size, _ = w.page_size(req, DEFAULT_PAGE, MAX_PAGE, prefer=False)
    offset = 0
    if "$skiptoken" in req.query:
        try:
            offset = int(w.signer.read("skip", req.query["$skiptoken"])["o"])
        except (InvalidToken, KeyError, ValueError) as exc:
            raise GraphError(400, "BadRequest", "The skip token is invalid.") from exc
    body: dict[str, Any] = {
        "@odata.context": f"{req.graph_base}/$metadata#{context}",
        "value": [
            w.pick(render(o) if render else o, req.select(), ("id", "attachments"))
            for o in objects[offset : offset + size]
        ],
    }
    if offset + size < len(objects):
        query = {k: v for k, v in req.query.items() if k != "$skiptoken"}
        body["@odata.nextLink"] = w.link(
            req, path, **query, **{"$skiptoken": w.signer.mint("skip", {"o": offset + size})}
        )
    return Resp(200, body)


def register(router: Router, world: World, conv: Conversations) -> None:
    w = world

    @router.route("GET", "groups/{group}/threads")
    def list_threads(req: Req) -> Resp:
        g = conv.group(req.params["group"])
        return _page(w, req, f"/groups/{g.id}/threads", conv.threads(g), f"groups('{g.id}')/threads")

    @router.route("GET", "groups/{group}/conversations")
    def list_conversations(req: Req) -> Resp:
        g = conv.group(req.params["group"])
        out = [conversation_json(t, w.seed, g, _number(w, t["id"])) for t in conv.threads(g)]
        return _page(w, req, f"/groups/{g.id}/conversations", out, f"groups('{g.id}')/conversations")

    @router.route("GET", "groups/{group}/conversations/{conversation}/threads")
    def conversation_threads(req: Req) -> Resp:
        g = conv.group(req.params["group"])
        parsed = ids.parse(w.seed, THREAD_PREFIX, req.params["conversation"])
        if parsed is None or parsed[0] != CONVERSATION or parsed[1][0] != g.index:
            raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        key = thread_id(w.seed, g, parsed[1][1])
        found = [t for t in conv.threads(g) if t["id"] == key]
        if not found:
            raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        return _page(
            w, req, f"/groups/{g.id}/conversations/{req.params['conversation']}/threads", found, "threads"
        )

    @router.route("GET", "groups/{group}/threads/{thread}")
    def get_thread(req: Req) -> Resp:
        g = conv.group(req.params["group"])
        thread = thread_json(w.seed, g, w.tenant.domain, conv.state(g, req.params["thread"]))
        return Resp(200, w.pick(thread, req.select()))

    _register_posts(router, world, conv)

    @router.route("POST", "groups/{group}/threads")
    def create_thread(req: Req) -> Resp:
        g = conv.group(req.params["group"])
        _check_size(req)
        return Resp(201, conv.create(g, req.json_object()))

    @router.route("POST", "groups/{group}/threads/{thread}/reply")
    def reply(req: Req) -> Resp:
        g = conv.group(req.params["group"])
        _check_size(req)
        body = req.json_object()
        if not isinstance(body.get("post"), dict):
            raise GraphError(400, "ErrorInvalidRequest", "The request body needs a post.")
        conv.reply(g, req.params["thread"], body)
        return Resp(202)

    @router.route("DELETE", "groups/{group}/threads/{thread}")
    def delete_thread(req: Req) -> Resp:
        g = conv.group(req.params["group"])
        conv.delete(g, req.params["thread"])
        return Resp(204)


def _check_size(req: Req) -> None:
    if len(req.body) > MAX_POST_BYTES:
        raise GraphError(413, "RequestEntityTooLarge", "The maximum request length supported is 4MB.")


def _register_posts(router: Router, world: World, conv: Conversations) -> None:
    """Reads of posts and their attachments."""
    w = world

    def expanded(req: Req, post: dict[str, Any]) -> dict[str, Any]:
        expand = req.query.get("$expand", "").lower()
        out = post_wire(post)
        if expand == "attachments":
            out["attachments"] = conv.attachments(post, None)
        elif expand:
            raise GraphError(400, "BadRequest", f"Expanding '{expand}' is not supported.")
        return out

    @router.route("GET", "groups/{group}/threads/{thread}/posts")
    def list_posts(req: Req) -> Resp:
        g = conv.group(req.params["group"])
        key = req.params["thread"]
        posts = conv.state(g, key)["posts"]
        return _page(
            w, req, f"/groups/{g.id}/threads/{key}/posts", posts, "posts", lambda p: expanded(req, p)
        )

    @router.route("GET", "groups/{group}/threads/{thread}/posts/{post}")
    def get_post(req: Req) -> Resp:
        g = conv.group(req.params["group"])
        post = conv.post(g, req.params["thread"], req.params["post"])
        return Resp(200, w.pick(expanded(req, post), req.select()))

    @router.route("GET", "groups/{group}/threads/{thread}/posts/{post}/attachments")
    def list_attachments(req: Req) -> Resp:
        g = conv.group(req.params["group"])
        post = conv.post(g, req.params["thread"], req.params["post"])
        return Resp(
            200,
            {
                "@odata.context": f"{req.graph_base}/$metadata#Collection(attachment)",
                "value": conv.attachments(post, req.select()),
            },
        )

    def attachment(req: Req) -> dict[str, Any]:
        g = conv.group(req.params["group"])
        post = conv.post(g, req.params["thread"], req.params["post"])
        attachments: list[dict[str, Any]] = post.get("_attachments", [])
        for att in attachments:
            if att["id"] == req.params["attachment"]:
                conv.attachment_reads += 1
                return att
        raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")

    @router.route("GET", "groups/{group}/threads/{thread}/posts/{post}/attachments/{attachment}")
    def get_attachment(req: Req) -> Resp:
        att = attachment(req)
        wanted = req.select() is None or "contentbytes" in {s.lower() for s in req.select() or []}
        return Resp(
            200, w.pick(attachment_wire(att, conv.attachment_bytes(att) if wanted else None), req.select())
        )

    @router.route("GET", "groups/{group}/threads/{thread}/posts/{post}/attachments/{attachment}/$value")
    def get_attachment_value(req: Req) -> Resp:
        att = attachment(req)
        return Resp(200, conv.attachment_bytes(att), content_type=att["contentType"])


def _number(w: World, key: str) -> int:
    parsed = ids.parse(w.seed, THREAD_PREFIX, key)
    assert parsed is not None  # minted by thread_id
    return parsed[1][1]
