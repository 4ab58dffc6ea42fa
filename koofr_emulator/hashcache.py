"""MD5 sidecar: remembers each stored file's hash so listings never re-read file bodies.

Keyed by inode (survives renames, including whole-directory moves) and validated against
size, mtime and ctime, so a file changed behind the emulator's back is simply re-hashed.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from pathlib import Path

_CHUNK = 1024 * 1024


def md5_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class HashCache:
    """Thread-safe ``(dev, ino) -> md5`` store in ``root/.emulator/meta.sqlite3``."""

    def __init__(self, db_path: Path) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(db_path), check_same_thread=False, isolation_level=None)
        # A cache: durability is irrelevant, speed is not (one row per upload).
        self._db.execute("PRAGMA journal_mode=MEMORY")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS md5 (dev INTEGER, ino INTEGER, size INTEGER,"
            " mtime_ns INTEGER, ctime_ns INTEGER, md5 TEXT, PRIMARY KEY (dev, ino))"
        )

    def get(self, path: Path, st: os.stat_result | None = None) -> str:
        """MD5 of ``path``, hashing it only when the cached row is missing or stale."""
        st = st or path.stat()
        with self._lock:
            row = self._db.execute(
                "SELECT size, mtime_ns, ctime_ns, md5 FROM md5 WHERE dev=? AND ino=?",
                (st.st_dev, st.st_ino),
            ).fetchone()
        if row and tuple(row[:3]) == (st.st_size, st.st_mtime_ns, st.st_ctime_ns):
            return str(row[3])
        value = md5_file(path)
        self.put(path, value)
        return value

    def put(self, path: Path, md5: str) -> None:
        """Record a hash computed while the file was written (after all utime/renames)."""
        st = path.stat()
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO md5 VALUES (?, ?, ?, ?, ?, ?)",
                (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, md5),
            )

    def refresh(self, path: Path, md5: str | None) -> None:
        """Re-key after a rename changed ctime, keeping a known hash."""
        if md5 is not None:
            self.put(path, md5)

    def forget(self, inodes: list[tuple[int, int]]) -> None:
        """Drop rows of deleted files so a reused inode can never inherit a stale hash."""
        if not inodes:
            return
        with self._lock:
            self._db.executemany("DELETE FROM md5 WHERE dev=? AND ino=?", inodes)

    def close(self) -> None:
        with self._lock:
            self._db.close()
