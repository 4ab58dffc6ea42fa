"""Claims: which worker stores a new chunk when several chunk the same run in parallel.

Without them, two workers meeting the same new content at once would both pack it. A claim is
asked for a group of ids at a time so the cost is one call per group, not per chunk.
"""

from __future__ import annotations

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
