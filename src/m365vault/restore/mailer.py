"""`sendtoDefaultAddress`, `sendtoDifferentAddress` and `send`: restored items mailed as attachments.

The mail is written once, part by part, into a spool (memory up to a threshold, then a temporary
file) while the items stream from the repository, so no item is held whole twice; it is refused
as soon as it passes the size limit. It then goes out with the standard library's SMTP client in
a worker thread, with the DATA phase streamed from the spool.

Transport security. v3's email settings carry only `useSSL`; we read it as follows (`security`,
our extension, overrides it):
- `useSSL` true on port 25 or 587: STARTTLS, required. These ports speak plain SMTP first, and
  Veeam's own client (.NET `EnableSsl`) means STARTTLS there, so existing settings keep working.
- `useSSL` true on any other port (465 above all): implicit TLS, encrypted from the first byte.
- `useSSL` false: plain SMTP, upgraded with STARTTLS whenever the server offers it.
Credentials are never sent over an unencrypted connection unless `allow_insecure_auth` says so.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import smtplib
import ssl
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, make_msgid, parseaddr
from enum import Enum
from typing import IO, Any

from m365vault.clock import Clock, utcnow
from m365vault.restore.errors import InvalidMailSettings, ItemTooLarge, MailDeliveryError, NothingToSave
from m365vault.restore.formats.download import Opener, iterate
from m365vault.restore.formats.eml import eml_filename
from m365vault.restore.formats.msg import MAX_ITEM_BYTES, MSG_MEDIA_TYPE, msg_filename, save_to_msg
from m365vault.restore.formats.names import safe_filename

# Exchange Online's default maximum send size; servers announcing a smaller SIZE win.
DEFAULT_MAX_MESSAGE_BYTES = 35 * 1024 * 1024
SPOOL_MEMORY_BYTES = 8 * 1024 * 1024
_B64_BLOCK = 57 * 1024  # whole 57-byte groups, so every base64 line is 76 characters
_SEND_CHUNK = 256 * 1024


class Security(Enum):
    AUTO = "auto"
    TLS = "tls"  # implicit TLS (SMTPS)
    STARTTLS = "starttls"  # plain first, STARTTLS required
    OPPORTUNISTIC = "opportunistic"  # plain first, STARTTLS when offered
    NONE = "none"


_SECURITY_NAMES = {
    "auto": Security.AUTO,
    "tls": Security.TLS,
    "ssl": Security.TLS,
    "starttls": Security.STARTTLS,
    "opportunistic": Security.OPPORTUNISTIC,
    "none": Security.NONE,
    "plain": Security.NONE,
}


@dataclass(frozen=True)
class SmtpSettings:
    """SMTP settings shaped like `/VEXEmailSettings` (and `/VBOEmailSettings`' `smtpServer`)."""

    server: str
    port: int = 25
    from_address: str = ""
    use_authentication: bool = False
    username: str = ""
    password: str = field(default="", repr=False)
    use_ssl: bool = False
    security: Security = Security.AUTO
    ca_file: str | None = None  # trust this CA bundle instead of the system's
    verify_certificate: bool = True
    allow_insecure_auth: bool = False
    timeout: float = 60.0

    @classmethod
    def from_v3(cls, body: Mapping[str, Any]) -> SmtpSettings:
        """From a v3 settings body: keys case-insensitive, booleans and numbers possibly strings."""
        values = {key.lower(): value for key, value in body.items()}
        server = str(values.get("server") or values.get("smtpserver") or "").strip()
        if not server:
            raise InvalidMailSettings("the email settings name no SMTP server")
        try:
            port = int(values.get("port") or 25)
        except (TypeError, ValueError):
            raise InvalidMailSettings(f"the SMTP port {values.get('port')!r} is not a number") from None
        if not 0 < port < 65536:
            raise InvalidMailSettings(f"the SMTP port {port} is out of range")
        security_name = str(values.get("security") or "auto").lower()
        if security_name not in _SECURITY_NAMES:
            raise InvalidMailSettings(f"unknown SMTP security {security_name!r}")
        return cls(
            server=server,
            port=port,
            from_address=str(values.get("from") or ""),
            use_authentication=_flag(values.get("useauthentication")),
            username=str(values.get("username") or ""),
            password=str(values.get("userpassword") or ""),
            use_ssl=_flag(values.get("usessl")),
            security=_SECURITY_NAMES[security_name],
        )

    def resolved_security(self) -> Security:
        if self.security is not Security.AUTO:
            return self.security
        if self.use_ssl:
            return Security.STARTTLS if self.port in (25, 587) else Security.TLS
        return Security.OPPORTUNISTIC

    def tls_context(self) -> ssl.SSLContext:
        if not self.verify_certificate:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        return ssl.create_default_context(cafile=self.ca_file)


def _flag(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


@dataclass(frozen=True)
class MailAttachment:
    """One attachment. `message` attachments are embedded as message/rfc822 (the MIME as is)."""

    filename: str
    open: Opener
    media_type: str = "application/octet-stream"
    message: bool = False


def mail_item_attachment(
    subject: str | None, mime: Opener, *, as_msg: bool = False, max_item_bytes: int | None = None
) -> MailAttachment:
    """A mail item as an attachment: its MIME as message/rfc822, or an Outlook .msg."""
    if not as_msg:
        return MailAttachment(eml_filename(subject), mime, "message/rfc822", message=True)

    def open_msg() -> AsyncIterator[bytes]:
        async def chunks() -> AsyncIterator[bytes]:
            download = await save_to_msg(subject, mime, max_item_bytes=max_item_bytes or MAX_ITEM_BYTES)
            async for chunk in download.chunks:
                yield chunk

        return chunks()

    return MailAttachment(msg_filename(subject), open_msg, MSG_MEDIA_TYPE)


def document_attachment(name: str, content: Opener) -> MailAttachment:
    return MailAttachment(safe_filename(name, fallback="document"), content)


@dataclass(frozen=True)
class SentMail:
    message_id: str
    size: int
    recipients: tuple[str, ...]


def parse_addresses(text: str | Iterable[str]) -> list[str]:
    """Addresses from `a@x; B <b@y>, c@z` (Veeam's UI separates them with semicolons)."""
    values = [text] if isinstance(text, str) else list(text)
    found = [address for _, address in getaddresses([value.replace(";", ",") for value in values])]
    return [address for address in found if address]


async def send_mail(
    settings: SmtpSettings,
    *,
    to: str | Iterable[str],
    subject: str,
    text: str,
    attachments: Iterable[MailAttachment] | AsyncIterable[MailAttachment],
    sender: str | None = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    clock: Clock = utcnow,
) -> SentMail:
    """Build the mail with its attachments and deliver it; raises before any SMTP if it is too large."""
    recipients = parse_addresses(to)
    if not recipients or any("@" not in address for address in recipients):
        raise InvalidMailSettings(f"no valid recipient address in {to!r}")
    from_address = parseaddr(sender or settings.from_address)[1]
    if "@" not in from_address:
        raise InvalidMailSettings("no sender address: set `from` in the email settings or the request")
    message_id = make_msgid(domain=from_address.rpartition("@")[2] or None)
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES) as spool:
        writer = _SpoolWriter(spool, max_message_bytes)
        head = _headers(from_address, recipients, subject, message_id, clock)
        await _write_mail(writer, head, text, attachments)
        spool.seek(0)
        await asyncio.to_thread(
            _deliver, settings, from_address, recipients, spool, writer.size, writer.eight_bit
        )
    return SentMail(message_id, writer.size, tuple(recipients))


async def send_items_to_default_address(
    settings: SmtpSettings,
    mailbox_address: str,
    items: Iterable[MailAttachment] | AsyncIterable[MailAttachment],
    *,
    subject: str = "Restored items",
    text: str = "The items you asked to restore are attached to this message.",
    **options: Any,
) -> SentMail:
    """`sendtoDefaultAddress`: the items go to the mailbox they were backed up from."""
    return await send_mail(
        settings, to=mailbox_address, subject=subject, text=text, attachments=items, **options
    )


async def _write_mail(
    writer: _SpoolWriter,
    head: bytes,
    text: str,
    attachments: Iterable[MailAttachment] | AsyncIterable[MailAttachment],
) -> None:
    boundary = "=_m365vault_" + secrets.token_hex(16)
    writer.write(head)
    writer.write(f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'.encode())
    writer.write(b"This is a multi-part message in MIME format.\r\n")
    body = EmailMessage(policy=policy.SMTP)
    body.set_content(text, charset="utf-8")
    del body["MIME-Version"]
    writer.write(f"--{boundary}\r\n".encode() + body.as_bytes())
    count = 0
    async for attachment in _attachments(attachments):
        count += 1
        writer.write(f"\r\n--{boundary}\r\n".encode() + _part_headers(attachment))
        if attachment.message:
            await writer.write_message(iterate(attachment.open()))
        else:
            await writer.write_base64(iterate(attachment.open()))
    if count == 0:
        raise NothingToSave("there is nothing to send: the selection holds no item")
    writer.write(f"\r\n--{boundary}--\r\n".encode())


async def _attachments(
    attachments: Iterable[MailAttachment] | AsyncIterable[MailAttachment],
) -> AsyncIterator[MailAttachment]:
    if isinstance(attachments, AsyncIterable):
        async for attachment in attachments:
            yield attachment
    else:
        for attachment in attachments:
            yield attachment


def _headers(sender: str, recipients: list[str], subject: str, message_id: str, clock: Clock) -> bytes:
    head = EmailMessage(policy=policy.SMTP)
    head["From"] = sender
    head["To"] = ", ".join(recipients)
    head["Subject"] = " ".join(subject.split())  # a line break in a subject would end the header
    head["Date"] = format_datetime(clock())
    head["Message-ID"] = message_id
    head["MIME-Version"] = "1.0"
    return _header_bytes(head)


def _part_headers(attachment: MailAttachment) -> bytes:
    part = EmailMessage(policy=policy.SMTP)
    part["Content-Type"] = attachment.media_type
    part.add_header("Content-Disposition", "attachment", filename=attachment.filename)
    if not attachment.message:
        part["Content-Transfer-Encoding"] = "base64"
    return _header_bytes(part) + b"\r\n"


def _header_bytes(message: EmailMessage) -> bytes:
    return b"".join(policy.SMTP.fold_binary(name, value) for name, value in message.items())


class _SpoolWriter:
    """Writes the mail into the spool, counting bytes and refusing past the limit at once."""

    def __init__(self, spool: IO[bytes], limit: int) -> None:
        self._spool = spool
        self._limit = limit
        self.size = 0
        self.eight_bit = False

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self._limit:
            raise ItemTooLarge(
                f"the mail with the restored items is larger than the {self._limit} bytes allowed; "
                "send fewer items at a time"
            )
        self._spool.write(data)

    async def write_base64(self, chunks: AsyncIterator[bytes]) -> None:
        carry = b""
        async for chunk in chunks:
            data = carry + chunk
            whole = len(data) - len(data) % 57
            carry = data[whole:]
            if whole:
                self.write(base64.encodebytes(data[:whole]).replace(b"\n", b"\r\n"))
        if carry:
            self.write(base64.encodebytes(carry).replace(b"\n", b"\r\n"))

    async def write_message(self, chunks: AsyncIterator[bytes]) -> None:
        """An embedded message as it is, line ends made CRLF (SMTP's), 8-bit noted for BODY=."""
        carry, last = b"", b"\n"
        async for chunk in chunks:
            data = carry + chunk
            carry = b"\r" if data.endswith(b"\r") else b""
            data = data[:-1] if carry else data
            data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            if data:
                self.eight_bit = self.eight_bit or not data.isascii()
                self.write(data)
                last = data[-1:]
        if carry:
            self.write(carry)
            last = carry
        if last != b"\n":
            self.write(b"\r\n")


def _deliver(
    settings: SmtpSettings,
    sender: str,
    recipients: list[str],
    spool: IO[bytes],
    size: int,
    eight_bit: bool,
) -> None:
    security = settings.resolved_security()
    try:
        with _connect(settings, security) as smtp:
            _transact(smtp, settings, security, sender, recipients, spool, size, eight_bit)
    except (smtplib.SMTPException, ssl.SSLError, OSError) as error:
        where = f"{settings.server}:{settings.port}"
        raise MailDeliveryError(f"sending through {where} failed: {error}") from error


def _connect(settings: SmtpSettings, security: Security) -> smtplib.SMTP:
    if security is Security.TLS:
        return smtplib.SMTP_SSL(
            settings.server, settings.port, timeout=settings.timeout, context=settings.tls_context()
        )
    return smtplib.SMTP(settings.server, settings.port, timeout=settings.timeout)


def _transact(
    smtp: smtplib.SMTP,
    settings: SmtpSettings,
    security: Security,
    sender: str,
    recipients: list[str],
    spool: IO[bytes],
    size: int,
    eight_bit: bool,
) -> None:
    smtp.ehlo()
    encrypted = security is Security.TLS
    if security in (Security.STARTTLS, Security.OPPORTUNISTIC) and smtp.has_extn("starttls"):
        smtp.starttls(context=settings.tls_context())
        smtp.ehlo()
        encrypted = True
    elif security is Security.STARTTLS:
        where = f"{settings.server}:{settings.port}"
        raise MailDeliveryError(f"{where} does not offer STARTTLS, which is required")
    if settings.use_authentication:
        if not encrypted and not settings.allow_insecure_auth:
            raise MailDeliveryError(
                f"{settings.server}:{settings.port} offers no TLS; credentials are not sent in clear text"
            )
        smtp.login(settings.username, settings.password)
    announced = smtp.esmtp_features.get("size", "").strip()
    if announced.isdigit() and 0 < int(announced) < size:
        raise ItemTooLarge(f"the mail is {size} bytes and {settings.server} accepts at most {announced}")
    options = [f"SIZE={size}"] if smtp.has_extn("size") else []
    if eight_bit:
        if not smtp.has_extn("8bitmime"):
            raise MailDeliveryError(f"{settings.server} does not accept 8-bit messages (no 8BITMIME)")
        options.append("BODY=8BITMIME")
    _expect(smtp.mail(sender, options), (250,), "MAIL FROM")
    refused = {}
    for recipient in recipients:
        code, reply = smtp.rcpt(recipient)
        if code not in (250, 251):
            refused[recipient] = f"{code} {reply.decode('utf-8', 'replace')}"
    if len(refused) == len(recipients):
        smtp.rset()
        raise MailDeliveryError(f"every recipient was refused: {refused}")
    smtp.putcmd("data")
    _expect(smtp.getreply(), (354,), "DATA")
    for chunk in _dot_stuffed(spool):
        smtp.send(chunk)
    smtp.send(b".\r\n")
    _expect(smtp.getreply(), (250,), "end of data")


def _expect(reply: tuple[int, bytes], codes: tuple[int, ...], step: str) -> None:
    code, text = reply
    if code not in codes:
        answer = text.decode("utf-8", "replace")
        raise MailDeliveryError(f"the SMTP server answered {step} with {code} {answer}")


def _dot_stuffed(spool: IO[bytes]) -> Iterable[bytes]:
    """The DATA payload: lines starting with a dot get another (RFC 5321 4.5.2), sent in batches."""
    batch = bytearray()
    for line in spool:
        if line.startswith(b"."):
            batch += b"."
        batch += line
        if len(batch) >= _SEND_CHUNK:
            yield bytes(batch)
            batch.clear()
    if batch:
        yield bytes(batch)
