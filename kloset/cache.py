"""Local cache of immutable store objects (index files, snapshot headers) of remote stores.

These objects are named by the hash of their content and never change, so a copy on local disk
is always valid; it saves one request per object every time a store on Koofr is opened. The
cache holds sealed bytes only (still encrypted), and readers verify them like fresh downloads.
"""

from __future__ import annotations

import contextlib
import os
import uuid


def cache_root() -> str:
    base = os.environ.get("KLOSET_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kloset"
    )
    return base


class ObjectCache:
    """Sealed bytes of one store's immutable objects, keyed by store-relative name."""

    def __init__(self, store_id: str, enabled: bool = True) -> None:
        self.enabled = enabled and not os.environ.get("KLOSET_NO_CACHE")
        self.dir = os.path.join(cache_root(), "stores", store_id)

    def _path(self, name: str) -> str:
        return os.path.join(self.dir, *name.split("/"))

    def get(self, name: str) -> bytes | None:
        if not self.enabled:
            return None
        try:
            with open(self._path(name), "rb") as fh:
                return fh.read()
        except OSError:
            return None

    def put(self, name: str, data: bytes) -> None:
        if not self.enabled:
            return
        path = self._path(name)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.{uuid.uuid4().hex[:8]}"
            with open(tmp, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except OSError:
            pass  # a cache that cannot be written is just slower

    def drop(self, name: str) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self._path(name))
