"""Read-only view of a snapshot as a filesystem: stat, list (paged), walk, open.

Paths inside a snapshot are relative to the backed-up root and written with a leading `/`.
Nothing here loads more than the directories it is asked about, so browsing a huge snapshot
on a remote store stays cheap.
"""

from __future__ import annotations

import io
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass

from kloset.errors import PathNotFound
from kloset.repository import Repository
from kloset.snapshot import SnapshotHeader
from kloset.tree import DIR, Entry, TreeNode


def normalize(path: str) -> str:
    """'/a/b' form; '' and '.' mean the root. '..' can never climb above the root."""
    parts: list[str] = []
    for part in path.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/" + "/".join(parts)


def iter_node(repo: Repository, node: TreeNode) -> Iterator[Entry]:
    if node.entries is not None:
        yield from node.entries
        return
    for _first, _count, page_id in node.pages or []:
        yield from repo.load_tree(page_id).entries or []


def iter_tree(repo: Repository, tree_id: bytes) -> Iterator[Entry]:
    yield from iter_node(repo, repo.load_tree(tree_id))


def list_tree(
    repo: Repository, tree_id: bytes, offset: int = 0, limit: int | None = None
) -> list[Entry]:
    """A window of a directory's entries, loading only the pages that cover it."""
    node = repo.load_tree(tree_id)
    end = None if limit is None else offset + limit
    if node.entries is not None:
        return node.entries[offset:end]
    out: list[Entry] = []
    pos = 0
    for _first, count, page_id in node.pages or []:
        if end is not None and pos >= end:
            break
        if pos + count > offset:
            entries = repo.load_tree(page_id).entries or []
            lo = max(0, offset - pos)
            hi = count if end is None else min(count, end - pos)
            out.extend(entries[lo:hi])
        pos += count
    return out


def find_in_tree(repo: Repository, tree_id: bytes, name: str) -> Entry | None:
    node = repo.load_tree(tree_id)
    if node.entries is not None:
        entries = node.entries
    else:
        pages = node.pages or []
        page = None
        for first, _count, page_id in pages:
            if first <= name:
                page = page_id
            else:
                break
        if page is None:
            return None
        entries = repo.load_tree(page).entries or []
    lo, hi = 0, len(entries)
    while lo < hi:
        mid = (lo + hi) // 2
        if entries[mid].name < name:
            lo = mid + 1
        else:
            hi = mid
    if lo < len(entries) and entries[lo].name == name:
        return entries[lo]
    return None


@dataclass
class SnapshotView:
    """A snapshot opened for reading."""

    repo: Repository
    header: SnapshotHeader

    def root_entry(self) -> Entry:
        return Entry(name="", type=DIR, mode=0o40755, subtree=self.header.root)

    def stat(self, path: str) -> Entry:
        norm = normalize(path)
        entry = self.root_entry()
        if norm == "/":
            return entry
        for part in norm[1:].split("/"):
            if not entry.is_dir or entry.subtree is None:
                raise PathNotFound(f"{norm} not found in snapshot {self.header.hex[:12]}")
            found = find_in_tree(self.repo, entry.subtree, part)
            if found is None:
                raise PathNotFound(f"{norm} not found in snapshot {self.header.hex[:12]}")
            entry = found
        return entry

    def listdir(self, path: str, offset: int = 0, limit: int | None = None) -> list[Entry]:
        entry = self.stat(path)
        if not entry.is_dir or entry.subtree is None:
            raise PathNotFound(f"{normalize(path)} is not a directory")
        return list_tree(self.repo, entry.subtree, offset, limit)

    def count(self, path: str) -> int:
        entry = self.stat(path)
        if not entry.is_dir or entry.subtree is None:
            return 0
        return self.repo.load_tree(entry.subtree).count

    def walk(self, path: str = "/") -> Iterator[tuple[str, Entry]]:
        """(snapshot path, entry) for `path` and everything below it, depth first."""
        norm = normalize(path)
        entry = self.stat(norm)
        yield norm, entry
        if entry.is_dir and entry.subtree is not None:
            yield from self._walk_dir(norm, entry.subtree)

    def _walk_dir(self, base: str, tree_id: bytes) -> Iterator[tuple[str, Entry]]:
        for child in iter_tree(self.repo, tree_id):
            cpath = posixpath.join(base, child.name)
            yield cpath, child
            if child.is_dir and child.subtree is not None:
                yield from self._walk_dir(cpath, child.subtree)

    def open(self, path: str) -> ChunkReader:
        entry = self.stat(path)
        if not entry.is_file:
            raise PathNotFound(f"{normalize(path)} is not a regular file")
        return ChunkReader(self.repo, entry)


class ChunkReader(io.RawIOBase):
    """Seekable reader over a file's chunks; fetches each chunk by byte range when needed."""

    def __init__(self, repo: Repository, entry: Entry) -> None:
        super().__init__()
        self.repo = repo
        self.chunks = entry.chunks
        self._sizes: list[int] = []
        for cid in self.chunks:
            loc = repo.index.get(cid)
            self._sizes.append(loc.raw_length if loc is not None else 0)
        self.size = sum(self._sizes)
        self._starts = []
        pos = 0
        for s in self._sizes:
            self._starts.append(pos)
            pos += s
        self._pos = 0
        self._cache_idx = -1
        self._cache = b""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self._pos = offset
        elif whence == io.SEEK_CUR:
            self._pos += offset
        else:
            self._pos = self.size + offset
        self._pos = max(0, self._pos)
        return self._pos

    def _chunk_at(self, pos: int) -> int:
        lo, hi = 0, len(self._starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self._starts[mid] <= pos:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
        if self._pos >= self.size or not self.chunks:
            return 0
        idx = self._chunk_at(self._pos)
        if idx != self._cache_idx:
            self._cache = self.repo.read_blob(self.chunks[idx])
            self._cache_idx = idx
        start = self._pos - self._starts[idx]
        n = min(len(buf), len(self._cache) - start)
        buf[:n] = self._cache[start : start + n]
        self._pos += n
        return n

    def read_all_chunks(self) -> Iterator[bytes]:
        for cid in self.chunks:
            yield self.repo.read_blob(cid)
