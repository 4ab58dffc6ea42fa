"""Shared by the viewer tests: the test store, reading a folder back, waiting for a restore job.

The store's source tree covers what the pages must handle: nested folders, source code, an
image, a binary file spanning several chunks, a text file over the preview cap, a symlink, a
non-ASCII name and a folder big enough to be stored as paged trees (more than one tree page).
It is built with the engine API, not the CLI.
"""

from __future__ import annotations

import os
import random
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kloset.backup import BackupOptions
from kloset.backup.pipeline import run_backup
from kloset.config import ChunkerParams
from kloset.crypto import KdfParams
from kloset.locations import open_source, open_storage
from kloset.repository import Repository
from kloset.snapshot import SnapshotHeader
from kloset.tree import PAGE_SIZE

PASSPHRASE = "ui tests passphrase"
MANY = PAGE_SIZE + 150  # one folder stored as two tree pages


def png_bytes(width: int = 96, height: int = 64) -> bytes:
    """A real RGB PNG (a colour gradient), written with zlib so no imaging library is needed."""
    rows = b"".join(
        b"\0" + bytes(v for x in range(width) for v in (x * 255 // width, y * 255 // height, 160))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


PYTHON_SOURCE = '''"""A small module to preview."""

import os


def greet(name: str) -> str:
    # say hello
    return f"hello {name}" + str(42)


class Greeter:
    pass
'''


def write_source(root: Path) -> None:
    rnd = random.Random(7)
    files = {
        "docs/readme.md": b"# Readme\n\nSome *notes* about `kloset`.\n",
        "docs/notes.txt": b"first version of the notes\n",
        "docs/sub/deep.txt": b"deep inside\n" * 10,
        "docs/résumé ü.txt": b"unicode name\n",
        "src/app.py": PYTHON_SOURCE.encode(),
        "src/util.js": b"export function add(a, b) { return a + b; } // sum\n",
        "src/page.html": b"<html><script>alert(1)</script></html>\n",
        "images/logo.png": png_bytes(),
        "data/blob.bin": rnd.randbytes(700 * 1024),
        "data/big.txt": b"".join(b"line %06d of a long text file\n" % i for i in range(12000)),
        "empty/.keep": b"",
    }
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    many = root / "many"
    many.mkdir()
    for i in range(MANY):
        (many / f"f{i:05d}.txt").write_bytes(b"%d\n" % i)
    os.symlink("docs/readme.md", root / "link-to-readme")


@dataclass
class UiStore:
    """The store, its snapshots and the source folder as it was at the second snapshot."""

    location: str
    repo: Repository
    source: Path
    first: SnapshotHeader
    second: SnapshotHeader
    damaged: SnapshotHeader
    first_notes: bytes


def _backup(repo: Repository, source: Path, tags: list[str]) -> SnapshotHeader:
    report = run_backup(
        repo, open_source(str(source)), BackupOptions(tags=tags, batch_files=2000), workers=1
    )
    return repo.load_snapshot(bytes.fromhex(report.commit.snapshot_id))


def build_store(base: Path) -> UiStore:
    """Source tree, store and snapshots under `base`, made with the engine API (no CLI)."""
    source = base / "source"
    source.mkdir()
    write_source(source)
    location = str(base / "store")
    repo = Repository.create(
        open_storage(location),
        PASSPHRASE,
        kdf=KdfParams.fresh(memory_kib=1024, iterations=1),
        # Small chunks so a few hundred KiB span several of them (ranged reads across chunks).
        chunker=ChunkerParams(min_size=16 * 1024, avg_size=32 * 1024, max_size=128 * 1024),
    )
    first_notes = (source / "docs/notes.txt").read_bytes()
    first = _backup(repo, source, ["first"])
    time.sleep(0.01)
    (source / "docs/notes.txt").write_bytes(b"second version of the notes, longer\n")
    (source / "src/util.js").unlink()
    (source / "added").mkdir()
    (source / "added/new.txt").write_bytes(b"brand new\n")
    second = _backup(repo, source, ["second", "nightly"])
    # A snapshot that recorded read errors, dated before the others (so "latest" stays second).
    damaged = SnapshotHeader(
        root=first.root,
        time_ns=first.time_ns - 3600 * 10**9,
        source=first.source,
        host=first.host,
        tags=["with-errors"],
        stats=dict(first.stats),
        errors=[
            ("/docs/locked.txt", "permission denied"),
            ("/data/gone.bin", "vanished during backup"),
        ],
        errors_total=2,
    )
    repo.save_snapshot(damaged)
    return UiStore(location, repo, source, first, second, damaged, first_notes)


def folder_contents(root: Path) -> dict[str, bytes | str]:
    """relative path → file bytes, or "-> target" for a symlink, or "<dir>"; lstat semantics."""
    out: dict[str, bytes | str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            if full.is_symlink():
                out[rel] = "-> " + os.readlink(full)
            elif full.is_dir():
                out[rel] = "<dir>"
            else:
                out[rel] = full.read_bytes()
    return out


def wait_for_job(get: Callable[[], dict[str, Any]], timeout: float = 30.0) -> dict[str, Any]:
    """Poll a job document until it is done or failed."""
    deadline = time.monotonic() + timeout
    while True:
        doc = get()
        if doc["state"] in ("done", "failed"):
            return doc
        if time.monotonic() > deadline:
            raise AssertionError(f"restore job still {doc['state']} after {timeout}s: {doc}")
        time.sleep(0.05)
