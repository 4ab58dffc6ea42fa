"""Sync: copy snapshots from one store to another, sending only what the destination lacks.

Two cases, because blob ids are keyed per store:

* **Same keys** (a store made by `kloset.keys_change.create_linked`): ids mean the same on
  both sides, so missing blobs are copied still sealed (authenticated first, never
  re-encrypted) and the snapshot header is copied as it is, keeping its id.
* **Different keys**: every id changes. File contents are streamed out of the source and cut
  again with the destination's chunker (its own seed and sizes), so they deduplicate against
  the destination's native backups of the same files; trees are rebuilt bottom-up with the new
  ids exactly as a native backup would write them, then a new header points at the new root.

Either way the destination's commit order holds (packs, their index, the header last) and the
source is only read. A killed sync leaves packs that the next run adopts instead of resending.
"""

from __future__ import annotations

import io
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pyfastcdc import FastCDC

from kloset.errors import CorruptObject, NoSpace
from kloset.fetch import fetch_blobs, plan_ranges
from kloset.locks import store_lock
from kloset.pack import BLOB_DATA, BLOB_TREE, PackWriter, SealedPack, pack_name
from kloset.repair import adopt_unindexed_packs
from kloset.repository import Repository, default_spool_dir
from kloset.snapshot import SnapshotHeader
from kloset.tree import PAGE_SIZE, Entry, decode_tree, encode_entries, encode_pages
from kloset.vfs import iter_tree

INDEX_EVERY = 8
GROUP_BLOBS = 256
WINDOW = 8
Progress = Callable[[str, dict[str, Any]], None]


@dataclass
class SyncReport:
    """What was copied; `bytes_added` is what the destination grew by (sealed pack bytes)."""

    same_keys: bool
    copied: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    blobs_added: int = 0
    bytes_added: int = 0
    packs_written: int = 0
    packs_adopted: int = 0
    duration: float = 0.0


class _Sink:
    """Packs blobs for the destination, uploads each pack when full, indexes them in groups."""

    def __init__(self, dst: Repository, spool: str, report: SyncReport) -> None:
        self.dst = dst
        self.spool = spool
        self.report = report
        self.written: set[bytes] = set()
        self.writer: PackWriter | None = None
        self.unindexed: list[SealedPack] = []

    def has(self, blob_id: bytes) -> bool:
        return blob_id in self.written or blob_id in self.dst.index

    def add(self, blob_type: int, blob_id: bytes, data: bytes) -> None:
        self._writer().add(blob_type, blob_id, data)
        self._added(blob_id)

    def add_sealed(self, blob_type: int, blob_id: bytes, sealed: bytes, raw_length: int) -> None:
        self._writer().add_sealed(blob_type, blob_id, sealed, raw_length)
        self._added(blob_id)

    def _writer(self) -> PackWriter:
        if self.writer is None:
            self.writer = PackWriter(self.dst.cipher, self.spool, self.dst.config.compression_level)
        return self.writer

    def _added(self, blob_id: bytes) -> None:
        self.written.add(blob_id)
        self.report.blobs_added += 1
        if self.writer is not None and self.writer.size >= self.dst.config.pack_size:
            self._seal()
            if len(self.unindexed) >= INDEX_EVERY:
                self._index()

    def _seal(self) -> None:
        assert self.writer is not None
        sealed = self.writer.seal()
        self.writer = None
        self.dst.storage.put_local_file(sealed.path, sealed.name, move=True)
        self.unindexed.append(sealed)
        self.report.packs_written += 1
        self.report.bytes_added += sealed.size

    def _index(self) -> None:
        if self.unindexed:
            self.dst.write_index(self.unindexed)  # packs first, then the index naming them
            self.unindexed = []

    def flush(self) -> None:
        if self.writer is not None and len(self.writer):
            self._seal()
        self._index()

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()
            self.writer = None


def sync_snapshots(
    src: Repository,
    dst: Repository,
    snapshots: list[SnapshotHeader] | None = None,
    *,
    lock_wait: float | None = None,
    progress: Progress | None = None,
) -> SyncReport:
    """Copy `snapshots` (default: all) from `src` to `dst`, oldest first."""
    started = time.perf_counter()
    emit = progress or (lambda _e, _d: None)
    same = src.keys == dst.keys
    report = SyncReport(same_keys=same)
    if same:  # before any lock or spool is written: a sync that cannot fit is refused whole
        have = {h.id for h in dst.list_snapshots()}
        todo = snapshots if snapshots is not None else src.list_snapshots()
        _check_room(src, dst, [h for h in todo if h.id not in have])
    with (
        store_lock(src, False, "sync (source)", wait=lock_wait, required=False),
        store_lock(dst, False, "sync", wait=lock_wait),
    ):
        report.packs_adopted = adopt_unindexed_packs(dst).packs
        wanted = snapshots if snapshots is not None else src.list_snapshots()
        chosen = sorted({h.id: h for h in wanted}.values(), key=lambda h: (h.time_ns, h.id))
        existing = dst.list_snapshots()
        dst_ids = {h.id for h in existing}
        by_origin = {(h.time_ns, h.source, h.host): h for h in existing}
        spool = os.path.join(default_spool_dir(dst.storage), f"sync-{time.time_ns()}-{os.getpid()}")
        os.makedirs(spool, exist_ok=True)
        sink = _Sink(dst, spool, report)
        copier = _SameKeys(src, sink) if same else _Reencode(src, dst, sink)
        mapped: dict[bytes, bytes] = {}
        try:
            for header in chosen:
                if same:
                    twin = header if header.id in dst_ids else None
                else:
                    twin = by_origin.get((header.time_ns, header.source, header.host))
                if twin is not None:
                    mapped[header.id] = twin.id
                    report.skipped.append(header.hex)
                    continue
                emit("snapshot", {"id": header.hex})
                root = copier.tree(header.root)
                sink.flush()
                if same:
                    # Same keys: the sealed header is valid as it is and keeps its id.
                    name = f"snapshots/{header.hex}"
                    dst.storage.write(name, src.storage.read(name))
                    mapped[header.id] = header.id
                    report.copied.append((header.hex, header.hex))
                    continue
                new = header.derived(root=root, parent=mapped.get(header.parent or b""))
                new_id = dst.save_snapshot(new)
                mapped[header.id] = new_id
                report.copied.append((header.hex, new_id.hex()))
        finally:
            sink.abort()
            shutil.rmtree(spool, ignore_errors=True)
    report.duration = time.perf_counter() - started
    return report


def _check_room(src: Repository, dst: Repository, headers: list[SnapshotHeader]) -> None:
    """Refuse, before anything is sent, a same-keys sync whose missing blobs (exactly what it
    will send, sealed) exceed the free space the destination reports. A subtree the
    destination already holds is not walked: its data came before it."""
    free = dst.storage.free_space()
    if free is None or not headers:
        return
    need = 0
    seen: set[bytes] = set()
    todo = [h.root for h in headers]
    while todo:
        tree_id = todo.pop()
        if tree_id in seen or tree_id in dst.index:
            continue
        seen.add(tree_id)
        pages = src.load_tree(tree_id).pages or []  # a large folder's pages are blobs too
        need += _stored(src, tree_id) + sum(_stored(src, page) for _n, _c, page in pages)
        for entry in iter_tree(src, tree_id):
            if entry.is_dir and entry.subtree:
                todo.append(entry.subtree)
            for chunk in entry.chunks or ():
                if chunk not in seen and chunk not in dst.index:
                    seen.add(chunk)
                    need += _stored(src, chunk)
    if need > free:
        raise NoSpace(
            f"not enough space on {dst.storage.location}: the sync sends {need / 2**20:,.1f} MiB "
            f"but the destination reports {free / 2**20:,.1f} MiB free "
            f"({(need - free) / 2**20:,.1f} MiB missing); nothing was written"
        )


def _stored(repo: Repository, blob_id: bytes) -> int:
    where = repo.index.get(blob_id)
    return where.length if where is not None else 0


def _fetch_sealed(src: Repository, ids: list[bytes]) -> dict[bytes, bytes]:
    """Sealed bytes of blobs, grouped per pack with coalesced ranged reads."""
    out: dict[bytes, bytes] = {}
    for pid, ranges in plan_ranges(src, ids).items():
        name = pack_name(pid)
        for start, end, members in ranges:
            try:
                data = src.storage.read_range(name, start, end - start)
            except FileNotFoundError as exc:
                raise CorruptObject(f"{name}: pack is missing") from exc
            for bid, off, length in members:
                out[bid] = data[off - start : off - start + length]
    return out


class _SameKeys:
    """Walks every tree of a snapshot (a tree the destination has does not prove its subtree is
    complete there: prune may have kept the tree and dropped its data) and copies sealed blobs."""

    def __init__(self, src: Repository, sink: _Sink) -> None:
        self.src = src
        self.sink = sink
        self.visited: set[bytes] = set()

    def tree(self, root: bytes) -> bytes:
        frontier = [root]
        while frontier:
            level = [t for t in dict.fromkeys(frontier) if t not in self.visited]
            self.visited.update(level)
            frontier = []
            chunks: list[bytes] = []
            for start in range(0, len(level), GROUP_BLOBS):
                part = level[start : start + GROUP_BLOBS]
                sealed = _fetch_sealed(self.src, part)
                for tid in part:
                    raw = self.src.decode_blob(tid, sealed[tid], "source tree")
                    node = decode_tree(raw, f"tree {tid.hex()[:16]}")
                    self._copy(tid, sealed[tid], BLOB_TREE, len(raw))
                    frontier.extend(p for _f, _c, p in node.pages or [])
                    for e in node.entries or []:
                        if e.is_file:
                            chunks.extend(c for c in e.chunks if c not in self.visited)
                        elif e.is_dir and e.subtree is not None:
                            frontier.append(e.subtree)
            todo = [c for c in dict.fromkeys(chunks) if not self.sink.has(c)]
            self.visited.update(chunks)
            for start in range(0, len(todo), GROUP_BLOBS):
                part = todo[start : start + GROUP_BLOBS]
                sealed = _fetch_sealed(self.src, part)
                for bid in part:
                    self.src.decode_blob(bid, sealed[bid], "source chunk")  # never copy damage
                    loc = self.src.index.get(bid)
                    assert loc is not None
                    self._copy(bid, sealed[bid], loc.type, loc.raw_length)
        return root

    def _copy(self, bid: bytes, sealed: bytes, blob_type: int, raw_length: int) -> None:
        if not self.sink.has(bid):
            self.sink.add_sealed(blob_type, bid, sealed, raw_length)


class _ChunkStream(io.RawIOBase):
    """A file's plaintext, read from the source a few chunks at a time."""

    def __init__(self, src: Repository, chunks: list[bytes]) -> None:
        super().__init__()
        self._blocks = self._iter(src, chunks)
        self._buf = memoryview(b"")

    @staticmethod
    def _iter(src: Repository, chunks: list[bytes]) -> Iterator[bytes]:
        for start in range(0, len(chunks), WINDOW):
            window = chunks[start : start + WINDOW]
            blobs = fetch_blobs(src, window)
            for c in window:
                yield blobs[c]

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        while not self._buf:
            nxt = next(self._blocks, None)
            if nxt is None:
                return 0
            self._buf = memoryview(nxt)
        n = min(len(buf), len(self._buf))
        buf[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


class _Reencode:
    """Rebuilds a snapshot under the destination's keys, as a native backup would store it."""

    def __init__(self, src: Repository, dst: Repository, sink: _Sink) -> None:
        cfg = dst.config.chunker
        self.src = src
        self.dst = dst
        self.sink = sink
        self.min_size = cfg.min_size
        self.cdc = FastCDC(
            cfg.avg_size,
            min_size=cfg.min_size,
            max_size=cfg.max_size,
            normalized_chunking=cfg.normalization,  # type: ignore[arg-type]
            seed=dst.keys.chunker_seed,
        )
        self.trees: dict[bytes, bytes] = {}
        self.files: dict[tuple[bytes, ...], list[bytes]] = {}

    def _put(self, blob_type: int, data: bytes) -> bytes:
        bid = self.dst.blob_id(data)
        if not self.sink.has(bid):
            self.sink.add(blob_type, bid, data)
        return bid

    def _file(self, chunks: list[bytes]) -> list[bytes]:
        key = tuple(chunks)
        hit = self.files.get(key)
        if hit is not None:
            return hit
        stream = _ChunkStream(self.src, chunks)
        head = _read_upto(stream, self.min_size + 1)
        if len(head) <= self.min_size:  # the backup's small-file rule: one chunk, no CDC
            out = [self._put(BLOB_DATA, head)] if head else []
        else:
            rest = io.BufferedReader(_Prefixed(head, stream), 1 << 20)
            out = [self._put(BLOB_DATA, bytes(ch.data)) for ch in self.cdc.cut_stream(rest)]
        self.files[key] = out
        return out

    def _write_tree(self, entries: list[Entry]) -> bytes:
        entries.sort(key=lambda e: e.name)
        if len(entries) <= PAGE_SIZE:
            return self._put(BLOB_TREE, encode_entries(entries))
        pages = []
        for start in range(0, len(entries), PAGE_SIZE):
            page = entries[start : start + PAGE_SIZE]
            pages.append((page[0].name, len(page), self._put(BLOB_TREE, encode_entries(page))))
        return self._put(BLOB_TREE, encode_pages(pages))

    def tree(self, root: bytes) -> bytes:
        """Post-order without recursion: directory depth is the user's, not Python's."""
        expanded: dict[bytes, list[Entry]] = {}
        stack = [root]
        while stack:
            tid = stack[-1]
            if tid in self.trees:
                stack.pop()
                continue
            if tid not in expanded:
                expanded[tid] = list(iter_tree(self.src, tid))
                kids = [
                    e.subtree
                    for e in expanded[tid]
                    if e.is_dir and e.subtree and e.subtree not in self.trees
                ]
                if kids:
                    stack.extend(kids)
                    continue
            entries = []
            for e in expanded.pop(tid):
                if e.is_file:
                    e = Entry(
                        e.name,
                        e.type,
                        e.mode,
                        e.mtime_ns,
                        e.size,
                        self._file(e.chunks),
                        extra=e.extra,
                    )
                elif e.is_dir and e.subtree is not None:
                    e = Entry(
                        e.name,
                        e.type,
                        e.mode,
                        e.mtime_ns,
                        subtree=self.trees[e.subtree],
                        extra=e.extra,
                    )
                entries.append(e)
            self.trees[tid] = self._write_tree(entries)
            stack.pop()
        return self.trees[root]


def _read_upto(stream: io.RawIOBase, n: int) -> bytes:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = stream.readinto(view[got:]) or 0
        if not k:
            break
        got += k
    return bytes(view[:got])


class _Prefixed(io.RawIOBase):
    """`head` followed by the rest of a stream (the small-file probe must not lose bytes)."""

    def __init__(self, head: bytes, rest: io.RawIOBase) -> None:
        super().__init__()
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        if self._head:
            n = min(len(buf), len(self._head))
            buf[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        return self._rest.readinto(buf) or 0
