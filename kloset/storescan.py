"""What is physically in a store, independent of what the index says.

Prune, repair, sync and crash recovery all need the same three facts the index cannot give:
which objects exist right now (listing caches lie when several processes share a store), how
old they are (the grace period that protects a running backup), and what a pack holds
according to its own header. Sealed blobs are read by coalesced byte ranges, never whole packs.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from kloset.errors import CorruptObject, KlosetError
from kloset.pack import TRAILER, BlobEntry, decode_header, parse_trailer
from kloset.repository import Repository
from kloset.storage import Storage

TAIL_GUESS = 64 * 1024
MAX_GAP = 256 * 1024
MAX_SPAN = 16 * 1024 * 1024
TMP_MARK = ".tmp-"


@dataclass(frozen=True)
class StoredObject:
    """One object in the store: name relative to the root, size, and mtime (None if unknown)."""

    name: str
    size: int
    mtime: float | None

    def age(self, now: float | None = None) -> float | None:
        if self.mtime is None:
            return None
        return (time.time() if now is None else now) - self.mtime

    def older_than(self, seconds: float, now: float | None = None) -> bool:
        """True only when the age is known: an object of unknown age is treated as young."""
        age = self.age(now)
        return age is not None and age >= seconds


def list_objects(storage: Storage, directory: str) -> list[StoredObject]:
    """A fresh listing (no directory cache) of every file under `directory`, with mtimes."""
    return [StoredObject(n, size, mtime) for n, size, mtime in storage.list_detailed(directory)]


def pack_id_of(name: str) -> bytes | None:
    """The pack id in `packs/ab/abcd…`, or None for anything that is not a finished pack."""
    parts = name.split("/")
    if len(parts) != 3 or parts[0] != "packs" or len(parts[2]) != 64 or parts[1] != parts[2][:2]:
        return None
    try:
        return bytes.fromhex(parts[2])
    except ValueError:
        return None


def list_packs(storage: Storage) -> tuple[dict[bytes, StoredObject], list[StoredObject]]:
    """(pack id → object, other files under packs/ such as interrupted uploads)."""
    packs: dict[bytes, StoredObject] = {}
    other: list[StoredObject] = []
    for obj in list_objects(storage, "packs"):
        pid = pack_id_of(obj.name)
        if pid is None:
            other.append(obj)
        else:
            packs[pid] = obj
    return packs, other


def check_entries(entries: list[BlobEntry], data_end: int, name: str) -> list[BlobEntry]:
    """Refuse a header whose blobs do not fit the pack (unencrypted headers are unauthenticated)."""
    for e in entries:
        if e.offset < 0 or e.length <= 0 or e.raw_length < 0 or e.offset + e.length > data_end:
            raise CorruptObject(f"{name}: pack header lists a blob outside the pack")
    return entries


def read_pack_header(repo: Repository, name: str, size: int) -> list[BlobEntry]:
    """A pack's own list of blobs, from one ranged read of its tail (two if the header is big)."""
    if size < TRAILER.size:
        raise CorruptObject(f"{name}: too short to be a pack")
    want = min(size, TAIL_GUESS)
    try:
        tail = repo.storage.read_range(name, size - want, want)
    except FileNotFoundError as exc:
        raise CorruptObject(f"{name}: pack is missing") from exc
    hlen = parse_trailer(tail, name)
    data_end = size - TRAILER.size - hlen
    if hlen <= 0 or data_end < 0:
        raise CorruptObject(f"{name}: header length out of range")
    if hlen + TRAILER.size <= want:
        sealed = tail[want - TRAILER.size - hlen : want - TRAILER.size]
    else:
        sealed = repo.storage.read_range(name, data_end, hlen)
    return check_entries(decode_header(repo.cipher, sealed, name), data_end, name)


def read_sealed(
    storage: Storage, name: str, members: Iterable[tuple[bytes, int, int]]
) -> dict[bytes, bytes]:
    """Sealed bytes of blobs (id, offset, length) in one pack, nearby ranges read together."""
    wanted = sorted(set(members), key=lambda m: m[1])
    out: dict[bytes, bytes] = {}
    group: list[tuple[bytes, int, int]] = []

    def flush() -> None:
        if not group:
            return
        start = group[0][1]
        end = max(off + length for _b, off, length in group)
        try:
            data = storage.read_range(name, start, end - start)
        except FileNotFoundError as exc:
            raise CorruptObject(f"{name}: pack is missing") from exc
        for bid, off, length in group:
            out[bid] = data[off - start : off - start + length]
        group.clear()

    for bid, off, length in wanted:
        if group:
            start = group[0][1]
            end = max(o + n for _b, o, n in group)
            if off - end > MAX_GAP or off + length - start > MAX_SPAN:
                flush()
        group.append((bid, off, length))
    flush()
    return out


def verify_sealed(repo: Repository, blob_id: bytes, sealed: bytes, where: str) -> None:
    """Authenticate (and for plain stores, hash-check) a sealed blob before copying it as-is."""
    repo.decode_blob(blob_id, sealed, where)


def read_index_file(repo: Repository, name: str) -> list[tuple[bytes, int, list[BlobEntry]]]:
    from kloset.index import open_index

    try:
        raw = repo.storage.read(name)
    except FileNotFoundError as exc:
        raise CorruptObject(f"{name}: index file vanished") from exc
    return open_index(repo.cipher, name, raw)


def describe_error(exc: BaseException) -> str:
    """One line for a report, whatever failed."""
    if isinstance(exc, KlosetError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


__all__ = [
    "StoredObject",
    "check_entries",
    "describe_error",
    "list_objects",
    "list_packs",
    "pack_id_of",
    "read_index_file",
    "read_pack_header",
    "read_sealed",
    "verify_sealed",
]
