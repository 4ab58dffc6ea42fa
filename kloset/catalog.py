"""A store's snapshot headers, cached by id and refreshed by one listing of `snapshots/`.

Snapshot headers are immutable and named by their hash, so a header read once never needs
reading again. Each refresh lists `snapshots/` (one request on a remote store) and loads only
the headers it has not seen. The viewer, the FUSE mount and the WebDAV server all look
snapshots up through this, so a store with thousands of snapshots stays quick to browse and
new snapshots show up within a few seconds.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from kloset.errors import AmbiguousSnapshot, KlosetError, SnapshotNotFound
from kloset.repository import Repository
from kloset.snapshot import SnapshotHeader

REFRESH_SECONDS = 3.0


class SnapshotCatalog:
    """Thread-safe cache of a store's snapshot headers, refreshed by one listing."""

    def __init__(self, repo: Repository, refresh_seconds: float = REFRESH_SECONDS) -> None:
        self.repo = repo
        self.refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        self._headers: dict[bytes, SnapshotHeader] = {}
        self._unreadable: dict[bytes, str] = {}
        self._ids: list[bytes] = []
        self._listed_at = 0.0
        self.generation = 0  # grows whenever the set of snapshots changes

    def refresh(self, force: bool = False) -> None:
        """List snapshots again (at most every few seconds) and load any new headers."""
        with self._lock:
            if not force and time.monotonic() - self._listed_at < self.refresh_seconds:
                return
            ids = self.repo.snapshot_ids()
            missing = [i for i in ids if i not in self._headers and i not in self._unreadable]

            def load(sid: bytes) -> SnapshotHeader | str:
                try:
                    return self.repo.load_snapshot(sid)
                except KlosetError as exc:
                    return str(exc)

            workers = 1 if self.repo.storage.local else 8
            with ThreadPoolExecutor(workers) as pool:
                for sid, res in zip(missing, pool.map(load, missing), strict=True):
                    if isinstance(res, str):
                        self._unreadable[sid] = res
                    else:
                        self._headers[sid] = res
            live = set(ids)
            for gone in [i for i in self._headers if i not in live]:
                del self._headers[gone]
            for gone in [i for i in self._unreadable if i not in live]:
                del self._unreadable[gone]
            if ids != self._ids:
                self.generation += 1
            self._ids = ids
            self._listed_at = time.monotonic()

    def headers(self) -> list[SnapshotHeader]:
        """Readable snapshots, oldest first."""
        self.refresh()
        with self._lock:
            out = list(self._headers.values())
        out.sort(key=lambda h: (h.time_ns, h.id))
        return out

    def unreadable(self) -> list[dict[str, str]]:
        with self._lock:
            return [{"id": k.hex(), "error": v} for k, v in sorted(self._unreadable.items())]

    def get(self, ref: str) -> SnapshotHeader:
        """A snapshot by full id, unique hex prefix (4+) or `latest`."""
        ref = ref.strip().lower()
        if len(ref) == 64 and all(c in "0123456789abcdef" for c in ref):
            with self._lock:
                hit = self._headers.get(bytes.fromhex(ref))
            if hit is not None:
                return hit
        if ref == "latest":
            snaps = self.headers()
            if not snaps:
                raise SnapshotNotFound("the store has no snapshots")
            return snaps[-1]
        if len(ref) < 4 or any(c not in "0123456789abcdef" for c in ref):
            raise SnapshotNotFound(f"'{ref}' is not a snapshot id (use 4+ hex digits or 'latest')")
        for attempt in (False, True):
            self.refresh(force=attempt)
            with self._lock:
                matches = [h for sid, h in self._headers.items() if sid.hex().startswith(ref)]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                shown = ", ".join(sorted(m.hex[:12] for m in matches)[:5])
                raise AmbiguousSnapshot(f"'{ref}' matches {len(matches)} snapshots ({shown})")
        raise SnapshotNotFound(f"no snapshot matches '{ref}'")
