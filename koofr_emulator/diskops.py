"""Plain filesystem helpers for the store: measuring, copying and deleting subtrees.

Kept apart from ``store.py`` so the namespace rules there stay readable; nothing here knows
about Koofr semantics or locking.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

_COPY_CHUNK = 1024 * 1024


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def mtime_ms(st: os.stat_result) -> int:
    return st.st_mtime_ns // 1_000_000


def set_mtime_ms(path: Path, modified_ms: int) -> None:
    """Store a Koofr ``modified`` (ms) as the on-disk mtime; exact at ms precision."""
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, modified_ms * 1_000_000))


def measure(path: Path) -> tuple[int, list[tuple[int, int]]]:
    """Total bytes of files under ``path`` and their ``(dev, ino)`` keys."""
    st = os.stat(path)
    if not os.path.isdir(path):
        return st.st_size, [(st.st_dev, st.st_ino)]
    total = 0
    inodes: list[tuple[int, int]] = []
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                fst = os.stat(os.path.join(dirpath, name))
            except FileNotFoundError:
                continue
            total += fst.st_size
            inodes.append((fst.st_dev, fst.st_ino))
    return total, inodes


def copy_tree(src: Path, dst: Path, md5_of: Callable[[Path], str]) -> list[tuple[Path, str]]:
    """Copy ``src`` (file or dir) to the new path ``dst`` preserving mtimes.

    Returns ``(relative path, md5)`` for every copied file, so the caller can record the
    hashes once the copy has been renamed into its final place.
    """
    copied: list[tuple[Path, str]] = []

    def _copy(s: Path, d: Path, rel: Path) -> None:
        st = os.stat(s)
        if os.path.isdir(s):
            os.mkdir(d)
            for child in sorted(os.listdir(s)):
                _copy(s / child, d / child, rel / child)
        else:
            md5 = md5_of(s)
            with open(s, "rb") as fin, open(d, "wb") as fout:
                shutil.copyfileobj(fin, fout, _COPY_CHUNK)
            copied.append((rel, md5))
        # Set after the children were written: creating them bumped the dir mtime.
        os.utime(d, ns=(st.st_atime_ns, st.st_mtime_ns))

    _copy(src, dst, Path("."))
    return copied


def remove_tree(path: Path) -> None:
    """Delete a file or directory that is already outside the namespace."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def clear_dir(path: Path) -> None:
    """Empty a scratch directory (stale uploads from a crashed run)."""
    if not path.exists():
        return
    for child in path.iterdir():
        remove_tree(child)
