"""Check, data: read whole packs (every blob opened and checked against its id), or sample
blobs by range.

A pack is checked against its name (the unkeyed BLAKE3 of its content) and its own header
against the index, so a damaged pack is named, and every blob it holds is marked.
"""

from __future__ import annotations

import math
import random
from concurrent.futures import ThreadPoolExecutor

from kloset.check.findings import Findings
from kloset.crypto import plain_hash
from kloset.errors import KlosetError
from kloset.fetch import fetch_blobs
from kloset.pack import BlobEntry, pack_name, read_header_from_bytes

MAX_LINES_PER_PACK = 5


def read_packs(found: Findings, pack_ids: list[bytes], listed: dict[bytes, int]) -> None:
    by_pack: dict[bytes, list[tuple[bytes, int, int]]] = {p: [] for p in pack_ids}
    for bid, loc in found.repo.index.items():
        if loc.pack_id in by_pack:
            by_pack[loc.pack_id].append((bid, loc.offset, loc.length))
    todo = [p for p in pack_ids if p in listed]
    total = sum(listed[p] for p in todo)
    found.emit("read_planned", {"packs": len(todo), "bytes": total})
    workers = 2 if found.repo.storage.local else 8
    with ThreadPoolExecutor(min(workers, max(1, len(todo)))) as pool:
        for pid, size, problems, bad, nblobs in pool.map(
            lambda p: _read_pack(found, p, by_pack[p]), todo
        ):
            found.report.packs_read += 1
            found.report.bytes_read += size
            found.report.blobs_read += nblobs
            if problems:
                # A truncated pack fails every blob: a few lines say enough.
                found.damaged(pid, problems[0], bad)
                for extra in problems[1:MAX_LINES_PER_PACK]:
                    found.report.error(extra)
                if len(problems) > MAX_LINES_PER_PACK:
                    more = len(problems) - MAX_LINES_PER_PACK
                    found.report.error(f"{pack_name(pid)}: ... and {more} more problems")
            found.emit("pack", {"bytes": size})


def _read_pack(
    found: Findings, pid: bytes, indexed: list[tuple[bytes, int, int]]
) -> tuple[bytes, int, list[str], list[bytes], int]:
    """(pack id, size, problems, damaged blob ids, blobs opened) for one whole pack."""
    name = pack_name(pid)
    try:
        data = found.repo.storage.read(name)
    except (OSError, KlosetError) as exc:
        return pid, 0, [f"{name}: cannot read: {exc}"], [b for b, _o, _l in indexed], 0
    problems: list[str] = []
    if plain_hash(data) != pid:
        problems.append(f"{name}: content does not match its name (damaged)")
    blobs: list[tuple[bytes, int, int]] = list(indexed)
    try:
        header = read_header_from_bytes(found.repo.cipher, data, name)
    except KlosetError as exc:
        problems.append(str(exc))
    else:
        problems.extend(_compare_header(name, header, indexed))
        known = {b for b, _o, _l in indexed}
        blobs += [(e.id, e.offset, e.length) for e in header if e.id not in known]
    bad: list[bytes] = []
    for bid, off, length in blobs:
        sealed = data[off : off + length]
        try:
            if len(sealed) != length:
                raise KlosetError(f"{name}: blob {bid.hex()[:16]} lies past the pack's end")
            plain = found.repo.decode_blob(bid, sealed, name)
            if found.repo.blob_id(plain) != bid:
                raise KlosetError(f"{name}: blob {bid.hex()[:16]}: content does not match id")
        except KlosetError as exc:
            bad.append(bid)
            problems.append(str(exc))
    return pid, len(data), problems, bad, len(blobs)


def sample_blobs(found: Findings, fraction: float) -> None:
    """Open a random fraction of the referenced data blobs (ranged reads, not whole packs)."""
    candidates = sorted(b for b in found.data_ids if b not in found.bad_blobs)
    if fraction <= 0 or not candidates:
        return
    count = min(len(candidates), max(1, math.ceil(len(candidates) * min(fraction, 1.0))))
    sample = random.sample(candidates, count)
    index = found.repo.index

    def failed(bid: bytes, exc: KlosetError) -> None:
        loc = index.get(bid)
        if loc is not None:
            found.damaged(loc.pack_id, str(exc), [bid])
        else:
            found.bad_blobs.add(bid)
            found.report.error(str(exc))

    for start in range(0, len(sample), 256):
        part = sample[start : start + 256]
        got = fetch_blobs(found.repo, part, on_error=failed)
        found.report.blobs_read += len(got)
        found.report.bytes_read += sum(index.get(b).length for b in got)  # type: ignore[union-attr]
        found.emit("blobs", {"blobs": len(part)})


def _compare_header(
    name: str, header: list[BlobEntry], indexed: list[tuple[bytes, int, int]]
) -> list[str]:
    """The pack's own header must agree with the index about every indexed blob."""
    where = {e.id: (e.offset, e.length) for e in header}
    out = []
    for bid, off, length in indexed:
        got = where.get(bid)
        if got is None:
            out.append(f"{name}: blob {bid.hex()[:16]} is indexed but not in the pack header")
        elif got != (off, length):
            out.append(f"{name}: blob {bid.hex()[:16]} is at {got}, the index says {(off, length)}")
    return out
