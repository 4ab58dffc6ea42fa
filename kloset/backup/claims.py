"""Claims: which worker stores a new chunk when several chunk the same run in parallel.

Without them, two workers meeting the same new content at once would both pack it. A claim is
asked for a group of ids at a time so the cost is one call per group, not per chunk.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from typing import Protocol


class Claims(Protocol):
    def claim(self, ids: list[bytes]) -> list[bool]:
        """For each id, True if the caller is the first to claim it and must store it."""
        ...


_IN_PROCESS = threading.Lock()


class RunClaims:
    """Claims shared by every batch of one backup run that runs on this machine, whatever runs
    it: threads, worker processes, Prefect tasks or Dask workers. They live in an SQLite file
    in the run dir, so they last exactly as long as the run.

    A claim belongs to a batch, not to an attempt: a retried batch wins its own claims again
    and stores those chunks itself, so a chunk another batch skipped is never left unstored
    once every batch has succeeded (commit checks this too).
    """

    def __init__(self, path: str, owner: int) -> None:
        self.owner = owner
        self._won: set[bytes] = set()  # this attempt stores each of its chunks once
        self._db = self.open_db(path)

    @staticmethod
    def open_db(path: str) -> sqlite3.Connection:
        """Connect, creating the table on first use. Switching a new file to WAL takes a lock
        the busy timeout does not wait for, so batches starting together retry that step
        (enumerate normally creates the file first, so they never race for it)."""
        db = sqlite3.connect(path, timeout=120, isolation_level=None)
        # Claims die with the run: no need to survive a power cut, only to be atomic.
        db.execute("PRAGMA synchronous=OFF")
        deadline = time.monotonic() + 120
        while True:
            try:
                if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    db.execute("PRAGMA journal_mode=WAL")
                db.execute(
                    "CREATE TABLE IF NOT EXISTS claims (id INTEGER PRIMARY KEY, owner INTEGER)"
                )
                return db
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    db.close()
                    raise
                time.sleep(random.uniform(0.005, 0.05))

    def claim(self, ids: list[bytes]) -> list[bool]:
        # Keyed by the id's first 8 bytes: an integer key is much cheaper, and two different
        # new chunks sharing them (odds ~1e-8 for a million) only make commit refuse the run.
        keys = [int.from_bytes(i[:8], "big", signed=True) for i in ids]
        # Threads of one process queue on a Python lock, which wakes the next one at once;
        # SQLite's own busy handler would poll with sleeps of up to tens of milliseconds.
        with _IN_PROCESS:
            fresh, owners = self._insert(keys)
        out = []
        for i, key, new in zip(ids, keys, fresh, strict=True):
            # Claimed before by this batch (an earlier attempt): store it again, once.
            mine = (new or owners.get(key) == self.owner) and i not in self._won
            if mine:
                self._won.add(i)
            out.append(mine)
        return out

    def _insert(self, keys: list[int]) -> tuple[list[bool], dict[int, int]]:
        """Claim what is free; return which keys were new, and the owners of the others."""
        db = self._db
        fresh: list[bool] = []
        owners: dict[int, int] = {}
        db.execute("BEGIN IMMEDIATE")
        try:
            for key in keys:
                cur = db.execute("INSERT OR IGNORE INTO claims VALUES (?, ?)", (key, self.owner))
                fresh.append(cur.rowcount == 1)
            others = [k for k, new in zip(keys, fresh, strict=True) if not new]
            for start in range(0, len(others), 500):
                part = others[start : start + 500]
                query = f"SELECT id, owner FROM claims WHERE id IN ({','.join('?' * len(part))})"
                owners.update(db.execute(query, part))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return fresh, owners

    def close(self) -> None:
        self._db.close()
