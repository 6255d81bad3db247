"""Streamed ZIPs read back with the standard library's zipfile, including a ZIP64-sized member."""

from __future__ import annotations

import asyncio
import io
import threading
import tracemalloc
import zipfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from m365vault.restore.errors import NothingToSave
from m365vault.restore.formats.zipstream import DocumentSource, ZipFile, save_documents, stream_zip
from tests.restore_io.conftest import ATTACHMENT_BYTES, chunked, collect

MODIFIED = datetime(2026, 2, 1, 12, 30, 10, tzinfo=UTC)


def _document(path: str, content: bytes) -> DocumentSource:
    async def chunks() -> AsyncIterator[bytes]:
        for piece in chunked(content, 5000):
            yield piece

    return DocumentSource(path, chunks, MODIFIED, len(content))


async def test_one_document_is_the_file_itself() -> None:
    download = save_documents([_document("Reports/Q1 report.docx", ATTACHMENT_BYTES)])
    assert download.filename == "Q1 report.docx"
    assert download.media_type.endswith("wordprocessingml.document")
    assert download.size == len(ATTACHMENT_BYTES)
    assert await collect(download.chunks) == ATTACHMENT_BYTES


async def test_folder_tree_as_zip_keeps_paths_bytes_times_and_empty_folders() -> None:
    opened: list[str] = []

    def tracked(path: str, content: bytes) -> DocumentSource:
        source = _document(path, content)

        def open_lazily() -> AsyncIterator[bytes]:
            opened.append(path)
            return source.open()  # type: ignore[return-value]

        return DocumentSource(path, open_lazily, MODIFIED)

    documents = [
        tracked("Projects/a.txt", b"alpha" * 1000),
        tracked("Projects/Sub/b.bin", ATTACHMENT_BYTES),
        tracked("Projects/a.txt", b"second version"),
        tracked("../../etc/passwd", b"not escaping"),
        tracked("Köln/Bericht – März.txt", b"utf-8 names"),
    ]
    download = save_documents(documents, folders=["Projects/Empty"], archive_name="OneDrive of Bob.zip")
    assert download.filename == "OneDrive of Bob.zip"
    assert opened == []  # nothing is read before the response streams
    archive = zipfile.ZipFile(io.BytesIO(await collect(download.chunks)))
    assert archive.testzip() is None
    assert archive.namelist() == [
        "Projects/Empty/",
        "Projects/a.txt",
        "Projects/Sub/b.bin",
        "Projects/a (2).txt",
        "etc/passwd",
        "Köln/Bericht – März.txt",
    ]
    assert archive.read("Projects/Sub/b.bin") == ATTACHMENT_BYTES
    assert archive.read("Projects/a (2).txt") == b"second version"
    assert archive.getinfo("Projects/a.txt").date_time == (2026, 2, 1, 12, 30, 10)
    assert archive.getinfo("Projects/Empty/").is_dir()
    assert archive.read("Köln/Bericht – März.txt") == b"utf-8 names"
    assert archive.getinfo("Köln/Bericht – März.txt").flag_bits & 0x800  # names flagged as UTF-8
    assert opened == [document.path for document in documents]


async def test_as_zip_for_one_document_and_nothing_to_save() -> None:
    download = save_documents([_document("one.txt", b"1")], as_zip=True)
    assert download.media_type == "application/zip"
    assert zipfile.ZipFile(io.BytesIO(await collect(download.chunks))).read("one.txt") == b"1"
    with pytest.raises(NothingToSave):
        save_documents([])


@pytest.mark.slow
async def test_zip64_member_past_4_gib_streams_in_bounded_memory(tmp_path: Path) -> None:
    """4 GiB + 1 MiB generated lazily, zipped, written out chunk by chunk and read back."""
    block = bytes(range(256)) * 4096  # 1 MiB, not all zeros so the CRC means something
    count = 4 * 1024 + 1

    def lazily() -> Iterator[bytes]:
        for _ in range(count):
            yield block

    path = tmp_path / "big.zip"
    tracemalloc.start()
    try:
        with path.open("wb") as sink:
            entries = [
                ZipFile("big.bin", lazily, MODIFIED),
                ZipFile("small.txt", lambda: [b"after"], MODIFIED),
            ]
            async for chunk in stream_zip(entries, level=1):
                sink.write(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024 * 1024, f"peak {peak} bytes while zipping 4 GiB"

    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("big.bin")
        assert info.file_size == count * len(block) > 0xFFFFFFFF
        expected, total = block * 8, 0
        with archive.open(info) as member:  # zipfile checks the CRC at the end
            while piece := member.read(len(expected)):
                assert piece == expected[: len(piece)]
                total += len(piece)
        assert total == info.file_size
        assert archive.read("small.txt") == b"after"


async def test_a_client_that_goes_away_stops_the_archive(tmp_path: Path) -> None:
    """An HTTP client disconnecting closes the stream: reading stops and nothing hangs."""
    produced: list[int] = []

    def endless() -> Iterator[bytes]:
        for index in range(100_000):
            produced.append(index)
            yield bytes(range(256)) * 256

    stream = stream_zip([ZipFile("endless.bin", endless)], level=1)
    first = await anext(stream)
    assert first.startswith(b"PK\x03\x04")
    await asyncio.wait_for(stream.aclose(), timeout=10)  # type: ignore[attr-defined]
    for _ in range(50):  # the archive's writer thread ends too
        if not [t for t in threading.enumerate() if t.name.startswith("zipstream")]:
            break
        await asyncio.sleep(0.1)
    assert not [t for t in threading.enumerate() if t.name.startswith("zipstream")]
    read_so_far = len(produced)
    await asyncio.sleep(0.2)
    assert len(produced) == read_so_far < 1000


async def test_many_archives_at_once_do_not_starve_the_default_executor() -> None:
    """Members whose reads use worker threads (decryption, say) while many ZIPs stream at once."""

    def member() -> AsyncIterator[bytes]:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(3):
                yield await asyncio.to_thread(bytes, 1000)

        return chunks()

    async def one_archive() -> bytes:
        return await collect(stream_zip([ZipFile(f"m{index}.bin", member) for index in range(3)]))

    archives = await asyncio.wait_for(asyncio.gather(*(one_archive() for _ in range(40))), timeout=30)
    for content in archives:
        assert zipfile.ZipFile(io.BytesIO(content)).read("m2.bin") == bytes(3000)


async def test_a_failing_read_reaches_the_consumer() -> None:
    def broken() -> AsyncIterator[bytes]:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"first"
            raise OSError("pack file unreadable")

        return chunks()

    with pytest.raises(OSError, match="pack file unreadable"):
        await collect(stream_zip([ZipFile("a.bin", broken)]))
