"""A small store with two snapshots of an awkward tree, shared by the mount, WebDAV, archive and
reader tests (a few MiB, so every test that reads it stays quick). The fixture is in conftest.py."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from helpers import (
    FAST_KDF,
    NORMAL_NS,
    OLD_NS,
    PASSPHRASE,
    Y2100_NS,
    cli,
    open_repo,
    random_bytes,
    write_file,
)

from kloset.repository import Repository
from kloset.snapshot import SnapshotHeader

VIDEO_SIZE = 6 * 1024 * 1024 + 12345  # several chunks with the default chunker


@dataclass
class SampleStore:
    store: Path
    source: Path
    first: SnapshotHeader  # tags: daily
    second: SnapshotHeader  # tags: daily, weird/tag (the latest)
    repo: Repository

    @property
    def env(self) -> dict[str, str]:
        return {"KLOSET_PASSPHRASE": PASSPHRASE}


def build_sample_source(root: Path) -> None:
    """Names, modes, times and links that a read-only view must show exactly as stored."""
    write_file(root / "video.mp4", random_bytes(VIDEO_SIZE, 7), NORMAL_NS)
    write_file(root / "docs" / "notes.txt", b"first notes\n", NORMAL_NS + 1)
    write_file(root / "docs" / "caf\u00e9 & space.md", b"# odd name\n", NORMAL_NS + 2)
    write_file(root / "docs" / "private.key", b"secret\n", NORMAL_NS + 3, mode=0o600)
    write_file(root / "bin" / "run.sh", b"#!/bin/sh\necho hi\n", NORMAL_NS + 4, mode=0o755)
    write_file(root / "times" / "old", b"1901\n", OLD_NS)
    write_file(root / "times" / "future", b"2100\n", Y2100_NS)
    write_file(root / "empty", b"", NORMAL_NS + 5)
    (root / "empty-dir").mkdir()
    os.symlink("docs/notes.txt", root / "link-to-notes")
    os.symlink("/nowhere/at/all", root / "dangling")
    for link in ("link-to-notes", "dangling"):
        os.utime(root / link, ns=(NORMAL_NS + 6, NORMAL_NS + 6), follow_symlinks=False)
    for dirpath, _dirs, _files in sorted(os.walk(root), key=lambda t: -t[0].count(os.sep)):
        os.utime(dirpath, ns=(NORMAL_NS + 9, NORMAL_NS + 9))


def build_sample_store(base: Path) -> SampleStore:
    store, source = base / "store", base / "src"
    build_sample_source(source)
    env = {"KLOSET_PASSPHRASE": PASSPHRASE}
    assert cli("at", store, "create", *FAST_KDF, env=env).code == 0
    assert cli("at", store, "backup", source, "--tag", "daily", env=env).code == 0
    write_file(source / "docs" / "notes.txt", b"second notes, longer\n", NORMAL_NS + 10)
    os.utime(source / "docs", ns=(NORMAL_NS + 9, NORMAL_NS + 9))
    res = cli("at", store, "backup", source, "-t", "daily", "-t", "weird/tag", env=env)
    assert res.code == 0, res.err
    repo = open_repo(store)
    first, second = repo.list_snapshots()
    return SampleStore(store, source, first, second, repo)
