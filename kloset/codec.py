"""Blob envelope: compress (when it pays), then seal, with a flag byte inside the ciphertext.

Layout of a stored blob: ``seal(flag || body, associated=blob_id)`` where flag 0 = raw body,
1 = zstd frame. Keeping the flag inside the sealed part means it is authenticated too.
"""

from __future__ import annotations

import threading

import zstandard

from kloset.crypto import Cipher
from kloset.errors import CorruptObject

FLAG_RAW = 0
FLAG_ZSTD = 1

_local = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    cache = getattr(_local, "cctx", None)
    if cache is None:
        cache = _local.cctx = {}
    cctx = cache.get(level)
    if cctx is None:
        cctx = cache[level] = zstandard.ZstdCompressor(level=level, write_content_size=True)
    return cctx


def _decompressor() -> zstandard.ZstdDecompressor:
    dctx = getattr(_local, "dctx", None)
    if dctx is None:
        dctx = _local.dctx = zstandard.ZstdDecompressor()
    return dctx


def pack_body(data: bytes | memoryview, level: int) -> bytes:
    """flag || body, choosing zstd only if it saves at least 1/32 of the size."""
    if level > 0 and len(data) >= 64:
        compressed = _compressor(level).compress(data)
        if len(compressed) + len(compressed) // 32 < len(data):
            return bytes((FLAG_ZSTD,)) + compressed
    return bytes((FLAG_RAW,)) + bytes(data)


def unpack_body(body: bytes, what: str, max_size: int = 1 << 31) -> bytes:
    if not body:
        raise CorruptObject(f"{what}: empty object")
    flag = body[0]
    if flag == FLAG_RAW:
        return body[1:]
    if flag == FLAG_ZSTD:
        frame = memoryview(body)[1:]
        try:
            # zstd allocates what the frame header declares before it reads a byte of data, so a
            # damaged header would ask for terabytes: refuse what no object of ours can be.
            declared = zstandard.frame_content_size(frame)
            if declared > max_size:
                raise CorruptObject(f"{what}: declares {declared:,} bytes uncompressed (damaged)")
            return _decompressor().decompress(frame, max_output_size=max_size)
        except zstandard.ZstdError as exc:
            raise CorruptObject(f"{what}: bad compressed data ({exc})") from exc
        except MemoryError:
            raise CorruptObject(f"{what}: too large to decompress (damaged)") from None
    raise CorruptObject(f"{what}: unknown encoding flag {flag}")


def encode(cipher: Cipher, data: bytes | memoryview, associated: bytes, level: int) -> bytes:
    """Compress-then-seal an object."""
    return cipher.seal(pack_body(data, level), associated)


def decode(cipher: Cipher, stored: bytes | memoryview, associated: bytes, what: str) -> bytes:
    """Open-then-decompress an object; every failure is a CorruptObject naming `what`."""
    return unpack_body(cipher.open(stored, associated, what), what)
