"""The index: which pack holds each blob, loaded from many immutable index files.

Every upload writes one index file describing the packs it just stored (packs first, index
second), so a run killed midway still leaves indexed, reusable packs. Index files are named by
the keyed hash of their plaintext and never modified; prune replaces them wholesale.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import msgpack

from kloset import codec
from kloset.crypto import Cipher
from kloset.errors import CorruptObject
from kloset.pack import BlobEntry, SealedPack

INDEX_AD = b"kloset:index"


@dataclass(frozen=True)
class Location:
    """A blob's place in the store."""

    pack_id: bytes
    offset: int
    length: int
    raw_length: int
    type: int


def encode_index(packs: Iterable[tuple[bytes, int, list[BlobEntry]]]) -> bytes:
    """Plaintext of an index file: [[pack_id, pack_size, [[type,id,off,len,raw]...]], ...]."""
    return msgpack.packb(
        {"v": 1, "packs": [[pid, size, [b.to_list() for b in blobs]] for pid, size, blobs in packs]}
    )


def decode_index(raw: bytes, name: str) -> list[tuple[bytes, int, list[BlobEntry]]]:
    try:
        doc = msgpack.unpackb(raw)
        out = [
            (bytes(pid), size, [BlobEntry.from_list(b) for b in blobs])
            for pid, size, blobs in doc["packs"]
        ]
        if not all(len(pid) == 32 and type(size) is int and size >= 0 for pid, size, _b in out):
            raise ValueError("bad pack entry")
        return out
    except Exception as exc:  # noqa: BLE001
        raise CorruptObject(f"{name}: index file is damaged ({exc})") from exc


def seal_index(cipher: Cipher, plaintext: bytes, level: int) -> tuple[str, bytes]:
    """(store name, sealed bytes) of an index file."""
    name = "index/" + cipher.blob_id(plaintext).hex()
    return name, codec.encode(cipher, plaintext, INDEX_AD, level)


def open_index(
    cipher: Cipher, name: str, sealed: bytes
) -> list[tuple[bytes, int, list[BlobEntry]]]:
    raw = codec.decode(cipher, sealed, INDEX_AD, name)
    if "index/" + cipher.blob_id(raw).hex() != name:
        raise CorruptObject(f"{name}: content does not match its name")
    return decode_index(raw, name)


class Index:
    """In-memory map blob id → Location, plus pack sizes, merged from all index files."""

    def __init__(self) -> None:
        self._blobs: dict[bytes, tuple[bytes, int, int, int, int]] = {}
        self.pack_sizes: dict[bytes, int] = {}
        self.files: set[str] = set()

    def __len__(self) -> int:
        return len(self._blobs)

    def __contains__(self, blob_id: object) -> bool:
        return blob_id in self._blobs

    def add_pack(self, pack_id: bytes, size: int, blobs: Iterable[BlobEntry]) -> None:
        self.pack_sizes[pack_id] = size
        for b in blobs:
            # The first copy wins; duplicates in other packs are garbage for prune to reclaim.
            self._blobs.setdefault(b.id, (pack_id, b.offset, b.length, b.raw_length, b.type))

    def add_sealed(self, packs: Iterable[SealedPack]) -> None:
        for p in packs:
            self.add_pack(p.pack_id, p.size, p.blobs)

    def get(self, blob_id: bytes) -> Location | None:
        hit = self._blobs.get(blob_id)
        return Location(*hit) if hit is not None else None

    def ids(self) -> Iterator[bytes]:
        return iter(self._blobs)

    def items(self) -> Iterator[tuple[bytes, Location]]:
        for bid, hit in self._blobs.items():
            yield bid, Location(*hit)
