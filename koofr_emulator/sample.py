"""A small, realistic, deterministic sample tree for demos (``--seed-sample-data``).

Images are generated (valid PNG and baseline JPEG, no imaging library needed) so the demo has
binary files with believable headers; names cover spaces, ``&``, ``+``, ``%`` and Unicode.
"""

from __future__ import annotations

import hashlib
import random
import struct
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

from .paths import split_parent_name
from .store import PutOptions, Store

if TYPE_CHECKING:
    from .emulator import KoofrEmulator

_BASE_MS = 1_714_000_000_000  # 2024-04-24T23:06:40Z, plus a per-file offset


def png_bytes(width: int, height: int, seed: int = 0) -> bytes:
    """An RGB gradient PNG."""
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter: none
        for x in range(width):
            rows += bytes(
                (
                    (x * 255) // max(1, width - 1),
                    (y * 255) // max(1, height - 1),
                    (seed * 53 + x + y) % 256,
                )
            )

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + chunk(b"IEND", b"")
    )


# Standard luminance DC table (JPEG Annex K.3) and a one-symbol AC table (EOB only).
_DC_BITS = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
_DC_VALS = list(range(12))
_AC_BITS = [1] + [0] * 15
_AC_VALS = [0x00]


def _huffman_codes(bits: list[int], vals: list[int]) -> dict[int, tuple[int, int]]:
    codes: dict[int, tuple[int, int]] = {}
    code, k = 0, 0
    for length, count in enumerate(bits, start=1):
        for _ in range(count):
            codes[vals[k]] = (code, length)
            code += 1
            k += 1
        code <<= 1
    return codes


def jpeg_bytes(width: int, height: int, seed: int = 0) -> bytes:
    """A baseline greyscale JPEG made of flat 8x8 blocks (DC coefficients only)."""
    bw, bh = (width + 7) // 8, (height + 7) // 8
    dc_codes, ac_codes = _huffman_codes(_DC_BITS, _DC_VALS), _huffman_codes(_AC_BITS, _AC_VALS)
    out, acc, nbits = bytearray(), 0, 0

    def put(value: int, length: int) -> None:
        nonlocal acc, nbits
        acc = (acc << length) | (value & ((1 << length) - 1))
        nbits += length
        while nbits >= 8:
            nbits -= 8
            byte = (acc >> nbits) & 0xFF
            out.append(byte)
            if byte == 0xFF:
                out.append(0x00)

    prev = 0
    for by in range(bh):
        for bx in range(bw):
            level = 40 + (bx * 120 // max(1, bw) + by * 60 // max(1, bh) + seed * 17) % 190
            dc = 8 * (level - 128)  # quantiser 1: DC = 8 * (mean - 128)
            diff, prev = dc - prev, dc
            size = abs(diff).bit_length()
            put(*dc_codes[size])
            if size:
                put(diff if diff >= 0 else diff + (1 << size) - 1, size)
            put(*ac_codes[0x00])  # EOB: all AC coefficients zero
    if nbits:
        put((1 << (8 - nbits)) - 1, 8 - nbits)

    def segment(marker: int, payload: bytes) -> bytes:
        return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload

    app0 = b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    dqt = b"\x00" + b"\x01" * 64
    sof = struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00"
    dht = b"\x00" + bytes(_DC_BITS) + bytes(_DC_VALS) + b"\x10" + bytes(_AC_BITS) + bytes(_AC_VALS)
    sos = b"\x01\x01\x00\x00\x3f\x00"
    return (
        b"\xff\xd8"
        + segment(0xE0, app0)
        + segment(0xDB, dqt)
        + segment(0xC0, sof)
        + segment(0xC4, dht)
        + segment(0xDA, sos)
        + bytes(out)
        + b"\xff\xd9"
    )


def _text(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode("utf-8")


def sample_files() -> dict[str, bytes]:
    """Path -> content of the sample tree (directories implied; see ``SAMPLE_EMPTY_DIRS``)."""
    rnd = random.Random(20240517)
    return {
        "/Documents/README.txt": _text(
            ["Sample data served by the Koofr emulator.", "Safe to delete."]
        ),
        "/Documents/Notes/meeting notes 2024-05-17.md": _text(
            ["# Meeting", "", "- back up *everything*", "- test restores monthly"]
        ),
        "/Documents/Reports/Q1 report & summary.csv": _text(
            ["month,revenue,cost", "jan,1200,800", "feb,1350,820", "mar,1500,900"]
        ),
        "/Documents/Reports/Archive/draft+final 100%.txt": _text(["draft v7 (final, really)"]),
        "/Documents/Reports/Archive/Übersicht – Größen.txt": _text(["Ä Ö Ü ß — ünïcödé"]),
        "/Photos/sunset.png": png_bytes(64, 48, seed=1),
        "/Photos/Holidays 2023/beach.jpg": jpeg_bytes(64, 48, seed=2),
        "/Photos/Holidays 2023/café ☕.png": png_bytes(32, 32, seed=3),
        "/Photos/日本/桜.jpg": jpeg_bytes(48, 32, seed=4),
        "/Projects/kloset/src/main.py": _text(
            [
                "def main() -> None:",
                "    print('hello')",
                "",
                "if __name__ == '__main__':",
                "    main()",
            ]
        ),
        "/Projects/kloset/data/random.bin": rnd.randbytes(64 * 1024),
    }


SAMPLE_EMPTY_DIRS = ["/Empty Folder", "/Projects/kloset/build"]


def write_file(store: Store, path: str, data: bytes, modified_ms: int | None = None) -> None:
    """Create/overwrite one file through the store (parents created as needed)."""
    parent, name = split_parent_name(path)
    store.makedirs(parent)
    staged = store.new_temp()
    try:
        staged.write_bytes(data)
        md5 = hashlib.md5(data).hexdigest()
        opts = PutOptions(autorename=False, overwrite=True, modified=modified_ms)
        store.commit_put(parent, name, opts, staged, md5)
    finally:
        staged.unlink(missing_ok=True)


def seed_sample_data(target: KoofrEmulator | Store | str | Path) -> list[str]:
    """Fill a mount with the sample tree; returns the file paths written. Idempotent."""
    from .emulator import KoofrEmulator

    owned: KoofrEmulator | None = None
    if isinstance(target, Store):
        store = target
    elif isinstance(target, KoofrEmulator):
        store = target.store
    else:
        owned = KoofrEmulator(target)
        store = owned.store
    try:
        written = []
        for i, (path, data) in enumerate(sorted(sample_files().items())):
            write_file(store, path, data, modified_ms=_BASE_MS + i * 3_600_123)
            written.append(path)
        for d in SAMPLE_EMPTY_DIRS:
            store.makedirs(d)
        return written
    finally:
        if owned is not None:
            owned.stop()
