"""Store locks: shared for backup/restore/check/sync, exclusive for prune and repair.

A lock is an object ``locks/<random id>`` holding who took it (host, pid, process start time),
what for, and when it was last refreshed, sealed like every other object. Koofr and many other
backends have no atomic create-if-absent or rename, so acquiring is optimistic: write our own
lock first, then list the others, and withdraw (then retry after a random pause) when one
conflicts. Two contenders can never both win: whichever wrote second sees the first when it
lists. A background thread rewrites the lock every `refresh` seconds; a lock not refreshed for
`stale` seconds, or held by a process that provably died on this machine, no longer counts.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from kloset import codec
from kloset.errors import KlosetError, StoreLocked
from kloset.repository import Repository

LOCK_AD = b"kloset:lock"
DEFAULT_REFRESH = 300.0
DEFAULT_STALE = 1800.0
SHARED = "shared"
EXCLUSIVE = "exclusive"


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, "") or default)
    except ValueError:
        return default


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="ascii") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _process_start(pid: int) -> int | None:
    """Start time of `pid` in clock ticks since boot (guards against pid reuse); None if gone."""
    stat = _read_text(f"/proc/{pid}/stat")
    if not stat:
        return None
    try:
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return 0


@dataclass
class LockInfo:
    """One lock object as read from the store."""

    name: str
    id: str = ""
    kind: str = SHARED
    operation: str = ""
    host: str = ""
    pid: int = 0
    boot: str = ""
    pidns: str = ""
    start: int = 0
    created_ns: int = 0
    time_ns: int = 0
    readable: bool = True

    @property
    def exclusive(self) -> bool:
        return self.kind == EXCLUSIVE

    def holder_alive(self) -> bool | None:
        """Whether the holder still runs; None when we cannot tell (another machine)."""
        if not self.boot or self.host != socket.gethostname() or self.boot != _boot_id():
            return None
        if self.pidns != _pid_namespace():
            return None
        start = _process_start(self.pid)
        return start is not None and (not self.start or not start or start == self.start)

    def is_stale(self, stale_after: float, now_ns: int | None = None) -> bool:
        """Unreadable locks (damaged, or half-written right now) never block anyone: a writer
        whose lock we could not read will itself see ours when it lists."""
        if not self.readable or self.holder_alive() is False:
            return True
        now_ns = time.time_ns() if now_ns is None else now_ns
        return (now_ns - self.time_ns) / 1e9 > stale_after

    def describe(self) -> str:
        if not self.readable:
            return f"{self.name} (unreadable)"
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.created_ns / 1e9))
        return f"{self.operation or '?'} ({self.kind}) by {self.host} pid {self.pid} since {since}"


# Locks this process holds, newest last: a backup puts its lock's id into its run id.
_held: list[StoreLock] = []
_held_lock = threading.Lock()


def held_lock_id(repo: Repository) -> str | None:
    """Id of the newest lock this process holds on `repo`'s store, if any."""
    with _held_lock:
        for lock in reversed(_held):
            if lock.repo.storage.location == repo.storage.location:
                return lock.info.id
    return None


def held_locks() -> list[StoreLock]:
    """Every lock this process holds (an interrupt releases them before exiting)."""
    with _held_lock:
        return list(_held)


def _boot_id() -> str:
    return _read_text("/proc/sys/kernel/random/boot_id")


def read_locks(repo: Repository) -> list[LockInfo]:
    """Every lock in the store, read fresh."""
    from kloset.storescan import TMP_MARK, list_objects

    out: list[LockInfo] = []
    for obj in list_objects(repo.storage, "locks"):
        if TMP_MARK in obj.name:
            continue
        try:
            raw = codec.decode(repo.cipher, repo.storage.read(obj.name), LOCK_AD, obj.name)
            doc = json.loads(raw.decode("utf-8"))
            fields = {k: doc[k] for k in LockInfo.__dataclass_fields__ if k in doc and k != "name"}
            info = LockInfo(name=obj.name, **fields)
            if info.kind not in (SHARED, EXCLUSIVE):
                raise ValueError(info.kind)
        except FileNotFoundError:
            continue  # released while we listed
        except (KlosetError, ValueError, TypeError, KeyError):
            info = LockInfo(name=obj.name, readable=False)
        out.append(info)
    return out


class StoreLock:
    """A lock this process holds (or is trying to take)."""

    def __init__(
        self,
        repo: Repository,
        exclusive: bool,
        operation: str,
        *,
        refresh: float | None = None,
        stale: float | None = None,
    ) -> None:
        self.repo = repo
        self.refresh = refresh or _env_float("KLOSET_LOCK_REFRESH", DEFAULT_REFRESH)
        self.stale = stale or _env_float("KLOSET_LOCK_STALE", DEFAULT_STALE)
        self.info = LockInfo(
            name="",
            id=os.urandom(16).hex(),
            kind=EXCLUSIVE if exclusive else SHARED,
            operation=operation,
            host=socket.gethostname(),
            pid=os.getpid(),
            boot=_boot_id(),
            pidns=_pid_namespace(),
            start=_process_start(os.getpid()) or 0,
            created_ns=time.time_ns(),
        )
        self.info.name = f"locks/{self.info.id}"
        self.lost = False
        self._last_ok = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _write(self) -> None:
        self.info.time_ns = time.time_ns()
        doc = {k: v for k, v in asdict(self.info).items() if k not in ("name", "readable")}
        sealed = codec.encode(self.repo.cipher, json.dumps(doc).encode(), LOCK_AD, 0)
        self.repo.storage.write(self.info.name, sealed)
        self._last_ok = time.monotonic()

    def conflicts(self) -> list[LockInfo]:
        now = time.time_ns()
        return [
            other
            for other in read_locks(self.repo)
            if other.id != self.info.id
            and (self.info.exclusive or other.exclusive)
            and not other.is_stale(self.stale, now)
        ]

    def acquire(self, wait: float = 0.0) -> None:
        """Take the lock, retrying for up to `wait` seconds; StoreLocked names the holder."""
        deadline = time.monotonic() + max(0.0, wait)
        settle = 0.0 if self.repo.storage.local else 0.2
        pause = 0.05
        while True:
            self._write()
            if settle:
                time.sleep(settle)  # let a listing that raced our write catch up
            blocking = self.conflicts()
            if not blocking:
                break
            self.repo.storage.delete(self.info.name)
            if time.monotonic() >= deadline:
                held = "; ".join(b.describe() for b in blocking[:3])
                raise StoreLocked(
                    f"store is locked by {held} (wait, or `kloset at STORE unlock` if it is stale)"
                )
            time.sleep(min(pause * random.uniform(0.5, 1.5), max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, 2.0)
        self._thread = threading.Thread(target=self._refresher, name="kloset-lock", daemon=True)
        self._thread.start()
        with _held_lock:
            _held.append(self)

    def _refresher(self) -> None:
        while not self._stop.wait(self.refresh):
            try:
                if not self.repo.storage.exists(self.info.name):
                    self.lost = True  # someone ran `unlock --all` or judged us stale
                self._write()
            except Exception:  # noqa: BLE001 - a failed refresh is retried next interval
                if time.monotonic() - self._last_ok > self.stale:
                    self.lost = True

    def check(self) -> None:
        """Raise before an irreversible step if the lock can no longer be trusted."""
        if self.lost or time.monotonic() - self._last_ok > self.stale:
            raise StoreLocked(
                f"lost the {self.info.kind} lock ({self.info.name}): stopped before changing more"
            )

    def release(self) -> None:
        with _held_lock:
            if self in _held:
                _held.remove(self)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        # A lock left behind turns stale by itself; never let it mask the body's real error.
        with contextlib.suppress(Exception):
            self.repo.storage.delete(self.info.name)


@contextmanager
def store_lock(
    repo: Repository,
    exclusive: bool,
    operation: str,
    *,
    wait: float | None = None,
    refresh: float | None = None,
    stale: float | None = None,
    required: bool = True,
) -> Iterator[StoreLock | None]:
    """Hold a shared or exclusive lock for the body. With `required=False` (restores from a
    read-only store) a lock that cannot be written is skipped; a conflicting lock still stops us."""
    lock = StoreLock(repo, exclusive, operation, refresh=refresh, stale=stale)
    wait = _env_float("KLOSET_LOCK_WAIT", 0.0) if wait is None else wait
    held = True
    try:
        lock.acquire(wait)
    except StoreLocked:
        raise
    except (OSError, KlosetError) as exc:
        if required:
            raise KlosetError(f"cannot write a lock into the store: {exc}") from exc
        blocking = [b for b in read_locks(repo) if b.exclusive and not b.is_stale(lock.stale)]
        if blocking:
            raise StoreLocked(f"store is locked by {blocking[0].describe()}") from exc
        held = False
    try:
        yield lock if held else None
    finally:
        if held:
            lock.release()


def unlock(repo: Repository, stale_only: bool = True, stale: float | None = None) -> list[LockInfo]:
    """Remove stale locks (or every lock with `stale_only=False`); returns what was removed."""
    limit = stale or _env_float("KLOSET_LOCK_STALE", DEFAULT_STALE)
    removed = []
    for info in read_locks(repo):
        if stale_only and not info.is_stale(limit):
            continue
        repo.storage.delete(info.name)
        removed.append(info)
    return removed
