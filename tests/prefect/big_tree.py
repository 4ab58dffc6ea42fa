"""Large test trees made cheaply: BLAKE3's output stream is incompressible, never repeats
across files and costs ~0.4 s per 200 MiB (random.randbytes costs four times that)."""

from __future__ import annotations

import os
from pathlib import Path

from blake3 import blake3

MIB = 1024 * 1024


def make_tree(root: Path, total: int, *, seed: str = "tree") -> Path:
    """Files of 8 KiB to 3 MiB adding up to `total` bytes, three levels deep, each with its
    own mtime (nanoseconds included, so a restore that rounds them is caught)."""
    written, i = 0, 0
    while written < total:
        size = min(total - written, 8 * 1024 + (i * 7919 * 1031) % (3 * MIB))
        path = root / f"d{i % 5}" / f"e{i % 3}" / f"file-{i:04d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blake3(f"{seed}-{i}".encode()).digest(length=size))
        os.utime(path, ns=(1_700_000_000_000_000_000 + i, 1_700_000_000_123_456_789 + i * 1000))
        written += size
        i += 1
    return root


def fingerprint(root: Path) -> dict[str, tuple[str, int]]:
    """{relative path: (BLAKE3 of the bytes, mtime in ns)} of every file below `root`."""
    return {
        p.relative_to(root).as_posix(): (blake3(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
