"""Store locks: conflicts, waiting, refresh, staleness (by time and by a killed holder), unlock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from lifecycle_helpers import PASS, open_store

from kloset.errors import KlosetError, StoreLocked
from kloset.locks import LockInfo, StoreLock, read_locks, store_lock, unlock

HOLDER = """
import sys, time
from kloset.locations import open_storage
from kloset.repository import Repository
from kloset.locks import store_lock
repo = Repository.open(open_storage(sys.argv[1]), sys.argv[2])
with store_lock(repo, sys.argv[3] == "x", "test holder"):
    print("locked", flush=True)
    time.sleep(60)
"""


def hold_in_process(store: Path, exclusive: bool) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(store), PASS, "x" if exclusive else "s"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_shared_locks_coexist_exclusive_conflicts(store: Path) -> None:
    a, b = open_store(store), open_store(store)
    with store_lock(a, False, "backup 1"), store_lock(b, False, "backup 2"):
        assert len(read_locks(a)) == 2
        with pytest.raises(StoreLocked, match="backup"), store_lock(open_store(store), True, "x"):
            pass
    with (
        store_lock(a, True, "prune"),
        pytest.raises(StoreLocked, match="prune"),
        store_lock(b, False, "backup"),
    ):
        pass
    assert read_locks(a) == []


def test_exclusive_waits_for_shared_holders(store: Path) -> None:
    repo = open_store(store)
    inside = threading.Event()
    release = threading.Event()

    def backup() -> None:
        with store_lock(open_store(store), False, "backup"):
            inside.set()
            release.wait(5)

    t = threading.Thread(target=backup)
    t.start()
    inside.wait(5)
    threading.Timer(0.4, release.set).start()
    started = time.monotonic()
    with store_lock(repo, True, "prune", wait=10):
        waited = time.monotonic() - started
        assert not t.is_alive() or release.is_set()
    t.join()
    assert 0.3 < waited < 5


def test_killed_holder_is_stale_at_once_on_this_machine(store: Path) -> None:
    proc = hold_in_process(store, exclusive=True)
    repo = open_store(store)
    with pytest.raises(StoreLocked, match="test holder"), store_lock(repo, False, "backup"):
        pass
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    (left,) = read_locks(repo)
    assert left.is_stale(stale_after=3600)  # the pid is gone: no need to wait for the timeout
    with store_lock(repo, True, "prune"):
        pass
    assert [i.name for i in unlock(repo)] == [left.name]
    assert read_locks(repo) == []


def test_remote_holder_goes_stale_by_time_and_unlock(store: Path) -> None:
    repo = open_store(store)
    foreign = StoreLock(repo, True, "prune elsewhere")
    foreign.info.host = "another-machine"  # we cannot see its processes: only time tells
    foreign._write()
    with (
        pytest.raises(StoreLocked, match="another-machine"),
        store_lock(repo, False, "b", stale=60),
    ):
        pass
    assert unlock(repo, stale_only=True, stale=60) == []
    time.sleep(1.1)
    with store_lock(repo, False, "backup", stale=1.0):
        pass  # older than the stale limit: ignored
    removed = unlock(repo, stale_only=True, stale=1.0)
    assert [i.host for i in removed] == ["another-machine"]


def test_refresh_keeps_the_lock_fresh_and_detects_loss(store: Path) -> None:
    repo = open_store(store)
    with store_lock(repo, True, "prune", refresh=0.1, stale=0.5) as lock:
        assert lock is not None
        first = read_locks(repo)[0].time_ns
        time.sleep(0.35)
        again = read_locks(repo)[0]
        assert again.time_ns > first and not again.is_stale(0.5)
        lock.check()
        repo.storage.delete(lock.info.name)  # someone ran `unlock --all`
        time.sleep(0.3)
        with pytest.raises(StoreLocked, match="lost"):
            lock.check()


def test_unreadable_lock_does_not_block(store: Path) -> None:
    repo = open_store(store)
    repo.storage.write("locks/" + "ab" * 16, b"garbage that is not a sealed lock")
    (info,) = read_locks(repo)
    assert not info.readable and info.is_stale(3600)
    with store_lock(repo, True, "prune"):
        pass
    assert isinstance(unlock(repo)[0], LockInfo)


def test_optimistic_protocol_never_admits_two_exclusive(store: Path) -> None:
    """Many threads race for the exclusive lock with no atomic create: at most one inside."""
    inside = 0
    max_inside = 0
    wins = 0
    guard = threading.Lock()

    def contender() -> None:
        nonlocal inside, max_inside, wins
        repo = open_store(store)
        for _ in range(4):
            with store_lock(repo, True, "race", wait=20):
                with guard:
                    inside += 1
                    max_inside = max(max_inside, inside)
                    wins += 1
                time.sleep(0.005)
                with guard:
                    inside -= 1

    threads = [threading.Thread(target=contender) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert max_inside == 1 and wins == 16
    assert read_locks(open_store(store)) == []


def test_read_only_store_restores_without_a_lock(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = open_store(store)

    def refuse(name: str, data: bytes) -> None:
        raise PermissionError(13, "Read-only file system", name)

    monkeypatch.setattr(repo.storage, "write", refuse)
    with store_lock(repo, False, "restore", required=False) as lock:
        assert lock is None
    with pytest.raises(KlosetError, match="cannot write a lock"), store_lock(repo, False, "backup"):
        pass
    holder = hold_in_process(store, exclusive=True)
    try:  # an exclusive holder (a prune) still stops even a lock-less restore
        with pytest.raises(StoreLocked), store_lock(repo, False, "restore", required=False):
            pass
    finally:
        holder.kill()
        holder.wait()
