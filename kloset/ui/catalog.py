"""The snapshot catalogue the UI pages over: the engine's cached headers (`kloset.catalog`),
sorted, filtered and paged in memory, and their JSON shape."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kloset.catalog import SnapshotCatalog
from kloset.snapshot import SnapshotHeader

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


class Catalog(SnapshotCatalog):
    """The engine's snapshot catalogue plus the UI's sorted, filtered pages."""

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
