"""Backup runs: their ids, where a run keeps local files, and telling a dead run from a live one.

A run id is ``<start ns>-<lock id>-<random>``: the id of the store lock the run holds is part
of it, so anyone can tell a dead run (its lock is gone, or stale) from a live one without any
other record. What a run leaves behind (journals in the store, a spool directory on a local
disk) is adopted or removed by the next backup once the run is dead.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from kloset.repository import Repository, default_spool_dir

NO_LOCK = "nolock"
STORE_ID_FILE = "store-id"
RUN_PREFIX = "run-"
# A run without a lock (a caller that holds none, or the format before run ids carried one)
# counts as dead once this old, like a lock that was not refreshed.
UNLOCKED_RUN_STALE = 1800.0


@dataclass(frozen=True)
class RunRef:
    """What a batch needs to know about its run: small, picklable, the same on every machine.

    `dir` is the run directory on the machine that planned the run; a batch elsewhere (a Dask
    worker without that disk) uses its own spool root instead (see `local_run_dir`).
    """

    id: str
    dir: str
    source: str
    dry_run: bool = False


def new_run_id(lock_id: str | None) -> str:
    return f"{time.time_ns()}-{lock_id or NO_LOCK}-{os.urandom(4).hex()}"


def run_lock_id(run_id: str) -> str | None:
    """The lock id inside a run id; None for runs without one (or of the older format)."""
    parts = run_id.split("-")
    if len(parts) == 3 and len(parts[1]) == 32:
        return parts[1]
    return None


def run_started(run_id: str) -> float | None:
    """When the run started, in seconds since the epoch (None if the id is not ours)."""
    head = run_id.split("-", 1)[0]
    return int(head) / 1e9 if head.isdigit() else None


def run_dir_name(run_id: str) -> str:
    return RUN_PREFIX + run_id


def local_run_dir(repo: Repository, run: RunRef) -> str:
    """This machine's directory for `run`: the planner's when this machine sees it, else a
    fresh one under this machine's spool root (packs wait there only until uploaded)."""
    if os.path.isdir(run.dir):
        return run.dir
    path = os.path.join(default_spool_dir(repo.storage), run_dir_name(run.id))
    make_run_dir(path, repo.config.store_id)
    return path


def make_run_dir(path: str, store_id: str) -> None:
    """Create a run directory that says which store it belongs to (a spool root outside a
    store is shared by every store this machine backs up into)."""
    os.makedirs(path, exist_ok=True)
    marker = os.path.join(path, STORE_ID_FILE)
    if not os.path.exists(marker):
        with open(marker, "w", encoding="ascii") as fh:
            fh.write(store_id)


def live_lock_ids(repo: Repository) -> set[str]:
    """Ids of the store's locks that still count (not stale, holder not provably dead)."""
    from kloset.locks import DEFAULT_STALE, _env_float, read_locks

    stale = _env_float("KLOSET_LOCK_STALE", DEFAULT_STALE)
    now = time.time_ns()
    return {info.id for info in read_locks(repo) if info.id and not info.is_stale(stale, now)}


def is_dead(run_id: str, live_locks: set[str], now: float | None = None) -> bool:
    """A run is dead when its lock no longer counts; one without a lock, once it is old."""
    lock = run_lock_id(run_id)
    if lock is not None and lock != NO_LOCK:
        return lock not in live_locks
    started = run_started(run_id)
    now = time.time() if now is None else now
    return started is None or now - started > UNLOCKED_RUN_STALE
