"""Snapshot headers: the small object that makes a backup exist.

A snapshot is committed by writing ``snapshots/<id>`` last, after its packs and index; its id is
the keyed hash of the header plaintext, checked on every load.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import msgpack

from kloset.display import iso_time
from kloset.errors import CorruptObject

SNAPSHOT_AD = b"kloset:snapshot"
MAX_ERRORS_INLINE = 10_000


@dataclass
class SnapshotHeader:
    """What a snapshot is: when, what, from where, and the root tree to read it by."""

    root: bytes
    time_ns: int = field(default_factory=time.time_ns)
    source: str = ""
    host: str = ""
    user: str = ""
    tags: list[str] = field(default_factory=list)
    parent: bytes | None = None
    stats: dict[str, int | float] = field(default_factory=dict)
    errors: list[tuple[str, str]] = field(default_factory=list)
    errors_total: int = 0
    # Who ran the backup, as free-form labels (an orchestrator's run id and link, say):
    # the engine records them and shows them, it never interprets them.
    origin: dict[str, str] = field(default_factory=dict)
    id: bytes = b""

    @property
    def hex(self) -> str:
        return self.id.hex()

    def derived(self, **changes: Any) -> SnapshotHeader:
        """A new, unsaved header like this one but for `changes` (rewrite and sync make these):
        every field not named is carried over — origin included — and the id is left for
        `save_snapshot` to compute."""
        copied: dict[str, Any] = {
            "tags": list(self.tags),
            "stats": dict(self.stats),
            "errors": list(self.errors),
            "origin": dict(self.origin),
        }
        return replace(self, **{**copied, **changes, "id": b""})

    def to_doc(self) -> dict[str, Any]:
        """The snapshot as JSON, the one shape of `kloset ls --json`, the web viewer's API and
        the Prefect blocks (documented in docs/CLI.md)."""
        st = self.stats
        return {
            "id": self.hex,
            "short_id": self.hex[:12],
            "time": iso_time(self.time_ns),
            "time_ns": self.time_ns,
            "source": self.source,
            "host": self.host,
            "user": self.user,
            "tags": list(self.tags),
            "parent": self.parent.hex() if self.parent else None,
            "files": int(st.get("files", 0)),
            "dirs": int(st.get("dirs", 0)),
            "symlinks": int(st.get("symlinks", 0)),
            "bytes": int(st.get("bytes", 0)),
            "bytes_added": int(st.get("bytes_added", 0)),
            "errors": max(self.errors_total, len(self.errors)),
            "origin": dict(self.origin),
        }

    def to_bytes(self) -> bytes:
        doc: dict[str, Any] = {
            "v": 1,
            "root": self.root,
            "time": self.time_ns,
            "source": self.source,
            "host": self.host,
            "user": self.user,
            "tags": sorted(set(self.tags)),
            "parent": self.parent,
            "stats": self.stats,
            "errors": [list(e) for e in self.errors[:MAX_ERRORS_INLINE]],
            "errors_total": max(self.errors_total, len(self.errors)),
        }
        if self.origin:
            doc["origin"] = {str(k): str(v) for k, v in sorted(self.origin.items())}
        return msgpack.packb(doc)

    @classmethod
    def from_bytes(cls, raw: bytes, what: str) -> SnapshotHeader:
        try:
            doc = msgpack.unpackb(raw)
            return cls(
                root=bytes(doc["root"]),
                time_ns=int(doc["time"]),
                source=str(doc.get("source", "")),
                host=str(doc.get("host", "")),
                user=str(doc.get("user", "")),
                tags=list(doc.get("tags") or []),
                parent=doc.get("parent"),
                stats=dict(doc.get("stats") or {}),
                errors=[(str(p), str(m)) for p, m in doc.get("errors") or []],
                errors_total=int(doc.get("errors_total", 0)),
                origin={str(k): str(v) for k, v in (doc.get("origin") or {}).items()},
            )
        except Exception as exc:  # noqa: BLE001
            raise CorruptObject(f"{what}: snapshot header is damaged ({exc})") from exc
