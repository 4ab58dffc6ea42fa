"""Read-only view of a snapshot as a filesystem: stat, list (paged), walk, open.

Paths inside a snapshot are relative to the backed-up root and written with a leading `/`.
Nothing here loads more than the directories it is asked about, so browsing a huge snapshot
on a remote store stays cheap.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from dataclasses import dataclass

from kloset.errors import PathNotFound
from kloset.reader import FileReader
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

    def open(self, path: str) -> FileReader:
        """A seekable reader with readahead (see `kloset.reader`)."""
        entry = self.stat(path)
        if not entry.is_file:
            raise PathNotFound(f"{normalize(path)} is not a regular file")
        return FileReader(self.repo, entry)
