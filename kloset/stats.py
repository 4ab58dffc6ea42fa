"""Numbers about a store or a snapshot, for `kloset info` and the UI.

Store figures come from the index and the snapshot headers only (no pack is read), so `info`
is cheap even on a remote store. A snapshot's stored size needs its trees: it is the sealed
size of every distinct blob the snapshot references, i.e. what restoring it would download.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from kloset.display import ratio
from kloset.pack import BLOB_DATA, BLOB_TREE
from kloset.repository import Repository
from kloset.snapshot import SnapshotHeader
from kloset.vfs import iter_node


@dataclass
class StoreStats:
    """A whole store. `dedup_ratio` = logical bytes of all snapshots / bytes in packs."""

    location: str
    store_id: str
    encrypted: bool
    compression_level: int
    chunker: dict[str, Any]
    snapshots: int
    index_files: int
    packs: int
    pack_bytes: int
    blobs: int
    data_blobs: int
    tree_blobs: int
    raw_bytes: int  # plaintext size of every stored blob
    stored_bytes: int  # sealed (compressed + encrypted) size of every stored blob
    logical_bytes: int  # sum over snapshots of the file bytes each one holds
    dedup_ratio: float
    compression_ratio: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def store_stats(repo: Repository) -> StoreStats:
    """Totals of a store, from the index and the snapshot headers."""
    index = repo.index
    data_blobs = tree_blobs = raw = stored = 0
    for _bid, loc in index.items():
        raw += loc.raw_length
        stored += loc.length
        if loc.type == BLOB_TREE:
            tree_blobs += 1
        elif loc.type == BLOB_DATA:
            data_blobs += 1
    snaps = repo.list_snapshots()
    logical = sum(int(s.stats.get("bytes", 0)) for s in snaps)
    pack_bytes = sum(index.pack_sizes.values())
    cfg = repo.config
    return StoreStats(
        location=repo.storage.location,
        store_id=cfg.store_id,
        encrypted=cfg.encrypted,
        compression_level=cfg.compression_level,
        chunker=cfg.chunker.to_json(),
        snapshots=len(snaps),
        index_files=len(index.files),
        packs=len(index.pack_sizes),
        pack_bytes=pack_bytes,
        blobs=len(index),
        data_blobs=data_blobs,
        tree_blobs=tree_blobs,
        raw_bytes=raw,
        stored_bytes=stored,
        logical_bytes=logical,
        dedup_ratio=ratio(logical, pack_bytes),
        compression_ratio=ratio(raw, stored),
    )


@dataclass
class SnapshotStats:
    """One snapshot: what it holds, what it cost when it was taken, what it needs now."""

    id: str
    time_ns: int
    source: str
    host: str
    user: str
    tags: list[str]
    parent: str | None
    files: int
    dirs: int
    symlinks: int
    logical_bytes: int
    bytes_read: int  # read from the source at backup time (unchanged files are not read)
    bytes_added: int  # new packs written by that backup (after dedup and compression)
    duration: float
    chunks: int  # distinct data blobs referenced
    trees: int  # distinct tree blobs referenced
    stored_bytes: int  # sealed size of every distinct blob referenced
    missing_blobs: int
    dedup_ratio: float  # logical bytes / stored bytes
    errors_total: int
    errors: list[tuple[str, str]] = field(default_factory=list)
    origin: dict[str, str] = field(default_factory=dict)  # who ran the backup (FORMAT.md)

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["errors"] = [{"path": p, "error": m} for p, m in self.errors]
        return doc


def snapshot_stats(repo: Repository, header: SnapshotHeader) -> SnapshotStats:
    """Stats of one snapshot; walks its distinct trees once to size what it references."""
    index = repo.index
    seen_trees: set[bytes] = set()
    chunks: set[bytes] = set()
    todo = [header.root]
    stored = missing = 0
    while todo:
        tid = todo.pop()
        if tid in seen_trees:
            continue
        seen_trees.add(tid)
        loc = index.get(tid)
        if loc is None:
            missing += 1
            continue
        stored += loc.length
        node = repo.load_tree(tid)
        if node.pages is not None:
            # Page blobs are trees too: count them, then their entries, by walking the pages.
            for _first, _count, page_id in node.pages:
                page = index.get(page_id)
                if page_id not in seen_trees and page is not None:
                    seen_trees.add(page_id)
                    stored += page.length
        for entry in iter_node(repo, node):
            if entry.is_dir and entry.subtree is not None:
                todo.append(entry.subtree)
            elif entry.is_file:
                chunks.update(entry.chunks)
    for cid in chunks:
        loc = index.get(cid)
        if loc is None:
            missing += 1
        else:
            stored += loc.length
    st = header.stats
    logical = int(st.get("bytes", 0))
    return SnapshotStats(
        id=header.hex,
        time_ns=header.time_ns,
        source=header.source,
        host=header.host,
        user=header.user,
        tags=list(header.tags),
        parent=header.parent.hex() if header.parent else None,
        files=int(st.get("files", 0)),
        dirs=int(st.get("dirs", 0)),
        symlinks=int(st.get("symlinks", 0)),
        logical_bytes=logical,
        bytes_read=int(st.get("bytes_read", 0)),
        bytes_added=int(st.get("bytes_added", 0)),
        duration=float(st.get("duration", 0.0)),
        chunks=len(chunks),
        trees=len(seen_trees),
        stored_bytes=stored,
        missing_blobs=missing,
        dedup_ratio=ratio(logical, stored),
        errors_total=max(header.errors_total, len(header.errors)),
        errors=list(header.errors),
        origin=dict(header.origin),
    )
