"""Sinks: where a batch's sealed packs go the moment they are sealed.

`StoreSink` puts them into the store: on a local store a pack is written in the store's own
``tmp/`` and renamed into ``packs/`` (no copy); on a remote store it is written to a local
spool file, uploaded, and the file removed. Packs go first and their index file second, so
whatever is indexed is really there; a run killed between the two leaves packs the next run
indexes from their own headers (`kloset.repair.adopt_unindexed_packs`). `NullSink` (a dry run)
keeps nothing and only counts.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable
from typing import Protocol

from kloset.pack import SealedPack
from kloset.repository import Repository


class PackSink(Protocol):
    spool_dir: str  # where PackWriter writes the pack before it is sealed

    def put(self, sealed: SealedPack) -> bool:
        """Take one sealed pack; True if it was sent (False: the store had it already)."""
        ...

    def index(self, packs: list[SealedPack]) -> str | None:
        """Record the packs put so far in an index file; returns its name."""
        ...

    def close(self) -> None: ...


def _store_has(repo: Repository, sealed: SealedPack) -> bool:
    if sealed.pack_id in repo.index.pack_sizes:
        return True
    try:
        return repo.storage.size(sealed.name) == sealed.size
    except OSError:
        return False


class StoreSink:
    """Sealed packs straight into the store; `spool_dir` is removed on close."""

    def __init__(self, repo: Repository, spool_dir: str) -> None:
        self.repo = repo
        self.spool_dir = spool_dir
        os.makedirs(spool_dir, exist_ok=True)
        self.sent_bytes = 0

    def put(self, sealed: SealedPack) -> bool:
        if _store_has(self.repo, sealed):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(sealed.path)
            return False
        self.repo.storage.put_local_file(sealed.path, sealed.name, move=True)
        self.sent_bytes += sealed.size
        return True

    def index(self, packs: list[SealedPack]) -> str | None:
        return self.repo.write_index(packs) if packs else None

    def close(self) -> None:
        shutil.rmtree(self.spool_dir, ignore_errors=True)


class NullSink:
    """A dry run: packs are sealed (so sizes are real) and thrown away."""

    def __init__(self, spool_dir: str) -> None:
        self.spool_dir = spool_dir
        os.makedirs(spool_dir, exist_ok=True)
        self.sent_bytes = 0

    def put(self, sealed: SealedPack) -> bool:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(sealed.path)
        self.sent_bytes += sealed.size
        return True

    def index(self, packs: list[SealedPack]) -> str | None:
        return None

    def close(self) -> None:
        shutil.rmtree(self.spool_dir, ignore_errors=True)


def store_packs(repo: Repository, packs: Iterable[SealedPack]) -> str | None:
    """Put already sealed local packs into the store, then index them (trees, rewrites)."""
    packs = list(packs)
    for sealed in packs:
        if not _store_has(repo, sealed):
            repo.storage.put_local_file(sealed.path, sealed.name, move=True)
    return repo.write_index(packs) if packs else None
