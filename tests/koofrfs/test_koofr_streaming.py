"""Large transfers keep memory flat: a 64 MiB streamed upload and ranged download."""

from __future__ import annotations

import hashlib
import random
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

from koofr_emulator import KoofrEmulator
from koofrfs.filesystem import KoofrFileSystem

SIZE = 64 * 2**20
PIECE = 2**20
MTIME = 1700000000123


def pieces() -> Iterator[bytes]:
    """Deterministic incompressible data, produced piece by piece (never 64 MiB at once)."""
    for i in range(SIZE // PIECE):
        yield random.Random(i).randbytes(PIECE)


def test_64mib_streamed_upload_and_download_with_flat_memory(
    kfs: KoofrFileSystem, koofr_emulator: KoofrEmulator, tmp_path: Path
) -> None:
    expected = hashlib.md5()
    koofr_emulator.reset_counters()
    tracemalloc.start()
    try:
        with kfs.open("big/64mib.bin", "wb", modified=MTIME) as f:
            for piece in pieces():
                expected.update(piece)
                f.write(piece)
        _, upload_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        got = hashlib.md5()
        with kfs.open("big/64mib.bin", "rb") as f:
            while chunk := f.read(PIECE):
                got.update(chunk)
        _, download_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert koofr_emulator.counters["files/put"] == 1
    info = kfs.info("big/64mib.bin")
    assert info["size"] == SIZE and info["modified"] == MTIME
    assert info["md5"] == expected.hexdigest() == got.hexdigest()
    # A few MiB of buffers, not the file. tracemalloc also counts the in-process emulator
    # (~4 MiB); the client alone peaks around 8.5 MiB up and 5 MiB down.
    assert upload_peak < 16 * 2**20, f"upload peak {upload_peak / 2**20:.1f} MiB"
    assert download_peak < 16 * 2**20, f"download peak {download_peak / 2**20:.1f} MiB"


def test_put_file_and_get_file_stream_from_and_to_disk(
    kfs: KoofrFileSystem, tmp_path: Path
) -> None:
    local = tmp_path / "src.bin"
    digest = hashlib.md5()
    with local.open("wb") as f:
        for i, piece in enumerate(pieces()):
            if i == 24:
                break
            digest.update(piece)
            f.write(piece)
    tracemalloc.start()
    try:
        kfs.put_file(str(local), "big/from-disk.bin")
        kfs.get_file("big/from-disk.bin", str(tmp_path / "back.bin"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert kfs.info("big/from-disk.bin")["md5"] == digest.hexdigest()
    assert hashlib.md5((tmp_path / "back.bin").read_bytes()).hexdigest() == digest.hexdigest()
    assert peak < 8 * 2**20, f"peak {peak / 2**20:.1f} MiB"
