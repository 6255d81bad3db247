"""`check`: verify structure and index, and with `read_data` every blob (format §9).

Problems name the object and, for damaged or missing blobs, the blob ids and the item refs they
affect: `b<id>` for a whole item, `m<id>` for every manifest that lists a damaged chunk. Packs that
no index lists are garbage of an interrupted write, reported as warnings, never as errors.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from m365vault.repository import blob
from m365vault.repository.backends.base import BackendError, Handle, Kind
from m365vault.repository.blob import BlobType, Dictionary
from m365vault.repository.errors import IntegrityError, RepositoryError
from m365vault.repository.pack import PackEntry

if TYPE_CHECKING:
    from m365vault.repository.repo import Repository


@dataclass
class CheckProblem:
    object: str  # e.g. "data/ab/ab12…", "index/…", "keys/…"
    message: str
    blobs: list[str] = field(default_factory=list)  # hex ids of affected blobs
    refs: list[str] = field(default_factory=list)  # item refs the damage affects


@dataclass
class CheckReport:
    errors: list[CheckProblem] = field(default_factory=list)
    warnings: list[CheckProblem] = field(default_factory=list)
    packs: int = 0
    blobs: int = 0
    index_files: int = 0
    manifests: int = 0
    bytes_read: int = 0
    read_data: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors

    def affected_refs(self) -> list[str]:
        return sorted({ref for problem in self.errors for ref in problem.refs})


async def check_repository(
    repo: Repository, *, read_data: bool = False, refs: Iterable[str] | None = None
) -> CheckReport:
    """Check everything; `refs` (the caller's live items) are also resolved and reported if broken."""
    report = CheckReport(read_data=read_data)
    await repo.load_index()
    await _check_keys(repo, report)
    for name, problem in repo.index_problems.items():
        report.errors.append(CheckProblem(f"index/{name}", problem))
    report.index_files = len(repo.current_index_files())
    report.blobs = len(repo.index)
    damaged: set[bytes] = set()

    present = {info.handle.name: info.size async for info in repo.backend.list(Kind.DATA)}
    report.packs = len(present)
    for pack in sorted(present.keys() - repo.index.packs.keys()):
        report.warnings.append(
            CheckProblem(f"data/{pack[:2]}/{pack}", "pack is in no index: garbage of an interrupted write")
        )
    sem = asyncio.Semaphore(4)

    async def one_pack(pack: str, entries: Sequence[PackEntry]) -> None:
        async with sem:
            await _check_pack(repo, pack, entries, present.get(pack), read_data, report, damaged)

    await asyncio.gather(*(one_pack(p, e) for p, e in repo.index.packs.items()))

    # A blob is lost only if every copy of it is damaged.
    lost = {b for b in damaged if not _has_good_copy(repo, b, present, report)}
    manifests = await _check_manifests(repo, report, lost)
    _attach_refs(repo, report, lost, manifests)
    if refs is not None:
        # With the caller's items known, name only real items (a lost chunk whose manifest is
        # lost too cannot be told from a whole item otherwise).
        wanted = list(refs)
        wanted_set = set(wanted)
        for found in report.errors:
            found.refs = [r for r in found.refs if r in wanted_set]
        await _check_refs(repo, report, wanted, lost)
    return report


async def _check_keys(repo: Repository, report: CheckReport) -> None:
    async for info in repo.backend.list(Kind.KEYS):
        try:
            doc = json.loads(await repo.backend.load(info.handle))
            if doc.get("kdf") != "argon2id" or not doc.get("wrapped") or not doc.get("salt"):
                raise ValueError("missing fields")
        except (ValueError, BackendError) as err:
            report.errors.append(CheckProblem(str(info.handle), f"key file is damaged: {err}"))


async def _check_pack(
    repo: Repository,
    pack: str,
    entries: Sequence[PackEntry],
    size: int | None,
    read_data: bool,
    report: CheckReport,
    damaged: set[bytes],
) -> None:
    where = f"data/{pack[:2]}/{pack}"
    ids = [e.blob_id for e in entries]
    if size is None:
        report.errors.append(
            CheckProblem(where, "pack listed in the index is missing", [i.hex() for i in ids])
        )
        damaged.update(ids)
        return
    try:
        header = await repo.read_pack_header(pack, size)
    except (IntegrityError, BackendError) as err:
        report.errors.append(CheckProblem(where, f"pack header unreadable: {err}", [i.hex() for i in ids]))
        damaged.update(ids)
        return
    listed = {(e.blob_id, e.kind, e.offset, e.length, e.raw_length) for e in entries}
    found = {(e.blob_id, e.kind, e.offset, e.length, e.raw_length) for e in header}
    if not listed <= found:
        wrong = sorted({x[0] for x in listed - found})
        report.errors.append(CheckProblem(where, "index and pack header disagree", [i.hex() for i in wrong]))
        damaged.update(wrong)
    if not read_data:
        return
    try:
        data = await repo.backend.load(Handle(Kind.DATA, pack))
    except BackendError as err:
        report.errors.append(CheckProblem(where, f"pack unreadable: {err}", [i.hex() for i in ids]))
        damaged.update(ids)
        return
    report.bytes_read += len(data)
    bad = await repo.run_cpu(_verify_blobs, repo, data, header, await repo.load_dictionaries())
    if bad:
        report.errors.append(
            CheckProblem(where, f"{len(bad)} blob(s) fail authentication", [b.hex() for b in bad])
        )
        damaged.update(bad)


def _verify_blobs(
    repo: Repository, data: bytes, header: list[PackEntry], dictionaries: dict[bytes, Dictionary]
) -> list[bytes]:
    bad: list[bytes] = []
    for e in header:
        try:
            envelope = data[e.offset : e.offset + e.length]
            blob.decode(repo.keys, e.kind, e.blob_id, envelope, e.raw_length, dictionaries)
        except IntegrityError:
            bad.append(e.blob_id)
    return bad


def _has_good_copy(repo: Repository, blob_id: bytes, present: dict[str, int], report: CheckReport) -> bool:
    bad_packs = {p.object.rsplit("/", 1)[-1] for p in report.errors if blob_id.hex() in p.blobs}
    return any(loc.pack in present and loc.pack not in bad_packs for loc in repo.index.lookup(blob_id))


async def _check_manifests(
    repo: Repository, report: CheckReport, lost: set[bytes]
) -> dict[bytes, set[bytes]]:
    """Decode every manifest; each must list only chunks the index knows. Returns manifest -> chunks."""
    found: dict[bytes, set[bytes]] = {}
    for blob_id in list(repo.index.blob_ids()):
        if not any(loc.entry.kind is BlobType.MANIFEST for loc in repo.index.lookup(blob_id)):
            continue
        report.manifests += 1
        if blob_id in lost:
            continue
        try:
            manifest = await repo.load_manifest(blob_id)
        except (IntegrityError, BackendError, RepositoryError) as err:
            report.errors.append(
                CheckProblem(
                    f"manifest {blob_id.hex()}", f"unreadable: {err}", [blob_id.hex()], ["m" + blob_id.hex()]
                )
            )
            continue
        chunks = {cid for cid, _ in manifest.chunks}
        found[blob_id] = chunks
        missing = sorted(c for c in chunks if c not in repo.index)
        if missing:
            report.errors.append(
                CheckProblem(
                    f"manifest {blob_id.hex()}",
                    f"lists {len(missing)} chunk(s) the index does not know",
                    [c.hex() for c in missing],
                    ["m" + blob_id.hex()],
                )
            )
    return found


def _attach_refs(
    repo: Repository, report: CheckReport, lost: set[bytes], manifests: dict[bytes, set[bytes]]
) -> None:
    """Name the items a lost blob breaks: the manifests listing it, or the blob itself as an item."""
    for problem in report.errors:
        refs = set(problem.refs)
        for blob_id in {bytes.fromhex(b) for b in problem.blobs} & lost:
            kinds = {loc.entry.kind for loc in repo.index.lookup(blob_id)}
            owners = {m for m, chunks in manifests.items() if blob_id in chunks}
            refs.update("m" + m.hex() for m in owners)
            if BlobType.MANIFEST in kinds:
                refs.add("m" + blob_id.hex())
            elif not owners:
                refs.add("b" + blob_id.hex())
        problem.refs = sorted(refs)


async def _check_refs(repo: Repository, report: CheckReport, refs: Iterable[str], lost: set[bytes]) -> None:
    for ref in refs:
        try:
            needed = await repo.item_blobs(ref)
        except (RepositoryError, BackendError) as err:
            report.errors.append(CheckProblem(f"item {ref}", f"cannot be resolved: {err}", [], [ref]))
            continue
        missing = [b for b in needed if b not in repo.index or b in lost]
        if missing:
            report.errors.append(
                CheckProblem(
                    f"item {ref}",
                    "item needs blobs that are missing or damaged",
                    [b.hex() for b in missing],
                    [ref],
                )
            )


def format_report(report: CheckReport) -> str:
    lines = [
        f"checked {report.index_files} index file(s), {report.packs} pack(s), {report.blobs} blob(s), "
        f"{report.manifests} manifest(s)" + (f", read {report.bytes_read} bytes" if report.read_data else "")
    ]
    lines += [f"warning: {p.object}: {p.message}" for p in report.warnings]
    for p in report.errors:
        lines.append(f"error: {p.object}: {p.message}")
        if p.blobs:
            lines.append(f"  blobs: {', '.join(p.blobs[:20])}" + (" …" if len(p.blobs) > 20 else ""))
        if p.refs:
            lines.append(f"  affected items: {', '.join(p.refs[:50])}" + (" …" if len(p.refs) > 50 else ""))
    lines.append("no errors were found" if report.ok else f"{len(report.errors)} error(s) found")
    return "\n".join(lines)
