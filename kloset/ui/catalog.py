"""The snapshot catalogue the UI pages over: the engine's cached headers (`kloset.catalog`),
sorted, filtered and paged in memory, and their JSON shape."""

from __future__ import annotations

from typing import Any

from kloset.catalog import SnapshotCatalog

SORT_KEYS = ("time", "id", "source", "files", "bytes", "tags", "errors")


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
        docs = [h.to_doc() for h in self.headers()]
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
