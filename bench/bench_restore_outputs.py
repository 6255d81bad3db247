"""Throughput of the restore outputs (.msg, streamed ZIP, mbox, mail spool), each against the
bare library step it is built on, measured in the same run on the same bytes."""

from __future__ import annotations

import asyncio
import base64
import os
import tempfile
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from m365vault.restore import mailer
from m365vault.restore.formats.mbox import MboxMessage, stream_mbox
from m365vault.restore.formats.msg import mime_to_msg
from m365vault.restore.formats.zipstream import ZipFile, stream_zip

MIB = 1024 * 1024


def _content(size: int) -> bytes:
    """Half random, half text: about as compressible as a mixed OneDrive."""
    text = b"Quarterly figures, region north, line item 42: 1,234.56 EUR\n" * 1024
    random = os.urandom(len(text))
    blocks = (size // (2 * len(text))) + 1
    return ((random + text) * blocks)[:size]


def _mail(attachment: bytes) -> bytes:
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = "Alice <alice@contoso.example>"
    message["To"] = "bob@contoso.example"
    message["Subject"] = "Benchmark"
    message["Date"] = "Tue, 03 Mar 2026 09:15:00 +0100"
    message.set_content("Hello\n" * 200)
    message.add_alternative("<p>Hello</p>" * 200, subtype="html")
    message.add_attachment(attachment, maintype="application", subtype="octet-stream", filename="a.bin")
    return message.as_bytes()


def _timed(work: Callable[[], object]) -> float:
    start = time.monotonic()
    work()
    return time.monotonic() - start


def _report(name: str, size: int, ours: float, peer_name: str, peer: float) -> None:
    print(
        f"{name:<34} {size / MIB / ours:8.1f} MiB/s   {peer_name:<28} {size / MIB / peer:8.1f} MiB/s"
        f"   ratio {peer / ours:5.2f}",
        flush=True,
    )


def bench_msg() -> None:
    mime = _mail(_content(2 * MIB))
    rounds = 10
    ours = _timed(lambda: [mime_to_msg(mime) for _ in range(rounds)])
    peer = _timed(
        lambda: [BytesParser(policy=policy.default).parsebytes(mime).get_body() for _ in range(rounds)]
    )
    _report(".msg from MIME (2 MiB items)", len(mime) * rounds, ours, "email parse alone", peer)
    print(f"{'':<34} {rounds / ours:8.1f} items/s", flush=True)


async def _drain(chunks: AsyncIterator[bytes]) -> int:
    return sum([len(chunk) async for chunk in chunks])


def bench_zip(level: int) -> None:
    data = _content(128 * MIB)
    block = 1 * MIB

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(data), block):
            yield data[start : start + block]

    entries = [ZipFile(f"file{index}.bin", pieces) for index in range(2)]
    ours = _timed(lambda: asyncio.run(_drain(stream_zip(entries, level=level))))

    def deflate() -> None:
        for _ in range(2):
            compressor = zlib.compressobj(level=level, wbits=-zlib.MAX_WBITS)
            for piece in pieces():
                compressor.compress(piece)
                zlib.crc32(piece)
            compressor.flush()

    peer = _timed(deflate)
    _report(f"streamed ZIP, deflate level {level}", 2 * len(data), ours, "zlib deflate+crc32 alone", peer)


def bench_mbox() -> None:
    mime = _mail(_content(4 * MIB))  # CRLF line ends, as Graph hands MIME out
    count = 16
    messages = [
        MboxMessage(lambda: [mime[i : i + 64 * 1024] for i in range(0, len(mime), 64 * 1024)])
    ] * count
    ours = _timed(lambda: asyncio.run(_drain(stream_mbox(messages))))
    peer = _timed(lambda: [mime.replace(b"\r\n", b"\n") for _ in range(count)])
    _report("mboxrd export", len(mime) * count, ours, "CRLF->LF replace alone", peer)


def bench_mail_spool() -> None:
    data = _content(30 * MIB)

    async def build() -> None:
        with tempfile.SpooledTemporaryFile(max_size=mailer.SPOOL_MEMORY_BYTES) as spool:
            writer = mailer._SpoolWriter(spool, 64 * MIB)

            async def chunks() -> AsyncIterator[bytes]:
                for start in range(0, len(data), MIB):
                    yield data[start : start + MIB]

            await writer.write_base64(chunks())

    ours = _timed(lambda: asyncio.run(build()))
    peer = _timed(lambda: base64.encodebytes(data))
    _report("mail spool (base64, 30 MiB file)", len(data), ours, "base64.encodebytes alone", peer)


def main() -> None:
    bench_msg()
    bench_zip(1)
    bench_zip(6)
    bench_mbox()
    bench_mail_spool()


if __name__ == "__main__":
    main()
