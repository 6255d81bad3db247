"""Fixtures of the restore-output suite: sample mails, a TLS certificate, real SMTP servers."""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import AsyncIterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast

import extract_msg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.net import free_port

ATTACHMENT_BYTES = bytes(range(256)) * 300 + b"\x00\xff end"
IMAGE_BYTES = b"\x89PNG\r\n\x1a\n" + bytes(range(200))


def sample_mail(subject: str = "Quarterly report – ünïcode", body_from_line: bool = True) -> bytes:
    """A realistic mail: alternative bodies, an inline image, a binary file and an attached mail."""
    inner = EmailMessage(policy=policy.SMTP)
    inner["From"] = "Old Sender <old@example.net>"
    inner["To"] = "someone@example.com"
    inner["Subject"] = "The forwarded one"
    inner["Date"] = "Mon, 02 Mar 2026 08:00:00 +0000"
    inner.set_content("Inner body.\n")

    outer = EmailMessage(policy=policy.SMTP)
    outer["From"] = "Alice Sender <alice@contoso.example>"
    outer["To"] = "Bob One <bob@contoso.example>, carol@contoso.example"
    outer["Cc"] = "Dave <dave@contoso.example>"
    outer["Bcc"] = "eve@contoso.example"
    outer["Subject"] = subject
    outer["Date"] = "Tue, 03 Mar 2026 09:15:00 +0100"
    outer["Message-ID"] = "<report-1@contoso.example>"
    outer["X-Custom-Header"] = "kept in transport headers"
    text = "Hello Bob,\n\nthe numbers are attached.\n"
    if body_from_line:
        text += "From the finance team\n>From quoted already\n.leading dot line\n"
    outer.set_content(text)
    outer.add_alternative(
        '<html><body><p>Hello <b>Bob</b></p><img src="cid:logo@contoso"></body></html>', subtype="html"
    )
    html_part = outer.get_body(("html",))
    assert isinstance(html_part, EmailMessage)
    html_part.add_related(IMAGE_BYTES, maintype="image", subtype="png", cid="<logo@contoso>")
    outer.add_attachment(
        ATTACHMENT_BYTES, maintype="application", subtype="octet-stream", filename="numbers.bin"
    )
    outer.add_attachment(inner)
    return outer.as_bytes()


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def read_msg(content: bytes) -> extract_msg.Message:
    """The .msg parsed by extract-msg, the independent reader."""
    return cast(extract_msg.Message, extract_msg.openMsg(content))


async def collect(chunks: AsyncIterable[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


@dataclass
class TlsFiles:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A self-signed certificate for 127.0.0.1, which the client trusts through `ca_file`."""
    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=7))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    files = TlsFiles(folder / "cert.pem", folder / "key.pem")
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return files


@dataclass
class Received:
    envelopes: list[Envelope] = field(default_factory=list)
    logins: list[tuple[bytes, bytes]] = field(default_factory=list)

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted"


class _Controller(Controller):
    """aiosmtpd's controller with our SMTP options (TLS, AUTH, size limit)."""

    def __init__(self, handler: Any, port: int, options: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(handler, hostname="127.0.0.1", port=port, **kwargs)
        self._options = options

    def factory(self) -> SMTPServer:
        return SMTPServer(self.handler, **self._options)


@dataclass
class SmtpServer:
    port: int
    received: Received


@pytest.fixture
def smtp_server(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Starts real aiosmtpd servers on loopback: `start(kind, **options)`; stops them afterwards."""
    controllers: list[Controller] = []

    def start(*, implicit_tls: ssl.SSLContext | None = None, **options: Any) -> SmtpServer:
        received = Received()
        if options.pop("with_auth", False):

            def authenticator(
                server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: Any
            ) -> AuthResult:
                assert isinstance(data, LoginPassword)
                received.logins.append((data.login, data.password))
                return AuthResult(success=data.login == b"restore" and data.password == b"s3cret")

            options["authenticator"] = authenticator
        port = free_port()
        extra = {"ssl_context": implicit_tls} if implicit_tls else {}
        controller = _Controller(received, port, options, **extra)
        controller.start()
        controllers.append(controller)
        return SmtpServer(port, received)

    yield start
    for controller in controllers:
        controller.stop()
