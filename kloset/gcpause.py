"""Fewer garbage collections during bulk work.

A backup or restore allocates millions of small, long-lived objects (plan rows, tree entries,
index tuples) and almost no reference cycles; CPython's default thresholds then run full
collections over all of them again and again (measured: a third of an incremental backup).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

BULK_THRESHOLDS = (100_000, 50, 100)

# The thresholds are process-wide and operations overlap (Prefect runs tasks in threads): the
# first one in raises them, the last one out restores what was there before.
_lock = threading.Lock()
_depth = 0
_saved: tuple[int, ...] = gc.get_threshold()


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Raise the collector's thresholds while any bulk operation runs, then restore them."""
    global _depth, _saved
    with _lock:
        if _depth == 0:
            _saved = gc.get_threshold()
            gc.set_threshold(*BULK_THRESHOLDS)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                gc.set_threshold(*_saved)
