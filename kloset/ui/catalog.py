"""The snapshot catalogue the UI pages over: headers cached by id, refreshed by one listing.

Snapshot headers are immutable and named by their hash, so a header read once never needs
reading again. Each refresh lists `snapshots/` (one request on a remote store) and loads only
the headers it has not seen; sorting, filtering and paging then happen in memory, which keeps
a store with thousands of snapshots quick to browse.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from kloset.errors import AmbiguousSnapshot, KlosetError, SnapshotNotFound
from kloset.repository import Repository
from kloset.snapshot import SnapshotHeader

REFRESH_SECONDS = 3.0
SORT_KEYS = ("time", "id", "source", "files", "size", "tags", "errors")


def iso_time(ns: int) -> str:
    """UTC ISO-8601 with a Z: the page formats it in the viewer's own time zone."""
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat().replace("+00:00", "Z")


def header_doc(h: SnapshotHeader) -> dict[str, Any]:
    """The JSON shape of a snapshot in lists (see docs/UI.md)."""
    stats = h.stats or {}
    return {
        "id": h.hex,
        "short": h.hex[:8],
        "time": iso_time(h.time_ns),
        "time_ns": h.time_ns,
        "source": h.source,
        "host": h.host,
        "user": h.user,
        "tags": list(h.tags),
        "files": int(stats.get("files", 0)),
        "dirs": int(stats.get("dirs", 0)),
        "size": int(stats.get("bytes", 0)),
        "errors": max(int(h.errors_total), len(h.errors)),
        "parent": h.parent.hex() if h.parent else None,
    }


def _sort_value(doc: dict[str, Any], key: str) -> Any:
    if key == "time":
        return (doc["time_ns"], doc["id"])
    if key == "tags":
        return (",".join(doc["tags"]), doc["time_ns"])
    return (doc[key], doc["time_ns"])


class Catalog:
    """Thread-safe cache of a store's snapshot headers."""

    def __init__(self, repo: Repository, refresh_seconds: float = REFRESH_SECONDS) -> None:
        self.repo = repo
        self.refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        self._headers: dict[bytes, SnapshotHeader] = {}
        self._unreadable: dict[bytes, str] = {}
        self._ids: list[bytes] = []
        self._listed_at = 0.0

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

    def page(
        self,
        *,
        sort: str = "time",
        order: str = "desc",
        offset: int = 0,
        limit: int = 50,
        query: str = "",
    ) -> dict[str, Any]:
        """One sorted, filtered page of snapshots plus the total after filtering."""
        if sort not in SORT_KEYS:
            raise ValueError(f"sort must be one of {', '.join(SORT_KEYS)}")
        if order not in ("asc", "desc"):
            raise ValueError("order must be asc or desc")
        docs = [header_doc(h) for h in self.headers()]
        q = query.strip().lower()
        if q:
            docs = [
                d for d in docs
                if q in d["id"] or q in d["source"].lower() or q in d["host"].lower()
                or any(q in t.lower() for t in d["tags"])
            ]  # fmt: skip
        docs.sort(key=lambda d: _sort_value(d, sort), reverse=order == "desc")
        return {
            "total": len(docs),
            "offset": offset,
            "limit": limit,
            "sort": sort,
            "order": order,
            "items": docs[offset : offset + limit],
            "unreadable": self.unreadable(),
        }
