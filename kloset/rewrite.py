"""Rewrite: remove paths from existing snapshots (a file that must be erased, a folder that
should never have been backed up), the way restic's `rewrite --exclude --forget` does.

Each chosen snapshot's trees are walked and every entry an exclude pattern matches is dropped
(the gitignore-like patterns of `backup --exclude`, matched against paths in the snapshot; a
dropped folder takes everything below it). The trees above a dropped entry are written anew;
every other subtree keeps its id, so a rewrite stores a few trees, never file data. The new
snapshot keeps the old one's time, source, host, user and tags, with its counts recomputed and
its recorded errors about removed paths dropped too, and the old snapshot is deleted. Its
data, once no snapshot uses it, is reclaimed by the next `prune`.

Nothing is written before every snapshot has been planned, so a rewrite that would empty a
snapshot is refused as a whole. New trees, then their index, then each new header, then the
old header: a run killed at any point leaves valid snapshots, and rerunning it finishes the
job (the new header has the same content, so the same id).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kloset import rundir
from kloset.backup.commit import TreeWriter
from kloset.backup.sink import store_packs
from kloset.errors import KlosetError
from kloset.excludes import Excluder
from kloset.repository import Repository, default_spool_dir
from kloset.snapshot import SnapshotHeader
from kloset.tree import DIR, FILE, SYMLINK, Entry
from kloset.vfs import iter_tree

Counts = dict[str, int]  # files, dirs, symlinks, bytes of what a tree holds


@dataclass
class RewriteResult:
    """What happened (or, in a dry run, would happen) to one snapshot."""

    old: str
    new: str | None = None  # None: nothing matched, the snapshot is left as it is
    removed: list[str] = field(default_factory=list)  # snapshot paths, folders end in /
    files_removed: int = 0
    bytes_removed: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "old": self.old,
            "new": self.new,
            "removed": self.removed,
            "files_removed": self.files_removed,
            "bytes_removed": self.bytes_removed,
        }


def _add(total: Counts, more: Counts) -> None:
    for key, value in more.items():
        total[key] = total.get(key, 0) + value


class _Rewriter:
    """Walks trees once per (tree, path): snapshots of one source share most of them."""

    def __init__(self, repo: Repository, excluder: Excluder, writer: TreeWriter) -> None:
        self.repo = repo
        self.excluder = excluder
        self.writer = writer
        self._counts: dict[bytes, Counts] = {}
        self._done: dict[tuple[bytes, str], tuple[bytes, Counts, list[str], Counts]] = {}

    def counts(self, tree_id: bytes) -> Counts:
        """What a tree holds, without any pattern (for subtrees that are dropped or kept)."""
        hit = self._counts.get(tree_id)
        if hit is not None:
            return hit
        total = {"files": 0, "dirs": 0, "symlinks": 0, "bytes": 0}
        for entry in iter_tree(self.repo, tree_id):
            _add(total, self._entry_counts(entry))
        self._counts[tree_id] = total
        return total

    def _entry_counts(self, entry: Entry) -> Counts:
        if entry.type == FILE:
            return {"files": 1, "bytes": entry.size}
        if entry.type == SYMLINK:
            return {"symlinks": 1}
        sub = self.counts(entry.subtree) if entry.subtree else {}
        return {**sub, "dirs": sub.get("dirs", 0) + 1}

    def tree(self, tree_id: bytes, rel: str) -> tuple[bytes, Counts, list[str], Counts]:
        """(new tree id, counts kept, paths removed, counts removed) for the folder at `rel`."""
        key = (tree_id, rel)
        hit = self._done.get(key)
        if hit is not None:
            return hit
        kept: list[Entry] = []
        kept_counts: Counts = {"files": 0, "dirs": 0, "symlinks": 0, "bytes": 0}
        removed: list[str] = []
        removed_counts: Counts = {}
        changed = False
        for entry in iter_tree(self.repo, tree_id):
            child = f"{rel}/{entry.name}" if rel else entry.name
            if self.excluder.excluded(child, entry.type == DIR):
                removed.append("/" + child + ("/" if entry.type == DIR else ""))
                _add(removed_counts, self._entry_counts(entry))
                changed = True
                continue
            if entry.type == DIR and entry.subtree is not None:
                sub_id, sub_kept, sub_removed, sub_gone = self.tree(entry.subtree, child)
                if sub_id != entry.subtree:
                    entry = Entry(
                        entry.name, DIR, entry.mode, entry.mtime_ns, subtree=sub_id,
                        extra=entry.extra,
                    )  # fmt: skip
                    changed = True
                removed += sub_removed
                _add(removed_counts, sub_gone)
                _add(kept_counts, {**sub_kept, "dirs": sub_kept.get("dirs", 0) + 1})
            else:
                _add(kept_counts, self._entry_counts(entry))
            kept.append(entry)
        new_id = self.writer.write(kept) if changed else tree_id
        result = (new_id, kept_counts, removed, removed_counts)
        self._done[key] = result
        return result


def _keep_error(excluder: Excluder, path: str) -> bool:
    """Whether a recorded backup error is about a path that stays (errors name paths too)."""
    parts = [p for p in path.split("/") if p]
    for i in range(1, len(parts) + 1):
        if excluder.excluded("/".join(parts[:i]), i < len(parts)):
            return False
    return True


def rewrite_snapshots(
    repo: Repository,
    headers: list[SnapshotHeader],
    patterns: list[str],
    *,
    dry_run: bool = False,
    on_result: Callable[[RewriteResult], None] | None = None,
) -> list[RewriteResult]:
    """Remove every path matching `patterns` from `headers` (oldest first), see the module."""
    excluder = Excluder(patterns)
    if not excluder:
        raise KlosetError("rewrite needs at least one --exclude pattern")
    from kloset.locks import store_lock

    run_dir = os.path.join(
        default_spool_dir(repo.storage), f"rewrite-{time.time_ns()}-{os.urandom(4).hex()}"
    )
    os.makedirs(run_dir)
    try:
        with store_lock(repo, False, "rewrite", required=not dry_run):
            return _rewrite(repo, headers, excluder, TreeWriter(repo, run_dir), dry_run, on_result)
    finally:
        rundir.remove_run(run_dir)


def _rewrite(
    repo: Repository,
    headers: list[SnapshotHeader],
    excluder: Excluder,
    writer: TreeWriter,
    dry_run: bool,
    on_result: Callable[[RewriteResult], None] | None,
) -> list[RewriteResult]:
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))  # deep folder chains
    rewriter = _Rewriter(repo, excluder, writer)
    planned: list[tuple[RewriteResult, SnapshotHeader | None]] = []
    for header in sorted(headers, key=lambda h: (h.time_ns, h.id)):
        root, kept, removed, gone = rewriter.tree(header.root, "")
        result = RewriteResult(header.hex, removed=removed)
        result.files_removed = gone.get("files", 0)
        result.bytes_removed = gone.get("bytes", 0)
        if root == header.root:
            planned.append((result, None))
            continue
        if not any(kept.values()):
            raise KlosetError(
                f"refusing to rewrite snapshot {header.hex[:12]}: every path in it matches "
                "(remove the snapshot with rm instead)"
            )
        planned.append((result, _new_header(header, root, kept, excluder, len(removed))))
    if not dry_run:
        store_packs(repo, writer.finish())  # trees first, then their index
    renamed: dict[bytes, bytes] = {}
    for result, new in planned:
        if new is not None and not dry_run:
            if new.parent in renamed:
                new.parent = renamed[new.parent]
            old_id = bytes.fromhex(result.old)
            new_id = repo.save_snapshot(new)  # the new header first: never neither
            renamed[old_id] = new_id
            result.new = new_id.hex()
            repo.delete_snapshot(old_id)
        if on_result is not None:
            on_result(result)
    return [r for r, _h in planned]


def _new_header(
    old: SnapshotHeader, root: bytes, kept: Counts, excluder: Excluder, removed: int
) -> SnapshotHeader:
    errors = [(p, m) for p, m in old.errors if _keep_error(excluder, p)]
    dropped_errors = len(old.errors) - len(errors)
    stats = dict(old.stats)
    stats.update(kept)
    stats["errors"] = max(0, int(stats.get("errors", len(old.errors))) - dropped_errors)
    stats["rewrite_removed"] = int(stats.get("rewrite_removed", 0)) + removed
    return old.derived(
        root=root,
        stats=stats,
        errors=errors,
        errors_total=max(0, old.errors_total - dropped_errors),
    )
