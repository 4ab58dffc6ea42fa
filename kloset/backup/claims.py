"""Claims: which worker stores a new chunk when several chunk the same run in parallel.

Without them, two workers meeting the same new content at once would both pack it. A claim is
asked for a group of ids at a time so the cost is one call per group, not per chunk.
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Protocol


class Claims(Protocol):
    def claim(self, ids: list[bytes]) -> list[bool]:
        """For each id, True if the caller is the first to claim it and must store it."""
        ...


class LocalClaims:
    """Claims shared by threads of one process."""

    def __init__(self) -> None:
        self._seen: set[bytes] = set()
        self._lock = threading.Lock()

    def claim(self, ids: list[bytes]) -> list[bool]:
        out = []
        with self._lock:
            for bid in ids:
                if bid in self._seen:
                    out.append(False)
                else:
                    self._seen.add(bid)
                    out.append(True)
        return out


class RunClaims:
    """Claims shared by every batch of one backup run, whatever runs them: threads, processes
    or Dask workers of one machine (Prefect's chunk tasks). They live in an SQLite file in the
    run dir, so they last exactly as long as the run's plan.

    A claim belongs to a batch, not to an attempt: a retried batch wins its own claims again
    and stores those chunks itself, so a chunk another batch skipped is never left unstored
    once every batch has succeeded (commit checks this too).
    """

    def __init__(self, path: str, owner: int) -> None:
        self.owner = owner
        self._won: set[bytes] = set()  # this attempt stores each of its chunks once
        # Claims die with the run: no need to survive a power cut, only to be atomic.
        self._db = sqlite3.connect(path, timeout=120, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS claims (id BLOB PRIMARY KEY, owner INTEGER) WITHOUT ROWID"
        )

    def claim(self, ids: list[bytes]) -> list[bool]:
        owners: dict[bytes, int] = {}
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT OR IGNORE INTO claims VALUES (?, ?)", [(i, self.owner) for i in ids]
            )
            for start in range(0, len(ids), 500):
                part = ids[start : start + 500]
                query = f"SELECT id, owner FROM claims WHERE id IN ({','.join('?' * len(part))})"
                owners.update(db.execute(query, part))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        out = []
        for i in ids:
            mine = owners[i] == self.owner and i not in self._won
            if mine:
                self._won.add(i)
            out.append(mine)
        return out

    def close(self) -> None:
        self._db.close()
