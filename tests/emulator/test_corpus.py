"""Real messages from a corpus directory (as the SpamAssassin corpus is laid out) served as mail."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.emulator.conftest import Emu, drain, start_emulator


@pytest.fixture(scope="module")
def corpus_emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Emu, dict[str, bytes]]]:
    corpus = tmp_path_factory.mktemp("corpus") / "data" / "easy-ham-1"
    corpus.mkdir(parents=True)
    raw: dict[str, bytes] = {}
    for i in range(5):
        m = EmailMessage()
        m["From"] = f"Sender {i} <s{i}@lists.example>"
        m["To"] = "list@lists.example"
        m["Subject"] = f"corpus message {i}"
        m["Date"] = "Tue, 30 Jul 2002 08:30:04 +0100"
        m["Message-ID"] = f"<corpus-{i}@lists.example>"
        m.set_content(f"real body {i}\n")
        if i % 2:
            m.add_attachment(
                b"attached bytes %d" % i, maintype="application", subtype="octet-stream", filename=f"f{i}.bin"
            )
        body = m.as_bytes()
        raw[f"corpus message {i}"] = body
        (corpus / f"{i:05d}.txt").write_bytes(b"From s@lists.example  Tue Jul 30 08:30:04 2002\n" + body)
    e = start_emulator(tmp_path_factory.mktemp("corpus-emu") / "state", "--mail-corpus", str(corpus.parent))
    try:
        yield e, raw
    finally:
        e.process.terminate()


def test_a_share_of_mail_comes_from_the_corpus(corpus_emu: tuple[Emu, dict[str, bytes]]) -> None:
    emu, raw = corpus_emu
    with emu.client() as g:
        uid = next(u for u in g.get("/users", params={"$select": "id,mail"}).json()["value"] if u["mail"])[
            "id"
        ]
        items, _, _ = drain(
            g,
            f"/users/{uid}/mailFolders/inbox/messages/delta",
            {"Prefer": "odata.maxpagesize=100"},
            {"$select": "subject,hasAttachments,internetMessageId"},
        )
        real = [m for m in items if m["subject"] in raw]
        assert 0 < len(real) < len(items)
        for m in real[:4]:
            value = g.get(f"/users/{uid}/messages/{m['id']}/$value").content
            assert value == raw[m["subject"]]  # the corpus bytes, without the mbox From line
            if m["hasAttachments"]:
                att = g.get(f"/users/{uid}/messages/{m['id']}/attachments").json()["value"][0]
                parsed = email.message_from_bytes(value, policy=email.policy.default)
                payload = next(parsed.iter_attachments()).get_payload(decode=True)
                assert isinstance(payload, bytes) and payload.startswith(b"attached bytes")
                assert att["size"] == len(b"attached bytes 1")
        # Changing the subject makes $value follow the item, as Exchange regenerates MIME.
        m = real[0]
        g.patch(f"/users/{uid}/messages/{m['id']}", json={"subject": "edited"})
        edited = email.message_from_bytes(
            g.get(f"/users/{uid}/messages/{m['id']}/$value").content, policy=email.policy.default
        )
        assert edited["Subject"] == "edited"
    assert Path(emu.state_dir).exists()
