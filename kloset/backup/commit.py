"""Last stage, commit: assemble the batches' journals, store the trees, write the header.

Commit runs where the plan is (the machine that enumerated) and reads what each batch stored
from its journal in the store. The header is written last: until then the snapshot does not
exist, and everything stored so far is reusable by the next run (or reclaimable by prune).
After the header, the run's journals (and those of the dead runs it adopted) are deleted.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from kloset.backup import spool
from kloset.backup.journal import delete_run, read_run
from kloset.backup.plan import load_plan
from kloset.backup.sink import store_packs
from kloset.errors import KlosetError
from kloset.pack import BLOB_TREE, PackWriter, SealedPack
from kloset.repository import Repository
from kloset.snapshot import SnapshotHeader
from kloset.tree import DIR, FILE, PAGE_SIZE, SYMLINK, Entry, encode_entries, encode_pages


@dataclass
class CommitResult:
    snapshot_id: str
    stats: dict[str, Any]
    errors: list[tuple[str, str]] = field(default_factory=list)
    skipped: bool = False  # --skip-if-unchanged: snapshot_id is the parent, nothing was saved


class TreeWriter:
    """Stores tree blobs that the store does not have yet (unchanged subtrees cost nothing)."""

    def __init__(self, repo: Repository, spool_dir: str) -> None:
        self.repo = repo
        self.spool_dir = spool_dir
        self.packer: PackWriter | None = None
        self.sealed: list[SealedPack] = []
        self.written: set[bytes] = set()
        self.count = 0

    def _put(self, raw: bytes) -> bytes:
        tid = self.repo.blob_id(raw)
        if tid in self.written or tid in self.repo.index:
            return tid
        if self.packer is None:
            self.packer = PackWriter(
                self.repo.cipher, self.spool_dir, self.repo.config.compression_level
            )
        self.packer.add(BLOB_TREE, tid, raw)
        self.written.add(tid)
        self.count += 1
        if self.packer.size >= self.repo.config.pack_size:
            self.sealed.append(self.packer.seal())
            self.packer = None
        return tid

    def write(self, entries: list[Entry]) -> bytes:
        entries.sort(key=lambda e: e.name)
        if len(entries) <= PAGE_SIZE:
            return self._put(encode_entries(entries))
        pages = []
        for start in range(0, len(entries), PAGE_SIZE):
            page = entries[start : start + PAGE_SIZE]
            pages.append((page[0].name, len(page), self._put(encode_entries(page))))
        return self._put(encode_pages(pages))

    def finish(self) -> list[SealedPack]:
        if self.packer is not None:
            self.sealed.append(self.packer.seal())
            self.packer = None
        return self.sealed


def _check_stored(repo: Repository, items: list[Any], files: dict[int, list[Any]]) -> None:
    """Refuse to commit a snapshot naming a chunk that no indexed pack holds.

    Batches skip chunks another batch claimed; if a retried batch then failed on a file it had
    read before, a chunk could be claimed but never packed. Better a failed run (the next one
    stores the chunk) than a snapshot that cannot be restored."""

    def missing() -> list[tuple[int, bytes]]:
        index = repo.index
        return [
            (idx, cid)
            for idx, (ids, _size) in files.items()
            for cid in map(bytes, ids)
            if cid not in index
        ]

    repo.refresh_index()  # the batches' index files, written by other processes
    lost = missing()
    if lost:
        repo.reload_index()
        lost = missing()
    if lost:
        paths = sorted({items[idx][0] for idx, _ in lost})
        raise KlosetError(
            f"{len(lost)} chunks of {len(paths)} files read by this backup are in no uploaded "
            f"pack (first: /{paths[0]}): nothing was committed; run the backup again"
        )


def _unchanged_parent(
    repo: Repository, plan: dict[str, Any], root_id: bytes
) -> SnapshotHeader | None:
    """The parent snapshot, if the new one would equal it: same tree (equal root tree ids mean
    equal content, names, modes and mtimes all the way down), same source and same tags."""
    if not plan.get("parent"):
        return None
    parent = repo.load_snapshot(bytes(plan["parent"]))
    tags = sorted(plan["options"].get("tags") or [])
    if parent.root != root_id or parent.source != plan["source"] or sorted(parent.tags) != tags:
        return None
    return parent


def commit_snapshot(
    repo: Repository,
    run_dir: str,
    *,
    extra_errors: list[tuple[str, str]] | None = None,
    cleanup: bool = True,
) -> CommitResult:
    """Assemble the snapshot from the plan and every batch's journal, and commit it."""
    plan = load_plan(run_dir)
    items = plan["items"]
    files, errors, totals = _read_journals(repo, plan)
    _check_stored(repo, items, files)
    children, dir_items, counts = _entries(items, files, errors)
    tree_spool = os.path.join(run_dir, "trees")
    os.makedirs(tree_spool, exist_ok=True)
    writer = TreeWriter(repo, tree_spool)
    root_id = _write_trees(writer, children, dir_items, counts)
    if plan["options"].get("skip_if_unchanged"):
        same = _unchanged_parent(repo, plan, root_id)
        if same is not None:
            _end_run(repo, plan, run_dir, cleanup)
            return CommitResult(same.hex, {**counts, "files_read": len(files)}, errors, True)
    tree_packs = writer.finish()
    store_packs(repo, tree_packs)

    if extra_errors:
        errors.extend(extra_errors)
    stats: dict[str, Any] = {
        **counts,
        "bytes_read": totals["bytes_read"],
        "chunks_new": totals["new_chunks"],
        "bytes_new": totals["new_bytes"],
        "bytes_added": totals["stored_bytes"] + sum(p.size for p in tree_packs),
        "trees_new": writer.count,
        "files_read": len(files),
        "duration": round((time.time_ns() - int(plan["started"])) / 1e9, 3),
        "errors": len(errors),
    }
    snap_id = repo.save_snapshot(_header(plan, root_id, stats, errors))
    _end_run(repo, plan, run_dir, cleanup)
    return CommitResult(snapshot_id=snap_id.hex(), stats=stats, errors=errors)


def _read_journals(
    repo: Repository, plan: dict[str, Any]
) -> tuple[dict[int, list[Any]], list[tuple[str, str]], dict[str, int]]:
    """Every batch's files (plan index -> [chunk ids, size]), errors and summed stats, from
    the journals in the store; a batch without one, or one that disagrees with the plan,
    stops the commit (its run is not finished)."""
    items = plan["items"]
    files: dict[int, list[Any]] = {}
    errors: list[tuple[str, str]] = []
    totals = {"bytes_read": 0, "new_chunks": 0, "new_bytes": 0, "stored_bytes": 0, "chunks": 0}
    journals = read_run(repo, str(plan["run"]))
    for batch_no in range(len(plan["batches"])):
        res = journals.get(batch_no)
        if res is None:
            raise KlosetError(f"batch {batch_no + 1} of this backup has not been stored yet")
        for idx, relpath, size, _mtime, _md5, ids in res["files"]:
            if items[int(idx)][0] != relpath:
                raise KlosetError(f"batch {batch_no + 1}'s journal does not match the plan")
            files[int(idx)] = [ids, size]
        errors.extend((str(p), str(m)) for p, m in res["errors"])
        for key in totals:
            totals[key] += int(res["stats"].get(key, 0))
    return files, errors, totals


def _entries(
    items: list[Any], files: dict[int, list[Any]], errors: list[tuple[str, str]]
) -> tuple[dict[str, list[Entry]], list[tuple[str, list[Any]]], dict[str, int]]:
    """Each folder's file and symlink entries, the folders themselves (in plan order) and the
    counts; plan errors are appended to `errors`."""
    children: dict[str, list[Entry]] = defaultdict(list)
    dir_items: list[tuple[str, list[Any]]] = []
    counts = {"files": 0, "dirs": 0, "symlinks": 0, "bytes": 0}
    for idx, (relpath, meta, reuse, err) in enumerate(items):
        etype, mode, mtime_ns, size, target, extra = meta
        parent, _, name = relpath.rpartition("/")
        if err:
            errors.append(("/" + relpath, str(err)))
        if etype == DIR:
            dir_items.append((relpath, meta))
            continue
        if err:
            continue
        if etype == FILE:
            if reuse is not None:
                chunks = [bytes(c) for c in reuse]
            elif idx in files:
                chunks = [bytes(c) for c in files[idx][0]]
                size = int(files[idx][1])
            else:
                continue  # unreadable: already recorded as an error by the chunk stage
            children[parent].append(
                Entry(name, FILE, mode, mtime_ns, size, chunks, extra=dict(extra or {}))
            )
            counts["files"] += 1
            counts["bytes"] += size
        elif etype == SYMLINK:
            children[parent].append(Entry(name, SYMLINK, mode, mtime_ns, target=target))
            counts["symlinks"] += 1
    return children, dir_items, counts


def _write_trees(
    writer: TreeWriter,
    children: dict[str, list[Entry]],
    dir_items: list[tuple[str, list[Any]]],
    counts: dict[str, int],
) -> bytes:
    """Write the folders bottom-up (each after everything below it); returns the root's id."""
    root_id: bytes | None = None
    for relpath, meta in reversed(dir_items):
        _etype, mode, mtime_ns, _size, _target, _extra = meta
        tree_id = writer.write(children.pop(relpath, []))
        if relpath == "":
            root_id = tree_id
        else:
            parent, _, name = relpath.rpartition("/")
            children[parent].append(Entry(name, DIR, mode, mtime_ns, subtree=tree_id))
            counts["dirs"] += 1
    assert root_id is not None, "plan has no root directory"
    return root_id


def _header(
    plan: dict[str, Any], root_id: bytes, stats: dict[str, Any], errors: list[tuple[str, str]]
) -> SnapshotHeader:
    return SnapshotHeader(
        root=root_id,
        time_ns=int(plan["started"]),
        source=plan["source"],
        host=plan.get("host", ""),
        user=plan.get("user", ""),
        tags=list(plan["options"].get("tags") or []),
        parent=plan.get("parent"),
        stats=stats,
        errors=errors,
        errors_total=len(errors),
        origin=dict(plan["options"].get("origin") or {}),
    )


def _end_run(repo: Repository, plan: dict[str, Any], run_dir: str, cleanup: bool) -> None:
    """The run is over: its journals (and those of the dead runs it adopted) go, and with
    `cleanup` its run directory."""
    _forget_journals(repo, plan)
    if cleanup:
        spool.remove_run(run_dir)


def _forget_journals(repo: Repository, plan: dict[str, Any]) -> None:
    """A snapshot now holds what the journals said (this run's, and the dead runs' it adopted):
    they are not needed any more."""
    for done in [plan["run"], *plan.get("adopted_runs", [])]:
        delete_run(repo, str(done))
