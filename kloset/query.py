"""Looking inside snapshots without restoring them: find (glob) and diff.

Both are pure functions over the store returning dataclasses, shared by the CLI and the web UI.
Both lean on content addressing: a directory whose tree id was already seen (at the same
path) is not read again, so searching fifty snapshots of one source costs little more than
searching one, and diffing two big snapshots reads only the subtrees that changed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from kloset.globs import translate
from kloset.repository import Repository
from kloset.snapshot import SnapshotHeader
from kloset.tree import Entry
from kloset.vfs import SnapshotView, iter_tree, normalize


def child_path(base: str, name: str) -> str:
    """`base` + `/` + `name` without posixpath.join's habit of restarting at an absolute name."""
    return f"{base.rstrip('/')}/{name}"


# -- find ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FindMatch:
    """One path that matched a pattern, in one snapshot."""

    snapshot: str
    path: str
    type: str
    size: int
    mtime_ns: int
    mode: int
    target: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "snapshot": self.snapshot,
            "path": self.path,
            "type": self.type,
            "size": self.size,
            "mtime_ns": self.mtime_ns,
            "mode": self.mode,
            "target": self.target,
        }


def glob_regex(pattern: str, *, ignore_case: bool = False) -> re.Pattern[str]:
    """Shell-style glob: `*` and `?` stay within one name, `**` crosses `/`, `[...]` classes."""
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.compile(translate(pattern) + r"\Z", flags)


class Matcher:
    """Decides whether a snapshot path matches.

    A pattern without `/` is matched against names only (like `find -name`). A pattern with
    `/` is matched against whole paths: anchored at the root when it starts with `/`,
    otherwise at any directory boundary (`docs/*.txt` matches `/a/docs/x.txt`).
    """

    def __init__(self, pattern: str, *, ignore_case: bool = False) -> None:
        self.pattern = pattern
        self.on_path = "/" in pattern
        if self.on_path and pattern.startswith("/"):
            self.regex = glob_regex(pattern.lstrip("/"), ignore_case=ignore_case)
            self.anchored = True
        else:
            self.regex = glob_regex(pattern, ignore_case=ignore_case)
            self.anchored = False

    def __call__(self, path: str, name: str) -> bool:
        if not self.on_path:
            return self.regex.match(name) is not None
        rel = path.lstrip("/")
        if self.anchored:
            return self.regex.match(rel) is not None
        if self.regex.match(rel) is not None:
            return True
        return any(
            self.regex.match(rel, pos + 1) is not None
            for pos in (m.start() for m in re.finditer("/", rel))
        )


def _scan(
    repo: Repository,
    tree_id: bytes,
    base: str,
    match: Matcher,
    memo: dict[tuple[bytes, str], list[tuple[str, Entry]]],
) -> list[tuple[str, Entry]]:
    """Matches below one directory, depth first; iterative so deep trees cannot blow the stack."""
    key = (tree_id, base)
    if key in memo:
        return memo[key]
    stack: list[list[Any]] = [[tree_id, base, list(iter_tree(repo, tree_id)), 0, []]]
    while stack:
        frame = stack[-1]
        tid, fbase, entries, pos, acc = frame
        if pos < len(entries):
            frame[3] += 1
            entry = entries[pos]
            path = child_path(fbase, entry.name)
            if match(path, entry.name):
                acc.append((path, entry))
            if entry.is_dir and entry.subtree is not None:
                sub = (entry.subtree, path)
                if sub in memo:
                    acc.extend(memo[sub])
                else:
                    stack.append([entry.subtree, path, list(iter_tree(repo, entry.subtree)), 0, []])
            continue
        stack.pop()
        memo[(tid, fbase)] = acc
        if stack:
            stack[-1][4].extend(acc)
    return memo[key]


def find(
    repo: Repository,
    pattern: str,
    snapshots: Iterable[SnapshotHeader] | None = None,
    *,
    path: str = "/",
    ignore_case: bool = False,
) -> list[FindMatch]:
    """Every entry matching `pattern` below `path` in the given snapshots (default: all)."""
    match = Matcher(pattern, ignore_case=ignore_case)
    headers = list(snapshots) if snapshots is not None else repo.list_snapshots()
    base = normalize(path)
    memo: dict[tuple[bytes, str], list[tuple[str, Entry]]] = {}
    out: list[FindMatch] = []
    for header in headers:
        view = SnapshotView(repo, header)
        start = view.stat(base)
        found: list[tuple[str, Entry]] = []
        if base != "/" and match(base, start.name):
            found.append((base, start))
        if start.is_dir and start.subtree is not None:
            found.extend(_scan(repo, start.subtree, base, match, memo))
        out.extend(
            FindMatch(header.hex, p, e.type, e.size, e.mtime_ns, e.mode, e.target) for p, e in found
        )
    return out


# -- diff ---------------------------------------------------------------------------------------
ADDED = "added"
REMOVED = "removed"
CHANGED = "changed"


@dataclass(frozen=True)
class DiffEntry:
    """One difference. `type` is the new entry's type (the old one's for a removal)."""

    kind: str
    path: str
    type: str
    reasons: tuple[str, ...] = ()
    old_size: int | None = None
    new_size: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "path": self.path,
            "type": self.type,
            "reasons": list(self.reasons),
            "old_size": self.old_size,
            "new_size": self.new_size,
        }


@dataclass
class DiffResult:
    """Differences from `old` to `new`, in path order."""

    old: str
    new: str
    old_path: str
    new_path: str
    entries: list[DiffEntry] = field(default_factory=list)
    trees_compared: int = 0
    trees_skipped: int = 0

    def of_kind(self, kind: str) -> list[DiffEntry]:
        return [e for e in self.entries if e.kind == kind]

    @property
    def added(self) -> list[DiffEntry]:
        return self.of_kind(ADDED)

    @property
    def removed(self) -> list[DiffEntry]:
        return self.of_kind(REMOVED)

    @property
    def changed(self) -> list[DiffEntry]:
        return self.of_kind(CHANGED)

    def to_dict(self) -> dict[str, Any]:
        return {
            "old": self.old,
            "new": self.new,
            "old_path": self.old_path,
            "new_path": self.new_path,
            "added": [e.to_dict() for e in self.added],
            "removed": [e.to_dict() for e in self.removed],
            "changed": [e.to_dict() for e in self.changed],
        }


def entry_differences(old: Entry, new: Entry) -> tuple[str, ...]:
    """Why two entries at the same path differ; empty when they are the same."""
    if old.type != new.type:
        return ("type",)
    reasons = []
    if old.is_file:
        if old.size != new.size:
            reasons.append("size")
        if old.chunks != new.chunks:
            reasons.append("content")
    if old.is_symlink and old.target != new.target:
        reasons.append("target")
    if old.mtime_ns != new.mtime_ns:
        reasons.append("mtime")
    if old.permissions() != new.permissions():
        reasons.append("mode")
    return tuple(reasons)


def _entries(repo: Repository, tree_id: bytes | None) -> list[Entry]:
    if tree_id is None:
        return []
    return sorted(iter_tree(repo, tree_id), key=lambda e: e.name)


class _Differ:
    def __init__(self, repo: Repository, result: DiffResult) -> None:
        self.repo = repo
        self.result = result

    def _emit(
        self,
        kind: str,
        path: str,
        entry: Entry,
        old: Entry | None = None,
        reasons: tuple[str, ...] = (),
    ) -> None:
        self.result.entries.append(
            DiffEntry(
                kind,
                path,
                entry.type,
                reasons,
                old_size=(old.size if old is not None else entry.size) if kind != ADDED else None,
                new_size=entry.size if kind != REMOVED else None,
            )
        )

    def _whole(self, kind: str, base: str, entry: Entry) -> None:
        """An added or removed entry and, for a directory, everything below it (pre-order)."""
        self._emit(kind, base, entry)
        if not entry.is_dir or entry.subtree is None:
            return
        stack: list[tuple[str, Iterator[Entry]]] = [
            (base, iter(_entries(self.repo, entry.subtree)))
        ]
        while stack:
            dbase, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                continue
            cpath = child_path(dbase, child.name)
            self._emit(kind, cpath, child)
            if child.is_dir and child.subtree is not None:
                stack.append((cpath, iter(_entries(self.repo, child.subtree))))

    def compare(self, path: str, old: Entry, new: Entry, *, top: bool = False) -> None:
        reasons = entry_differences(old, new)
        if not top and reasons:
            self._emit(CHANGED, path, new, old, reasons)
        if "type" in reasons:
            if old.is_dir:
                self._dir(path, old.subtree, None)
            if new.is_dir:
                self._dir(path, None, new.subtree)
            return
        if old.is_dir and new.is_dir:
            self._dir(path, old.subtree, new.subtree)

    def _dir(self, base: str, old_tree: bytes | None, new_tree: bytes | None) -> None:
        if old_tree is not None and old_tree == new_tree:
            self.result.trees_skipped += 1  # same content address: nothing below can differ
            return
        self.result.trees_compared += 1
        olds, news = _entries(self.repo, old_tree), _entries(self.repo, new_tree)
        i = j = 0
        while i < len(olds) or j < len(news):
            if j >= len(news) or (i < len(olds) and olds[i].name < news[j].name):
                self._whole(REMOVED, child_path(base, olds[i].name), olds[i])
                i += 1
            elif i >= len(olds) or news[j].name < olds[i].name:
                self._whole(ADDED, child_path(base, news[j].name), news[j])
                j += 1
            else:
                self.compare(child_path(base, news[j].name), olds[i], news[j])
                i += 1
                j += 1


def diff(
    repo: Repository,
    old: SnapshotHeader,
    new: SnapshotHeader,
    old_path: str = "/",
    new_path: str = "/",
) -> DiffResult:
    """Added, removed and changed paths from `old:old_path` to `new:new_path`.

    When both sides name the same path, results carry full snapshot paths; when they differ,
    paths are relative to the compared directories (written with a leading `/`).
    """
    op, np_ = normalize(old_path), normalize(new_path)
    old_entry = SnapshotView(repo, old).stat(op)
    new_entry = SnapshotView(repo, new).stat(np_)
    result = DiffResult(old.hex, new.hex, op, np_)
    base = op if op == np_ else "/"
    differ = _Differ(repo, result)
    if old_entry.is_dir and new_entry.is_dir:
        differ.compare(base, old_entry, new_entry, top=True)
    else:
        shown = base if base != "/" else "/" + (new_entry.name or old_entry.name)
        reasons = entry_differences(old_entry, new_entry)
        if reasons:
            result.entries.append(
                DiffEntry(CHANGED, shown, new_entry.type, reasons, old_entry.size, new_entry.size)
            )
    return result
