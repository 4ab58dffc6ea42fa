"""Fewer garbage collections during bulk work.

A backup or restore allocates millions of small, long-lived objects (plan rows, tree entries,
index tuples) and almost no reference cycles; CPython's default thresholds then run full
collections over all of them again and again (measured: a third of an incremental backup).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

BULK_THRESHOLDS = (100_000, 50, 100)


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Raise the collector's thresholds for the duration of one operation, then restore them."""
    old = gc.get_threshold()
    gc.set_threshold(*BULK_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*old)
