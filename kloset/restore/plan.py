"""Restore, stage 1: walk the snapshot below a path (the part `--include`/`--exclude` select),
delete what `--delete` must, create the directories, batch the files.

Files are ordered by where their data lives (pack, offset) so each batch reads few, coalesced
ranges. A directory that cannot be created drops its whole subtree, so nothing is ever written
below it.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from kloset import rundir
from kloset.destination import Destination, LocalDestination, safe_parts
from kloset.errors import KlosetError, UnsafePath
from kloset.repository import Repository
from kloset.restore.delete import remove_extras
from kloset.restore.select import Selection
from kloset.snapshot import SnapshotHeader
from kloset.tree import Entry
from kloset.vfs import SnapshotView, iter_tree, normalize


@dataclass
class RestorePlan:
    run_dir: str
    snapshot: str
    path: str
    batches: int
    files: int
    dirs: int
    symlinks: int
    bytes: int
    errors: list[tuple[str, str]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)  # by --delete, target-relative

    def discard(self) -> None:
        """Remove the plan's run directory: once the restore ended, nothing reads it again
        (a rerun plans afresh and skips what is already written)."""
        rundir.remove_run(self.run_dir)


def plan_restore(
    repo: Repository,
    header: SnapshotHeader,
    path: str,
    dest: Destination,
    spool_root: str,
    *,
    batch_bytes: int = 32 * 1024 * 1024,
    batch_files: int = 512,
    threads: int = 8,
    select: Selection | None = None,
    delete: bool = False,
    dry_run: bool = False,
) -> RestorePlan:
    """Walk the snapshot below `path` (only what `select` covers), delete what the target has
    and the snapshot does not (`delete`), create the directories, and batch the files.
    `dry_run` changes nothing in the target: no directory is created, nothing deleted."""
    view = SnapshotView(repo, header)
    base = normalize(path)
    run_dir = os.path.join(spool_root, f"restore-{time.time_ns()}-{os.urandom(4).hex()}")
    errors: list[tuple[str, str]] = []
    root_entry = view.stat(base)
    if delete and not root_entry.is_dir:
        raise KlosetError(f"--delete needs a folder to restore, and {base} is a file")
    found = _walk(repo, base, root_entry, select, errors)
    # Before anything is created or deleted: a destination that reports its free space
    # (Koofr) refuses a restore that cannot fit, with one line (what --delete would remove may
    # well stay in Koofr's trash, counted against the quota, so it is not counted as freed).
    dest.check_room([(rel, entry.size) for _spath, rel, entry in found if entry.is_file])
    deleted: list[str] = []
    if delete:
        deleted = _delete_extras(dest, base, found, select, dry_run, errors)

    dirs = [(rel, spath) for spath, rel, entry in found if entry.is_dir]
    failed = set() if dry_run else _create_dirs(dest, dirs, threads, errors)
    items: list[list[Any]] = []
    files: list[tuple[tuple[bytes, int], int]] = []
    counts = {"files": 0, "dirs": 0, "symlinks": 0, "bytes": 0}
    for spath, rel, entry in found:
        if failed and _below(rel, failed, include_self=not entry.is_dir):
            continue  # nothing is written below a directory that could not be created
        if entry.is_dir:
            if rel in failed:
                continue
            if spath == "/":
                continue  # snapshots record no metadata for their root: leave the target's alone
            counts["dirs"] += 1
        elif entry.is_file:
            counts["files"] += 1
            counts["bytes"] += entry.size
            first = repo.index.get(entry.chunks[0]) if entry.chunks else None
            key = (first.pack_id, first.offset) if first is not None else (b"", 0)
            files.append((key, len(items)))
        else:
            counts["symlinks"] += 1
        items.append([rel, entry.to_obj()])
    files.sort()
    batches: list[list[int]] = []
    current: list[int] = []
    cur = 0
    for _key, idx in files:
        size = int(items[idx][1].get("s", 0))
        current.append(idx)
        cur += size
        if cur >= batch_bytes or len(current) >= batch_files:
            batches.append(current)
            current, cur = [], 0
    if current:
        batches.append(current)
    os.makedirs(run_dir, exist_ok=True)
    rundir.write_msgpack(
        rundir.plan_path(run_dir),
        {"v": 1, "snapshot": header.id, "path": base, "items": items, "batches": batches},
    )
    return RestorePlan(
        run_dir, header.hex, base, len(batches), errors=errors, deleted=deleted, **counts
    )


def _walk(
    repo: Repository,
    base: str,
    root_entry: Entry,
    select: Selection | None,
    errors: list[tuple[str, str]],
) -> list[tuple[str, str, Entry]]:
    """(snapshot path, target-relative path, entry) of everything to restore, parents first.

    Our own depth-first walk (not view.walk) so that a directory we refuse, exclude or cannot
    read is not descended into; one we cannot create drops its whole subtree afterwards.
    """
    found: list[tuple[str, str, Entry, bool]] = []  # ... and whether --include names it
    rel0 = "" if root_entry.is_dir else root_entry.name  # a single file lands inside the target
    inside0 = select.covers(base.lstrip("/"), root_entry.is_dir) if select else True
    todo: list[tuple[str, str, Entry, bool]] = [(base, rel0, root_entry, inside0)]
    while todo:
        spath, rel, entry, inside = todo.pop()
        try:
            if entry is not root_entry and (entry.name in ("", ".", "..") or "/" in entry.name):
                # A crafted tree may hold names with '/', which would silently address another
                # path (possibly below a symlink already in the target).
                raise UnsafePath(f"refusing unsafe name {entry.name!r}")
            safe_parts(rel)
        except UnsafePath as exc:
            errors.append((spath, str(exc)))
            continue
        if select and entry is not root_entry:
            srel = spath.lstrip("/")
            if select.excluded(srel, entry.is_dir):
                continue
            inside = select.included(srel, entry.is_dir, inside)
        found.append((spath, rel, entry, inside))
        if entry.is_dir:
            try:
                children = list(iter_tree(repo, entry.subtree)) if entry.subtree else []
            except KlosetError as exc:
                errors.append((spath, f"cannot read directory: {exc}"))
                children = []
            for child in reversed(children):
                cpath = f"{spath.rstrip('/')}/{child.name}"
                todo.append((cpath, f"{rel}/{child.name}" if rel else child.name, child, inside))
    if not select:
        return [(spath, rel, entry) for spath, rel, entry, _inside in found]
    # With --include, folders above included paths are created too (somewhere to put them).
    needed = {""}
    for _spath, rel, _entry, inside in found:
        if inside:
            parts = rel.split("/")
            needed.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    return [(spath, rel, entry) for spath, rel, entry, _inside in found if rel in needed]


def _delete_extras(
    dest: Destination,
    base: str,
    found: list[tuple[str, str, Entry]],
    select: Selection | None,
    dry_run: bool,
    errors: list[tuple[str, str]],
) -> list[str]:
    """`--delete`: remove from the target what the restore will not put there (local only)."""
    if not isinstance(dest, LocalDestination):
        raise KlosetError(f"--delete works on local folders only, not on {dest.location}")
    keep = {rel: entry.type for _spath, rel, entry in found}
    prefix = base.strip("/")

    def covers(rel: str, is_dir: bool) -> bool:
        return select.covers(f"{prefix}/{rel}" if prefix else rel, is_dir) if select else True

    result = remove_extras(dest.root, keep, covers, dry_run=dry_run)
    errors.extend(result.errors)
    return result.deleted


def _create_dirs(
    dest: Destination, dirs: list[tuple[str, str]], threads: int, errors: list[tuple[str, str]]
) -> set[str]:
    """Create the directories one depth at a time, each level in parallel: a mkdir costs
    kernel time (or, on Koofr, a request) that only overlap hides. Returns those that failed;
    a directory below a failed one is not attempted."""
    levels: dict[int, list[tuple[str, str]]] = {}
    for rel, spath in dirs:
        levels.setdefault(rel.count("/") + 1 if rel else 0, []).append((rel, spath))
    failed: set[str] = set()

    def make(rel: str) -> str | None:
        try:
            dest.prepare_dir(rel)
        except (OSError, KlosetError) as exc:
            return f"cannot create directory: {exc}"
        return None

    with ThreadPoolExecutor(max(1, threads)) as pool:
        for depth in sorted(levels):
            # One attempt per path: a crafted tree may name the same directory twice.
            unique = dict(levels[depth][::-1])
            todo = [(r, s) for r, s in unique.items() if not (failed and _below(r, failed))]
            for (rel, spath), err in zip(todo, pool.map(make, [r for r, _ in todo]), strict=True):
                if err is not None:
                    failed.add(rel)
                    errors.append((spath, err))
    return failed


def _below(rel: str, failed: set[str], *, include_self: bool = False) -> bool:
    """Whether `rel` lies inside (or, with include_self, is) a directory in `failed`."""
    if include_self and rel in failed:
        return True
    parts = rel.split("/")
    return "" in failed or any("/".join(parts[:i]) in failed for i in range(1, len(parts)))
