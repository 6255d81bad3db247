"""The generated base tenant, in-process: deterministic, realistic, lazy at benchmark scale."""

from __future__ import annotations

import email
import email.policy
import itertools
import time
import zlib

import pytest

from m365vault.emulator import content, generate
from m365vault.emulator.quickxor import QuickXorHash, quick_xor_hash
from m365vault.emulator.tenant import MAIL_FOLDERS, Tenant
from m365vault.emulator.tokens import InvalidToken, TokenSigner


def test_quick_xor_hash_reference_vectors() -> None:
    assert quick_xor_hash(b"") == "AAAAAAAAAAAAAAAAAAAAAAAAAAA="
    assert quick_xor_hash(b"hello world") == "aCgDG9jwBhDc4Q1yawMZAAAAAAA="
    assert quick_xor_hash(b"a" * 1000) == "cIADHOAABzjAAQ5waAAcgQhEIAI="
    data = content.read_all(3, "x", 2_000_003)
    h = QuickXorHash()
    for i in range(0, len(data), 77_777):
        h.update(data[i : i + 77_777])
    assert h.digest_b64() == quick_xor_hash(data)


def test_same_seed_same_tenant_other_seed_other_tenant() -> None:
    a, b, c = (
        Tenant(4, "small", "x.onmicrosoft.com"),
        Tenant(4, "small", "x.onmicrosoft.com"),
        Tenant(5, "small", "x.onmicrosoft.com"),
    )
    assert [u.upn for u in a.users] == [u.upn for u in b.users]
    assert a.drive_entries(3) == b.drive_entries(3)
    user = a.users[0]
    m1 = generate.message(a, user, 1, "f", 3)
    assert m1 == generate.message(b, user, 1, "f", 3)
    assert generate.build_mime(
        4, m1, [generate.content_bytes(4, x["_content"]) for x in m1["attachments"]]
    ) == generate.build_mime(4, m1, [generate.content_bytes(4, x["_content"]) for x in m1["attachments"]])
    assert [u.id for u in a.users] != [u.id for u in c.users]


def test_tenant_shape() -> None:
    t = Tenant(1, "small", "contoso.onmicrosoft.com")
    assert any(not u.has_mailbox for u in t.users) and any(u.has_mailbox and not u.has_drive for u in t.users)
    assert any(u.user_type == "Guest" for u in t.users)
    assert 200 <= t.mailbox_message_total() <= 600
    assert {f.well_known for f in MAIL_FOLDERS if f.well_known} >= {
        "inbox",
        "sentitems",
        "deleteditems",
        "archive",
    }
    assert any(
        f.parent not in (0, None) and MAIL_FOLDERS[f.parent].parent not in (0, None) for f in MAIL_FOLDERS
    )
    entries = [e for d in t.drives for e in t.drive_entries(d.number) if not e.is_folder]
    assert any(e.size > 10_000_000 for e in entries) and any(e.versions > 1 for e in entries)
    assert any(e.size < 60_000 for e in entries)


def test_medium_scale_sits_between() -> None:
    t = Tenant(1, "medium", "contoso.onmicrosoft.com")
    assert 5_000 <= t.mailbox_message_total() <= 10_000
    assert 0.5e9 <= t.total_file_bytes() <= 2e9


def test_large_scale_is_big_and_lazy() -> None:
    started = time.monotonic()
    t = Tenant(1, "large", "contoso.onmicrosoft.com")
    assert t.mailbox_message_total() >= 100_000
    assert t.total_file_bytes() >= 5 * 10**9
    assert time.monotonic() - started < 5  # nothing is materialised


@pytest.mark.parametrize("kind_key", ["doc-a", "doc-b", "doc-c", "doc-d", "doc-e", "doc-f"])
def test_file_bytes_are_ranged_consistent_and_not_trivial(kind_key: str) -> None:
    size = 300_001
    whole = content.read_all(9, kind_key, size)
    assert len(whole) == size
    assert b"".join(content.stream(9, kind_key, size, 70_000, 200_123)) == whole[70_000:200_123]
    ratio = len(zlib.compress(whole, 6)) / size
    assert ratio > 0.45  # text-like parts compress, random-like parts do not; never trivially
    assert whole != content.read_all(9, kind_key + "x", size)


def test_generated_mime_is_valid_rfc822() -> None:
    t = Tenant(2, "small", "contoso.onmicrosoft.com")
    user = next(u for u in t.users if u.has_mailbox)
    kinds = set()
    for i in range(40):
        state = generate.message(t, user, 1, "fid", i)
        raw = generate.build_mime(
            2, state, [generate.content_bytes(2, a["_content"]) for a in state["attachments"]]
        )
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert msg["Subject"] == state["subject"] and msg["Message-ID"] == state["internetMessageId"]
        assert b"\r\n" in raw
        kinds.add(msg.get_content_type())
    assert {"text/plain", "text/html", "multipart/alternative", "multipart/mixed"} <= kinds


def test_tokens_are_signed() -> None:
    s = TokenSigner(b"k" * 32)
    token = s.mint("delta", {"c": "m:1", "s": 4})
    assert s.read("delta", token)["s"] == 4
    with pytest.raises(InvalidToken):
        s.read("skip", token)
    with pytest.raises(InvalidToken):
        s.read("delta", token.replace(token[3], "A" if token[3] != "A" else "B", 1))
    with pytest.raises(InvalidToken):
        TokenSigner(b"o" * 32).read("delta", token)


def test_blocks_are_not_shifted_copies_of_each_other() -> None:
    """Each 64 KiB block owns its own keystream, so chunking backups cannot deduplicate within a file."""
    data = content.read_all(1, "media", 8 * content.BLOCK)
    blocks = [data[i : i + content.BLOCK] for i in range(0, len(data), content.BLOCK)]
    for a, b in itertools.pairwise(blocks):
        assert b[16:80] not in a and a[16:80] not in b
