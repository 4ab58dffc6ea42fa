"""Packfiles: many sealed blobs in one file, with their own sealed header at the end.

Layout: ``blob_0 .. blob_n-1 || sealed_header || u32le(len(sealed_header)) || b"KLP1"``.
The header lists every blob (type, id, offset, length, raw length), so a lost index can be
rebuilt from packs alone. A pack's name is the unkeyed BLAKE3 of its whole content.
"""

from __future__ import annotations

import contextlib
import os
import struct
from dataclasses import dataclass, field

import blake3
import msgpack

from kloset import codec
from kloset.crypto import Cipher
from kloset.errors import CorruptObject

TRAILER_MAGIC = b"KLP1"
TRAILER = struct.Struct("<I4s")
HEADER_AD = b"kloset:pack-header"

BLOB_DATA = 0
BLOB_TREE = 1


@dataclass(frozen=True)
class BlobEntry:
    """Where one blob lives inside a pack."""

    type: int
    id: bytes
    offset: int
    length: int
    raw_length: int

    def to_list(self) -> list[object]:
        return [self.type, self.id, self.offset, self.length, self.raw_length]

    @classmethod
    def from_list(cls, item: list[object]) -> BlobEntry:
        t, bid, off, length, raw = item
        if not isinstance(bid, bytes) or len(bid) != 32:
            raise ValueError("bad blob id")
        # Indexes and headers of unencrypted stores are unauthenticated: never trust a number.
        nums = (t, off, length, raw)
        if not all(type(n) is int and n >= 0 for n in nums) or length == 0 or t > 255:
            raise ValueError("bad blob location")
        return cls(t, bid, off, length, raw)  # type: ignore[arg-type]


@dataclass
class SealedPack:
    """A finished pack sitting in the local spool, ready to upload."""

    pack_id: bytes
    path: str
    size: int
    blobs: list[BlobEntry] = field(default_factory=list)

    @property
    def name(self) -> str:
        return pack_name(self.pack_id)


def pack_name(pack_id: bytes) -> str:
    h = pack_id.hex()
    return f"packs/{h[:2]}/{h}"


class PackWriter:
    """Appends sealed blobs to a spool file and seals it with a header when full.

    The file is written as it grows (memory stays flat) and hashed on the fly, then renamed to
    its content-derived name, so a crash leaves only a ``.partial`` file to discard.
    """

    def __init__(self, cipher: Cipher, spool_dir: str, level: int) -> None:
        self.cipher = cipher
        self.spool_dir = spool_dir
        self.level = level
        self._tmp = os.path.join(spool_dir, f"{os.urandom(8).hex()}.partial")
        self._fh = open(self._tmp, "wb")  # noqa: SIM115 - closed in seal()/abort()
        self._hasher = blake3.blake3(max_threads=1)
        self.blobs: list[BlobEntry] = []
        self.size = 0
        self.raw_size = 0

    def add(self, blob_type: int, blob_id: bytes, data: bytes | memoryview) -> BlobEntry:
        sealed = codec.encode(self.cipher, data, blob_id, self.level)
        return self.add_sealed(blob_type, blob_id, sealed, len(data))

    def add_sealed(self, blob_type: int, blob_id: bytes, sealed: bytes, raw_len: int) -> BlobEntry:
        """Append an already sealed blob (used when copying or repacking without re-encoding)."""
        entry = BlobEntry(blob_type, blob_id, self.size, len(sealed), raw_len)
        self._fh.write(sealed)
        self._hasher.update(sealed)
        self.size += len(sealed)
        self.raw_size += raw_len
        self.blobs.append(entry)
        return entry

    def __len__(self) -> int:
        return len(self.blobs)

    def seal(self) -> SealedPack:
        header = msgpack.packb([b.to_list() for b in self.blobs])
        sealed_header = codec.encode(self.cipher, header, HEADER_AD, self.level)
        tail = sealed_header + TRAILER.pack(len(sealed_header), TRAILER_MAGIC)
        self._fh.write(tail)
        self._hasher.update(tail)
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        pack_id = self._hasher.digest()
        final = os.path.join(self.spool_dir, pack_id.hex())
        os.replace(self._tmp, final)
        return SealedPack(pack_id, final, self.size + len(tail), list(self.blobs))

    def abort(self) -> None:
        self._fh.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._tmp)


def parse_trailer(tail: bytes, name: str) -> int:
    """Length of the sealed header, from the last 8 bytes of a pack."""
    if len(tail) < TRAILER.size:
        raise CorruptObject(f"{name}: too short to be a pack")
    length, magic = TRAILER.unpack(tail[-TRAILER.size :])
    if magic != TRAILER_MAGIC:
        raise CorruptObject(f"{name}: bad pack trailer")
    return int(length)


def decode_header(cipher: Cipher, sealed_header: bytes, name: str) -> list[BlobEntry]:
    raw = codec.decode(cipher, sealed_header, HEADER_AD, f"{name} header")
    try:
        return [BlobEntry.from_list(item) for item in msgpack.unpackb(raw)]
    except Exception as exc:  # noqa: BLE001
        raise CorruptObject(f"{name}: pack header is damaged ({exc})") from exc


def read_header_from_bytes(cipher: Cipher, pack: bytes, name: str) -> list[BlobEntry]:
    """Parse the header of a pack held in memory (check --read-data, repair)."""
    hlen = parse_trailer(pack[-TRAILER.size :], name)
    end = len(pack) - TRAILER.size
    if hlen > end:
        raise CorruptObject(f"{name}: header length out of range")
    return decode_header(cipher, pack[end - hlen : end], name)
