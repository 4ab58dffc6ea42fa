"""The whole store as one read-only tree, in restic's layout: what `mount` and `serve webdav`
both show, so the two can never disagree.

```
/snapshots/<time>-<id8>/…      every snapshot, by local time and short id (sorts by time)
/ids/<id>/…                    every snapshot, by full id (what `backup` printed)
/tags/<tag>/<time>-<id8>/…     the snapshots carrying each tag
/latest/…                      the newest snapshot
```

`<time>` is `2025-11-25T18.17.34` (local time, like `kloset ls`): dots instead of colons, which
Windows, macOS Finder and SMB shares cannot show. Below a snapshot, entries are shown as
stored: modes, nanosecond mtimes, symlinks with their targets. Snapshot headers come from a
`SnapshotCatalog`, so new snapshots appear within its refresh interval and old ones vanish.
"""

from __future__ import annotations

import stat
import threading
import time
from dataclasses import dataclass

from kloset.catalog import SnapshotCatalog
from kloset.errors import PathNotFound
from kloset.reader import FileReader
from kloset.repository import Repository
from kloset.snapshot import SnapshotHeader
from kloset.tree import DIR, FILE, SYMLINK, Entry
from kloset.vfs import SnapshotView, list_tree

TOP_DIRS = ("ids", "latest", "snapshots", "tags")
VIRTUAL_DIR_MODE = stat.S_IFDIR | 0o555
SNAPSHOT_ROOT_MODE = stat.S_IFDIR | 0o755  # snapshots record no metadata for their root


@dataclass(frozen=True)
class Node:
    """One path of the tree: a virtual folder, or an entry inside a snapshot.

    `immutable` is true when the bytes at this path can never change (anything below
    `/snapshots`, `/ids` or `/tags`), so clients may cache them; `/latest/…` moves on with
    every new snapshot.
    """

    type: str
    mode: int
    mtime_ns: int
    size: int = 0
    target: str | None = None
    entry: Entry | None = None
    view: SnapshotView | None = None
    immutable: bool = False

    @property
    def is_dir(self) -> bool:
        return self.type == DIR


def snapshot_dir_name(header: SnapshotHeader) -> str:
    """`2025-11-25T18.17.34-5c85d2cb`: the snapshot's local time and short id."""
    when = time.strftime("%Y-%m-%dT%H.%M.%S", time.localtime(header.time_ns // 1_000_000_000))
    return f"{when}-{header.hex[:8]}"


def tag_dir_name(tag: str) -> str:
    """A tag as a folder name: `/` cannot be part of one, and `.`/`..` mean something else."""
    name = tag.replace("/", "_").replace("\x00", "_")
    return f"_{name}" if name in ("", ".", "..") else name


def entry_mode(entry: Entry) -> int:
    """The full st_mode of an entry: stored permission bits, type bits from the entry type
    (remote sources and crafted trees may store none)."""
    kind = {DIR: stat.S_IFDIR, SYMLINK: stat.S_IFLNK}.get(entry.type, stat.S_IFREG)
    perms = stat.S_IMODE(entry.mode)
    if entry.type == SYMLINK:
        perms = 0o777
    elif not perms:
        perms = 0o755 if entry.type == DIR else 0o644
    return kind | perms


def showable(name: str) -> bool:
    """Names a crafted tree may hold that no filesystem path can spell are left out."""
    return name not in ("", ".", "..") and "/" not in name and "\x00" not in name


@dataclass
class _Layout:
    """Snapshot lookups for one state of the catalogue."""

    by_name: dict[str, SnapshotHeader]
    by_id: dict[str, SnapshotHeader]
    by_tag: dict[str, dict[str, SnapshotHeader]]
    latest: SnapshotHeader | None


class StoreTree:
    """Resolves paths of the tree; thread-safe (FUSE and WebDAV call it from many threads)."""

    def __init__(self, repo: Repository, catalog: SnapshotCatalog | None = None) -> None:
        self.repo = repo
        self.catalog = catalog or SnapshotCatalog(repo)
        self._lock = threading.Lock()
        self._layout: _Layout | None = None
        self._layout_of = -1  # the catalogue generation it was built from

    # -- the snapshot layout -------------------------------------------------------------
    def layout(self) -> _Layout:
        """Name → snapshot tables, rebuilt only when the catalogue saw snapshots come or go."""
        self.catalog.refresh()  # lists `snapshots/` at most every few seconds
        generation = self.catalog.generation
        with self._lock:
            if self._layout is not None and generation == self._layout_of:
                return self._layout
        headers = self.catalog.headers()
        by_name: dict[str, SnapshotHeader] = {}
        for h in headers:
            name = snapshot_dir_name(h)
            by_name[h.hex if name in by_name else name] = h  # same second and short id: rare
        by_tag: dict[str, dict[str, SnapshotHeader]] = {}
        for name, h in by_name.items():
            for tag in h.tags:
                by_tag.setdefault(tag_dir_name(tag), {})[name] = h
        by_id = {h.hex: h for h in sorted(headers, key=lambda h: h.hex)}
        layout = _Layout(by_name, by_id, by_tag, headers[-1] if headers else None)
        with self._lock:
            self._layout, self._layout_of = layout, generation
        return layout

    def _virtual_dir(self, headers: list[SnapshotHeader]) -> Node:
        newest = max((h.time_ns for h in headers), default=0)
        return Node(DIR, VIRTUAL_DIR_MODE, newest)

    def _snapshot_root(self, header: SnapshotHeader, immutable: bool) -> Node:
        view = SnapshotView(self.repo, header)
        return Node(
            DIR,
            SNAPSHOT_ROOT_MODE,
            header.time_ns,
            entry=view.root_entry(),
            view=view,
            immutable=immutable,
        )

    def _split(self, path: str) -> tuple[Node, list[str]]:
        """The node that `path` enters the store through, and the rest of the path below it."""
        parts = [p for p in path.split("/") if p not in ("", ".")]
        layout = self.layout()
        every = list(layout.by_id.values())
        if not parts:
            return self._virtual_dir(every), []
        top, rest = parts[0], parts[1:]
        if top == "latest":
            if layout.latest is None:
                raise PathNotFound("/latest: the store has no snapshots")
            return self._snapshot_root(layout.latest, False), rest
        if top in ("snapshots", "ids"):
            if not rest:
                return self._virtual_dir(every), []
            table = layout.by_name if top == "snapshots" else layout.by_id
            header = table.get(rest[0])
            if header is None:
                raise PathNotFound(f"/{top}/{rest[0]}: no such snapshot")
            return self._snapshot_root(header, True), rest[1:]
        if top == "tags":
            if not rest:
                return self._virtual_dir(every), []
            tagged = layout.by_tag.get(rest[0])
            if tagged is None:
                raise PathNotFound(f"/tags/{rest[0]}: no snapshot has this tag")
            if len(rest) == 1:
                return self._virtual_dir(list(tagged.values())), []
            header = tagged.get(rest[1])
            if header is None:
                raise PathNotFound(f"/tags/{rest[0]}/{rest[1]}: no such snapshot")
            return self._snapshot_root(header, True), rest[2:]
        raise PathNotFound(f"/{top}: not found")

    # -- the filesystem operations -------------------------------------------------------
    def stat(self, path: str) -> Node:
        base, rest = self._split(path)
        if not rest:
            return base
        assert base.view is not None
        entry = base.view.stat("/" + "/".join(rest))
        return self._entry_node(entry, base)

    def _entry_node(self, entry: Entry, base: Node) -> Node:
        return Node(
            entry.type,
            entry_mode(entry),
            entry.mtime_ns,
            size=entry.size if entry.type == FILE else 0,
            target=entry.target,
            entry=entry,
            view=base.view,
            immutable=base.immutable,
        )

    def listdir(self, path: str) -> list[tuple[str, Node]]:
        """(name, node) of every child of a folder, in name order."""
        node = self.stat(path)
        if not node.is_dir:
            raise PathNotFound(f"{path} is not a folder")
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if node.view is not None:
            assert node.entry is not None and node.entry.subtree is not None
            return [
                (e.name, self._entry_node(e, node))
                for e in list_tree(self.repo, node.entry.subtree)
                if showable(e.name)
            ]
        layout = self.layout()
        if not parts:
            shown = [t for t in TOP_DIRS if t != "latest" or layout.latest is not None]
            return [(t, self.stat("/" + t)) for t in shown]
        if parts == ["snapshots"]:
            table = layout.by_name
        elif parts == ["ids"]:
            table = layout.by_id
        elif parts == ["tags"]:
            return [
                (tag, self._virtual_dir(list(snaps.values())))
                for tag, snaps in sorted(layout.by_tag.items())
            ]
        else:  # /tags/<tag>
            table = layout.by_tag.get(parts[1], {})
        # Oldest first (the catalogue's order): names of one second would sort by id instead.
        return [(name, self._snapshot_root(h, True)) for name, h in table.items()]

    def open(self, path: str) -> FileReader:
        node = self.stat(path)
        if node.type != FILE or node.entry is None:
            raise PathNotFound(f"{path} is not a regular file")
        return FileReader(self.repo, node.entry)

    def readlink(self, path: str) -> str:
        node = self.stat(path)
        if node.type != SYMLINK:
            raise PathNotFound(f"{path} is not a symlink")
        return node.target or ""
