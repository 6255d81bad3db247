"""Sending restored items through real SMTP servers (aiosmtpd): plain, STARTTLS with AUTH, SMTPS."""

from __future__ import annotations

import socket
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from m365vault.clock import FakeClock
from m365vault.restore.errors import InvalidMailSettings, ItemTooLarge, MailDeliveryError, NothingToSave
from m365vault.restore.mailer import (
    MailAttachment,
    Security,
    SmtpSettings,
    document_attachment,
    mail_item_attachment,
    send_items_to_default_address,
    send_mail,
)
from tests.restore_io.conftest import ATTACHMENT_BYTES, TlsFiles, chunked, read_msg, sample_mail
from tests.support.net import free_port
from tests.support.processes import ChildProcess

CLOCK = FakeClock(datetime(2026, 3, 10, 12, 0, tzinfo=UTC))


def _parse(content: bytes) -> EmailMessage:
    parsed = message_from_bytes(content, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _items() -> list[MailAttachment]:
    mime = sample_mail()

    async def document() -> AsyncIterator[bytes]:
        for piece in chunked(ATTACHMENT_BYTES, 1001):  # not a multiple of base64's 57-byte groups
            yield piece

    return [
        mail_item_attachment("Quarterly report", lambda: chunked(mime, 333)),
        document_attachment("Budget: 2026?.xlsx", document),
    ]


def _check_received(content: bytes) -> EmailMessage:
    received = _parse(content)
    attachments = list(received.iter_attachments())
    assert [a.get_filename() for a in attachments] == ["Quarterly report.eml", "Budget_ 2026_.xlsx"]
    embedded = attachments[0]
    assert embedded.get_content_type() == "message/rfc822"
    inner = embedded.get_content()
    assert inner["Subject"] == "Quarterly report – ünïcode"
    inner_file = next(p for p in inner.iter_attachments() if p.get_filename() == "numbers.bin")
    assert inner_file.get_content() == ATTACHMENT_BYTES
    assert attachments[1].get_content() == ATTACHMENT_BYTES
    return received


async def test_plain_smtp_delivers_items_as_attachments(smtp_server) -> None:
    server = smtp_server()
    settings = SmtpSettings.from_v3(
        {"Server": "127.0.0.1", "port": str(server.port), "from": "vault@contoso.example"}
    )
    sent = await send_mail(
        settings,
        to="Helpdesk <help@contoso.example>; bob@contoso.example",
        subject="Your restored items –\r\n März",
        text="Here they are.\n.a line with a leading dot\n",
        attachments=_items(),
        clock=CLOCK,
    )
    assert sent.recipients == ("help@contoso.example", "bob@contoso.example")
    [envelope] = server.received.envelopes
    assert envelope.mail_from == "vault@contoso.example"
    assert envelope.rcpt_tos == ["help@contoso.example", "bob@contoso.example"]
    assert f"SIZE={sent.size}" in envelope.mail_options
    received = _check_received(envelope.content)
    assert received["Subject"] == "Your restored items – März"
    assert received["Message-ID"] == sent.message_id
    assert received["Date"] == "Tue, 10 Mar 2026 12:00:00 +0000"
    body = received.get_body(("plain",))
    assert body is not None
    text = body.get_content().replace("\r\n", "\n")
    assert text == "Here they are.\n.a line with a leading dot\n"  # the dot survived DATA's stuffing


async def test_auth_over_starttls_with_a_self_signed_certificate(smtp_server, tls_files: TlsFiles) -> None:
    server = smtp_server(tls_context=tls_files.server_context(), with_auth=True, auth_require_tls=True)
    settings = SmtpSettings(
        server="127.0.0.1",
        port=server.port,
        from_address="vault@contoso.example",
        use_authentication=True,
        username="restore",
        password="s3cret",
        ca_file=str(tls_files.cert),
    )
    assert settings.resolved_security() is Security.OPPORTUNISTIC
    assert "s3cret" not in repr(settings)
    await send_items_to_default_address(settings, "bob@contoso.example", _items(), clock=CLOCK)
    assert server.received.logins == [(b"restore", b"s3cret")]
    [envelope] = server.received.envelopes
    assert envelope.rcpt_tos == ["bob@contoso.example"]
    assert _check_received(envelope.content)["Subject"] == "Restored items"


async def test_implicit_tls_and_msg_attachments(smtp_server, tls_files: TlsFiles) -> None:
    server = smtp_server(implicit_tls=tls_files.server_context())
    settings = SmtpSettings.from_v3(
        {"server": "127.0.0.1", "port": server.port, "useSSL": "true", "from": "vault@contoso.example"}
    )
    settings = replace(settings, ca_file=str(tls_files.cert))
    assert settings.resolved_security() is Security.TLS
    mime = sample_mail()
    item = mail_item_attachment("Quarterly report", lambda: [mime], as_msg=True)
    await send_mail(settings, to="bob@contoso.example", subject="As msg", text="x", attachments=[item])
    [envelope] = server.received.envelopes
    [attachment] = list(_parse(envelope.content).iter_attachments())
    assert attachment.get_filename() == "Quarterly report.msg"
    assert attachment.get_content_type() == "application/vnd.ms-outlook"
    parsed = read_msg(attachment.get_content())
    assert parsed.subject == "Quarterly report – ünïcode"
    assert any(a.data == ATTACHMENT_BYTES for a in parsed.attachments)


async def test_untrusted_certificate_is_refused(smtp_server, tls_files: TlsFiles) -> None:
    server = smtp_server(implicit_tls=tls_files.server_context())
    settings = SmtpSettings(
        server="127.0.0.1", port=server.port, use_ssl=True, from_address="v@contoso.example"
    )
    with pytest.raises(MailDeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
        await send_mail(settings, to="bob@contoso.example", subject="s", text="t", attachments=_items())
    assert server.received.envelopes == []


async def test_credentials_are_never_sent_in_clear(smtp_server) -> None:
    server = smtp_server(with_auth=True, auth_require_tls=False)
    settings = SmtpSettings(
        server="127.0.0.1",
        port=server.port,
        from_address="v@contoso.example",
        use_authentication=True,
        username="restore",
        password="s3cret",
    )
    with pytest.raises(MailDeliveryError, match="not sent in clear text"):
        await send_mail(settings, to="bob@contoso.example", subject="s", text="t", attachments=_items())
    assert server.received.logins == [] and server.received.envelopes == []


async def test_required_starttls_missing_is_an_error(smtp_server) -> None:
    server = smtp_server()
    settings = SmtpSettings(
        server="127.0.0.1", port=server.port, from_address="v@contoso.example", security=Security.STARTTLS
    )
    with pytest.raises(MailDeliveryError, match="does not offer STARTTLS"):
        await send_mail(settings, to="bob@contoso.example", subject="s", text="t", attachments=_items())
    assert server.received.envelopes == []


async def test_size_limits_stop_early_with_a_clear_error(smtp_server) -> None:
    server = smtp_server(data_size_limit=50_000)
    settings = SmtpSettings(server="127.0.0.1", port=server.port, from_address="v@contoso.example")
    reads: list[int] = []

    def endless() -> AsyncIterator[bytes]:
        async def chunks() -> AsyncIterator[bytes]:
            for index in range(10_000):
                reads.append(index)
                yield b"\x01" * 65536

        return chunks()

    huge = [MailAttachment("huge.bin", endless)]
    with pytest.raises(ItemTooLarge, match="larger than the 1000000 bytes allowed"):
        await send_mail(
            settings,
            to="b@contoso.example",
            subject="s",
            text="t",
            attachments=huge,
            max_message_bytes=1_000_000,
        )
    assert len(reads) < 20  # the repository read stopped at the limit, not at the end
    with pytest.raises(ItemTooLarge, match="accepts at most 50000"):
        await send_mail(settings, to="b@contoso.example", subject="s", text="t", attachments=_items())
    assert server.received.envelopes == []


async def test_bad_input_is_refused_before_any_connection() -> None:
    settings = SmtpSettings(server="127.0.0.1", port=9, from_address="v@contoso.example")
    with pytest.raises(InvalidMailSettings, match="no valid recipient"):
        await send_mail(settings, to=" ; ", subject="s", text="t", attachments=_items())
    with pytest.raises(InvalidMailSettings, match="no sender"):
        await send_mail(SmtpSettings(server="x"), to="b@c.d", subject="s", text="t", attachments=_items())
    with pytest.raises(NothingToSave):
        await send_mail(settings, to="b@c.d", subject="s", text="t", attachments=[])
    with pytest.raises(InvalidMailSettings, match="no SMTP server"):
        SmtpSettings.from_v3({"port": 25})
    with pytest.raises(InvalidMailSettings, match="out of range"):
        SmtpSettings.from_v3({"smtpServer": "mail", "port": 70000})


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"smtpServer": "smtp.office365.com", "port": 587, "useSSL": True}, Security.STARTTLS),
        ({"server": "mail", "port": 25, "useSSL": "True"}, Security.STARTTLS),
        ({"server": "mail", "port": 465, "useSSL": True}, Security.TLS),
        ({"server": "mail", "port": 2465, "useSSL": True}, Security.TLS),
        ({"server": "mail", "port": 25, "useSSL": False}, Security.OPPORTUNISTIC),
        ({"server": "mail", "port": 587, "useSSL": True, "security": "none"}, Security.NONE),
    ],
)
def test_security_follows_use_ssl_and_port(body: dict, expected: Security) -> None:
    assert SmtpSettings.from_v3(body).resolved_security() is expected


async def test_eight_bit_mail_item_goes_with_body_8bitmime(smtp_server) -> None:
    server = smtp_server()
    settings = SmtpSettings(server="127.0.0.1", port=server.port, from_address="v@contoso.example")
    raw = (
        "Subject: Grüße\nFrom: a@contoso.example\nContent-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: 8bit\n\nSchöne Grüße\n"
    ).encode()
    item = mail_item_attachment("Grüße", lambda: [raw])
    await send_mail(settings, to="b@contoso.example", subject="s", text="t", attachments=[item])
    [envelope] = server.received.envelopes
    assert "BODY=8BITMIME" in envelope.mail_options
    [attachment] = list(_parse(envelope.content).iter_attachments())
    assert attachment.get_filename() == "Grüße.eml"
    assert attachment.get_content().get_content() == "Schöne Grüße\r\n"


@pytest.mark.slow
async def test_a_large_item_is_spooled_not_held_twice(tmp_path: Path) -> None:
    """24 MiB through a server in another process: our peak memory stays far below the mail."""
    port = free_port()
    server = ChildProcess(
        [
            sys.executable,
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            f"127.0.0.1:{port}",
            "-c",
            "aiosmtpd.handlers.Sink",
            "-s",
            "0",
        ],
        tmp_path / "smtpd.log",
    )
    try:
        _wait_for_port(port, server)
        block = bytes(range(256)) * 4096  # 1 MiB

        def big() -> AsyncIterator[bytes]:
            async def chunks() -> AsyncIterator[bytes]:
                for _ in range(24):
                    yield block

            return chunks()

        settings = SmtpSettings(server="127.0.0.1", port=port, from_address="v@contoso.example")
        tracemalloc.start()
        try:
            sent = await send_mail(
                settings,
                to="b@contoso.example",
                subject="big",
                text="t",
                attachments=[MailAttachment("big.bin", big)],
                max_message_bytes=80 * 1024 * 1024,
            )
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert sent.size > 32 * 1024 * 1024  # 24 MiB as base64
        assert peak < 20 * 1024 * 1024, f"peak {peak} bytes for a {sent.size}-byte mail"
    finally:
        server.terminate()


def _wait_for_port(port: int, process: ChildProcess) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.proc.poll() is None, process.log()
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(process.log())
