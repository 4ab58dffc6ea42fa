"""Resume: the next backup adopts what dead runs left, instead of reading and storing it again.

A run is dead when the lock in its id no longer counts (`kloset.backup.runs`). It may have left:

* sealed packs in its local spool directory (sealed, not yet moved or uploaded into the store):
  each is verified (its name is the hash of its bytes, its header opens with the store's key)
  and put into the store; anything else there is a temporary and goes with the directory;
* packs in the store that no index names (killed between a pack and its index file): they are
  indexed from their own headers (`kloset.repair.adopt_unindexed_packs`);
* journals in the store: their entries for the same source whose chunks are all indexed are
  reused like a parent snapshot's, so those files are not read (or downloaded) again. They are
  deleted when the adopting run commits; `prune` removes the rest after its grace period.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass, field

import blake3

from kloset.backup.journal import Reusable, list_runs, reusable_from
from kloset.backup.runs import RUN_PREFIX, STORE_ID_FILE, is_dead, live_lock_ids
from kloset.errors import KlosetError
from kloset.pack import pack_name, read_header_from_bytes
from kloset.repository import Repository


@dataclass
class Adoption:
    """What a backup took over from dead runs."""

    reusable: Reusable = field(default_factory=Reusable)
    spool_packs: int = 0  # sealed packs moved or uploaded from dead runs' spools
    spool_bytes: int = 0
    spool_dirs_removed: int = 0
    store_packs_indexed: int = 0


def _belongs(repo: Repository, run_dir: str, spool_root: str) -> bool:
    if repo.storage.local and os.path.realpath(spool_root).startswith(
        os.path.realpath(repo.storage.path("")) + os.sep
    ):
        return True  # inside the store itself
    try:
        with open(os.path.join(run_dir, STORE_ID_FILE), encoding="ascii") as fh:
            return fh.read().strip() == repo.config.store_id
    except OSError:
        return False


def sealed_packs(run_dir: str) -> list[str]:
    """Paths of files in a run directory named like a sealed pack (64 hex digits)."""
    found = []
    for dirpath, _dirs, files in os.walk(run_dir):
        for name in files:
            if len(name) == 64 and all(c in "0123456789abcdef" for c in name):
                found.append(os.path.join(dirpath, name))
    return found


def verify_spool_pack(repo: Repository, path: str) -> bool:
    """A spool pack is good when its name is its hash and its header opens with our key."""
    with open(path, "rb") as fh:
        data = fh.read()
    if blake3.blake3(data).hexdigest() != os.path.basename(path):
        return False
    try:
        return bool(read_header_from_bytes(repo.cipher, data, path))
    except KlosetError:
        return False


def adopt_spool(repo: Repository, run_dir: str) -> tuple[int, int]:
    """Put a dead run's good sealed packs into the store; returns (packs, bytes)."""
    packs = nbytes = 0
    for path in sealed_packs(run_dir):
        if not verify_spool_pack(repo, path):
            continue
        name = pack_name(bytes.fromhex(os.path.basename(path)))
        size = os.path.getsize(path)
        with contextlib.suppress(FileNotFoundError):
            if repo.storage.size(name) == size:
                continue
        repo.storage.put_local_file(path, name, move=True)
        packs += 1
        nbytes += size
    return packs, nbytes


def dead_spool_dirs(repo: Repository, spool_root: str, live: set[str], own: str) -> list[str]:
    """Run directories of this store under `spool_root` whose runs are dead."""
    out = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(spool_root):
            if not entry.name.startswith(RUN_PREFIX) or not entry.is_dir(follow_symlinks=False):
                continue
            run_id = entry.name[len(RUN_PREFIX) :]
            if run_id == own or not is_dead(run_id, live):
                continue
            if _belongs(repo, entry.path, spool_root):
                out.append(entry.path)
    return out


def adopt_dead_runs(repo: Repository, source: str, spool_root: str, own_run: str) -> Adoption:
    """Take over what dead runs left (see the module docstring); `own_run` is never touched."""
    from kloset.repair import adopt_unindexed_packs

    result = Adoption()
    runs = {r: objs for r, objs in list_runs(repo).items() if r != own_run}
    local = [
        e.name
        for e in (os.scandir(spool_root) if os.path.isdir(spool_root) else [])
        if e.name.startswith(RUN_PREFIX) and e.name != RUN_PREFIX + own_run
    ]
    live = live_lock_ids(repo) if runs or local else set()
    for run_dir in dead_spool_dirs(repo, spool_root, live, own_run):
        packs, nbytes = adopt_spool(repo, run_dir)
        result.spool_packs += packs
        result.spool_bytes += nbytes
        shutil.rmtree(run_dir, ignore_errors=True)
        result.spool_dirs_removed += 1
    result.store_packs_indexed = adopt_unindexed_packs(repo).packs
    dead = {r: objs for r, objs in runs.items() if is_dead(r, live)}
    if dead:
        result.reusable = reusable_from(repo, source, dead)
    return result
