"""Leftovers of killed runs and interrupted writes: `*.tmp` objects, spool directories, journals.

A run that dies leaves half-written objects (named with a tmp mark), its spool directory and
its batch journals (``runs/<run id>/``). The next backup of the same source adopts what it can
(`kloset.backup.adopt`); what is left is harmless to readers, shown by `info`, and removed by
prune once older than a grace period, so a run that is merely slow is never robbed of its files.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass
from typing import Any

from kloset.repository import Repository, default_spool_dir
from kloset.storescan import TMP_MARK, StoredObject, list_objects


@dataclass
class Leftovers:
    """What dead runs left: spool directories on this machine and journals in the store."""

    spool_entries: int = 0
    spool_bytes: int = 0
    journal_runs: int = 0
    journals: int = 0
    journal_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        if not (self.spool_entries or self.journal_runs):
            return "none"
        return (
            f"{self.journals} journals of {self.journal_runs} dead runs "
            f"({self.journal_bytes:,} bytes); spool: {self.spool_entries} entries "
            f"({self.spool_bytes:,} bytes)"
        )


def spool_root(repo: Repository) -> str:
    return repo.storage.path("tmp") if repo.storage.local else default_spool_dir(repo.storage)


def _size(path: str) -> int:
    if not os.path.isdir(path):
        return os.lstat(path).st_size
    return sum(os.lstat(os.path.join(d, f)).st_size for d, _s, fs in os.walk(path) for f in fs)


def _dead_runs(repo: Repository) -> dict[str, list[StoredObject]]:
    from kloset.backup.journal import list_runs
    from kloset.backup.runs import is_dead, live_lock_ids

    runs = list_runs(repo)
    live = live_lock_ids(repo) if runs else set()
    return {r: objs for r, objs in runs.items() if is_dead(r, live)}


def _spool_entries(repo: Repository) -> list[str]:
    """This store's entries under the spool root, except live runs' directories."""
    from kloset.backup.adopt import _belongs
    from kloset.backup.runs import RUN_PREFIX, is_dead, live_lock_ids

    root = spool_root(repo)
    if not os.path.isdir(root):
        return []
    entries = list(os.scandir(root))
    live = live_lock_ids(repo) if entries else set()
    out = []
    for entry in entries:
        if entry.name.startswith(RUN_PREFIX) and not is_dead(entry.name[len(RUN_PREFIX) :], live):
            continue
        if repo.storage.local or _belongs(repo, entry.path, root):
            out.append(entry.path)
    return out


def leftovers(repo: Repository) -> Leftovers:
    """What `info` shows: the leftovers of dead runs prune would remove after its grace period."""
    found = Leftovers()
    for _run, objs in _dead_runs(repo).items():
        found.journal_runs += 1
        found.journals += len(objs)
        found.journal_bytes += sum(o.size for o in objs)
    for path in _spool_entries(repo):
        try:
            found.spool_bytes += _size(path)
        except FileNotFoundError:
            continue
        found.spool_entries += 1
    return found


def young_journal_chunks(repo: Repository, grace: float, now: float) -> set[bytes]:
    """Chunk ids named by the journals prune keeps (younger than the grace period): a resumed
    backup may still adopt them, so prune must keep their data too."""
    from kloset.backup.journal import list_runs, read_run

    keep: set[bytes] = set()
    for run_id, objs in list_runs(repo).items():
        if all(o.older_than(grace, now) for o in objs):
            continue
        try:
            journals = read_run(repo, run_id, objs)
        except Exception:  # noqa: BLE001 - an unreadable journal protects nothing
            continue
        for doc in journals.values():
            for *_meta, ids in doc["files"]:
                keep.update(bytes(c) for c in ids)
    return keep


def clean_journals(repo: Repository, grace: float, now: float, *, dry_run: bool) -> tuple[int, int]:
    """Remove the journals of dead runs that are older than the grace period."""
    from kloset.backup.journal import delete_run

    removed = nbytes = 0
    for run_id, objs in _dead_runs(repo).items():
        if not all(o.older_than(grace, now) for o in objs):
            continue
        removed += len(objs)
        nbytes += sum(o.size for o in objs)
        if not dry_run:
            delete_run(repo, run_id, objs)
    return removed, nbytes


def _newest_mtime(path: str) -> float:
    newest = os.lstat(path).st_mtime
    for dirpath, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                newest = max(newest, os.lstat(os.path.join(dirpath, name)).st_mtime)
            except FileNotFoundError:
                continue
    return newest


def clean_leftovers(
    repo: Repository, grace: float, now: float, *, dry_run: bool
) -> tuple[int, int]:
    """Remove spool leftovers of killed runs, their journals and interrupted writes older than
    the grace period."""
    removed, nbytes = clean_journals(repo, grace, now, dry_run=dry_run)
    for directory in ("index", "snapshots", "locks"):
        for obj in list_objects(repo.storage, directory):
            if TMP_MARK in obj.name and obj.older_than(grace, now):
                removed += 1
                nbytes += obj.size
                if not dry_run:
                    repo.storage.delete(obj.name)
    spool = spool_root(repo)
    if not os.path.isdir(spool):
        return removed, nbytes
    for entry in os.scandir(spool):
        try:
            if now - _newest_mtime(entry.path) < grace:
                continue
            size = _size(entry.path)
        except FileNotFoundError:
            continue
        removed += 1
        nbytes += size
        if dry_run:
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            os.unlink(entry.path)
    return removed, nbytes
