"""Prune: forget snapshots by policy, then give their space back — including partly used packs.

Plan first, change second. The plan reads every index file, lists every pack (reading the
headers of packs no index mentions), marks what the kept snapshots use, and classifies each
pack: keep, delete (nothing used), repack (more than `repack_threshold` of it is garbage:
its used blobs are copied, still sealed, into new packs), or young (newer than the grace
period: a running backup may be about to reference it, so it is left alone). Small packs
(the tail of every backup run) are repacked too, merged into full ones, so years of daily
backups do not leave thousands of tiny objects to list and open. Execution keeps
the store valid after every single step: new packs are uploaded, then one new index covering
every kept pack is written, then old index files go, then old packs.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kloset.errors import KlosetError
from kloset.leftovers import clean_leftovers, young_journal_chunks
from kloset.locks import StoreLock, store_lock
from kloset.mark import mark_used
from kloset.pack import BlobEntry, PackWriter, SealedPack, pack_name
from kloset.repair import read_headers, write_index_files
from kloset.repository import Repository, default_spool_dir
from kloset.retention import RetentionPolicy, apply_policy
from kloset.snapshot import SnapshotHeader
from kloset.storescan import (
    TMP_MARK,
    StoredObject,
    describe_error,
    list_objects,
    list_packs,
    read_index_file,
    read_sealed,
    verify_sealed,
)

Progress = Callable[[str, dict[str, Any]], None]


@dataclass
class PruneOptions:
    """How hard to prune. `grace_minutes` protects packs a running backup may still need."""

    policy: RetentionPolicy | None = None
    repack_threshold: float = 0.2
    grace_minutes: float = 60.0
    dry_run: bool = False
    lock_wait: float | None = None
    repack_small: bool = True

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> PruneOptions:
        """The options from the flat user-facing parameters, by name: the CLI's flags and the
        prune flow's form both pass theirs (`PARAMS`: `keep_*`, `repack_threshold`,
        `grace_minutes`, `dry_run`, `repack_small`, `lock_wait`), and this is the one place that
        turns them into a policy and checks them."""
        unknown = sorted(set(params) - PARAMS)
        if unknown:
            raise TypeError(f"not a prune parameter: {', '.join(unknown)}")
        threshold = float(params.get("repack_threshold", 0.2))
        if not 0.0 <= threshold <= 1.0:
            raise KlosetError("--repack-threshold must be between 0 and 1")
        keep = {k.removeprefix("keep_"): v for k, v in params.items() if k.startswith("keep_")}
        return cls(
            policy=RetentionPolicy.from_keep(**keep),
            repack_threshold=threshold,
            grace_minutes=max(0.0, float(params.get("grace_minutes", 60.0))),
            dry_run=bool(params.get("dry_run", False)),
            lock_wait=params.get("lock_wait"),
            repack_small=bool(params.get("repack_small", True)),
        )


# What `PruneOptions.from_params` takes: the names of the CLI's options and the flow's parameters.
PARAMS = frozenset(
    [f"keep_{k}" for k in ("last", "hourly", "daily", "weekly", "monthly", "yearly", "tag")]
    + ["keep_within", "repack_threshold", "grace_minutes", "dry_run", "repack_small", "lock_wait"]
)


# A pack under this fraction of the store's pack size is "small": merged when there are two.
SMALL_PACK_FRACTION = 0.25


@dataclass
class _Pack:
    obj: StoredObject
    blobs: list[BlobEntry]
    indexed: bool
    used: list[BlobEntry] = field(default_factory=list)
    action: str = "keep"  # keep | delete | repack | young

    @property
    def payload(self) -> int:
        return sum(b.length for b in self.blobs)


@dataclass
class PruneReport:
    """What prune did (or, with dry_run, would do). Byte counts are stored (sealed) bytes."""

    dry_run: bool
    policy: str
    kept: list[dict[str, Any]] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)
    packs_before: int = 0
    bytes_before: int = 0
    packs_deleted: int = 0
    bytes_deleted: int = 0
    packs_repacked: int = 0
    bytes_repacked: int = 0
    packs_small: int = 0
    bytes_copied: int = 0
    packs_written: int = 0
    bytes_written: int = 0
    packs_young: int = 0
    packs_adopted: int = 0
    index_written: int = 0
    index_removed: int = 0
    tmp_removed: int = 0
    tmp_bytes: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)

    @property
    def bytes_reclaimed(self) -> int:
        return self.bytes_deleted + self.bytes_repacked - self.bytes_written + self.tmp_bytes

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "unreadable"}
        out["unreadable"] = [{"name": n, "error": e} for n, e in self.unreadable]
        out["bytes_reclaimed"] = self.bytes_reclaimed
        return out


def _snap_json(h: SnapshotHeader, reasons: list[str]) -> dict[str, Any]:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(h.time_ns / 1e9))
    return {"id": h.hex, "time": when, "source": h.source, "tags": h.tags, "reasons": reasons}


def prune(repo: Repository, options: PruneOptions, progress: Progress | None = None) -> PruneReport:
    """Forget by policy (if any) and reclaim space; a dry run changes nothing."""
    emit = progress or (lambda _e, _d: None)
    with store_lock(repo, not options.dry_run, "prune", wait=options.lock_wait) as lock:
        return _prune_locked(repo, options, lock, emit)


def _prune_locked(
    repo: Repository, opts: PruneOptions, lock: StoreLock | None, emit: Progress
) -> PruneReport:
    policy = opts.policy or RetentionPolicy()
    report = PruneReport(dry_run=opts.dry_run, policy=policy.describe())
    grace = opts.grace_minutes * 60.0
    now = time.time()
    keep, removed = _forget(repo, policy, report)
    found = _inventory(repo, grace, now, report)
    # Data a dead run journaled is kept while its journals are (a resumed backup adopts it).
    journaled = young_journal_chunks(repo, grace, now)
    _classify(repo, found.packs, keep, opts, report, emit, journaled)
    emit("planned", {"report": report})
    if opts.dry_run:
        report.bytes_written = report.bytes_copied  # estimate: headers are a rounding error
        report.tmp_removed, report.tmp_bytes = clean_leftovers(repo, grace, now, dry_run=True)
        return report
    assert lock is not None, "a real prune always holds the exclusive lock"
    _apply(repo, lock, removed, found, report, emit)
    report.tmp_removed, report.tmp_bytes = clean_leftovers(repo, grace, now, dry_run=False)
    for obj in found.stray:  # interrupted uploads under packs/ (not named like a finished pack)
        if obj.older_than(grace, now):
            repo.storage.delete(obj.name)
            report.tmp_removed += 1
            report.tmp_bytes += obj.size
    repo.reload_index()
    return report


def _forget(
    repo: Repository, policy: RetentionPolicy, report: PruneReport
) -> tuple[list[SnapshotHeader], list[SnapshotHeader]]:
    """(kept, removed) snapshots by policy; refuses when a snapshot cannot be read, since
    prune could not know what it uses."""
    damaged: list[str] = []
    snaps = repo.list_snapshots(
        on_error=lambda sid, exc: damaged.append(f"{sid.hex()[:12]} ({exc})")
    )
    if damaged:
        raise KlosetError(
            f"cannot read snapshot {damaged[0]}: prune cannot know what it uses "
            "(run `check`, then `rm` it)"
        )
    if policy.empty:
        return snaps, []
    decided = apply_policy(snaps, policy).decisions
    kept_ids = {d.snapshot.id for d in decided if d.keep}
    keep = [h for h in snaps if h.id in kept_ids]
    removed = [h for h in snaps if h.id not in kept_ids]
    why = {d.snapshot.id: d.reasons for d in decided}
    report.kept = [_snap_json(h, why[h.id]) for h in reversed(keep)]
    report.removed = [_snap_json(h, []) for h in reversed(removed)]
    return keep, removed


@dataclass
class _Inventory:
    """What the store holds: index files, every pack with its blobs, and leftovers."""

    index_files: list[str]
    packs: dict[bytes, _Pack]
    stray: list[StoredObject]
    vanished: int  # packs an index names that are not in the store


def _inventory(repo: Repository, grace: float, now: float, report: PruneReport) -> _Inventory:
    """Read every index file and list every pack, reading the headers of packs no index
    mentions. A pack younger than the grace period (or any orphan, while an index file is
    unreadable) is "young": a running backup may be about to reference it."""
    index_files: list[str] = []
    unreadable_index = False
    indexed: dict[bytes, list[BlobEntry]] = {}
    for obj in list_objects(repo.storage, "index"):
        if TMP_MARK in obj.name:
            continue
        try:
            for pid, _size, blobs in read_index_file(repo, obj.name):
                indexed.setdefault(pid, blobs)
            index_files.append(obj.name)
        except (KlosetError, OSError) as exc:
            unreadable_index = True
            report.unreadable.append((obj.name, describe_error(exc)))
    listing, stray = list_packs(repo.storage)
    orphans = {pid: o for pid, o in listing.items() if pid not in indexed}
    headers, bad = read_headers(repo, orphans)
    report.unreadable.extend(bad)
    packs: dict[bytes, _Pack] = {}
    for pid, obj in listing.items():
        young = not obj.older_than(grace, now)
        if pid in indexed or pid in headers:
            blobs = indexed[pid] if pid in indexed else headers[pid]
            packs[pid] = _Pack(obj, blobs, pid in indexed, action="young" if young else "keep")
        elif young or unreadable_index:
            packs[pid] = _Pack(obj, [], False, action="young")  # maybe still being written
        else:
            packs[pid] = _Pack(obj, [], False, action="delete")  # a damaged orphan nobody indexes
    report.packs_before = len(packs)
    report.bytes_before = sum(p.obj.size for p in packs.values())
    return _Inventory(index_files, packs, stray, len(set(indexed) - set(listing)))


def _classify(
    repo: Repository,
    packs: dict[bytes, _Pack],
    keep: list[SnapshotHeader],
    opts: PruneOptions,
    report: PruneReport,
    emit: Progress,
    journaled: set[bytes] | None = None,
) -> None:
    """Mark the blobs the kept snapshots (and young journals) use, then decide each pack's
    fate and count it."""
    where: dict[bytes, tuple[bytes, BlobEntry]] = {}
    for pid, p in packs.items():
        for b in p.blobs:
            where.setdefault(b.id, (pid, b))
    emit("mark", {"snapshots": len(keep)})
    marked = mark_used(repo, [h.root for h in keep], where)
    if marked.missing:
        raise KlosetError(
            f"{len(marked.missing)} blobs the kept snapshots use are in no pack: nothing was "
            "deleted; run `kloset at STORE repair index` to see which files are affected"
        )
    _assign(packs, marked.used | {b for b in journaled or () if b in where})
    threshold = min(max(opts.repack_threshold, 0.0), 1.0)
    for p in packs.values():
        if p.action != "keep":
            continue
        used = sum(b.length for b in p.used)
        if used == 0:
            p.action = "delete"
        elif p.payload and (p.payload - used) / p.payload > threshold:
            p.action = "repack"
    if opts.repack_small:
        report.packs_small = _merge_small(packs, repo.config.pack_size)
    for p in packs.values():
        if p.action == "delete":
            report.packs_deleted += 1
            report.bytes_deleted += p.obj.size
        elif p.action == "repack":
            report.packs_repacked += 1
            report.bytes_repacked += p.obj.size
            report.bytes_copied += sum(b.length for b in p.used)
        elif p.action == "young":
            report.packs_young += 1
        if not p.indexed and p.action in ("keep", "young") and p.used:
            report.packs_adopted += 1


def _apply(
    repo: Repository,
    lock: StoreLock,
    removed: list[SnapshotHeader],
    found: _Inventory,
    report: PruneReport,
    emit: Progress,
) -> None:
    """Change the store so it is valid after every step: forget snapshots, upload repacked
    packs, write one index covering every kept pack, then delete old index files and packs."""
    lock.check()
    for h in removed:
        repo.delete_snapshot(h.id)
    packs = found.packs
    new_packs = _repack(repo, [p for p in packs.values() if p.action == "repack"], report, emit)
    changed = (
        report.packs_deleted or report.packs_repacked or report.packs_adopted or found.vanished
    )
    if not changed and len(found.index_files) <= 1:
        return
    contents = [
        (pid, p.obj.size, p.blobs)
        for pid, p in sorted(packs.items())
        if p.action == "keep" or (p.action == "young" and (p.indexed or p.used))
    ]
    contents += [(s.pack_id, s.size, s.blobs) for s in new_packs]
    written = write_index_files(repo, contents)
    report.index_written = len(written)
    lock.check()
    for name in found.index_files:
        if name not in written:
            repo.storage.delete(name)
            report.index_removed += 1
    for pid, p in packs.items():
        if p.action in ("delete", "repack"):
            repo.storage.delete(pack_name(pid))
    emit("deleted", {"packs": report.packs_deleted + report.packs_repacked})


def _merge_small(packs: dict[bytes, _Pack], pack_size: int) -> int:
    """Mark small kept packs for repacking when that leaves fewer packs: two or more of them,
    or one that can join packs already being repacked. Returns how many were marked."""
    small = [
        p
        for p in packs.values()
        if p.action == "keep" and p.obj.size < SMALL_PACK_FRACTION * pack_size
    ]
    if len(small) + sum(p.action == "repack" for p in packs.values()) < 2:
        return 0
    for p in small:
        p.action = "repack"
    return len(small)


def _assign(packs: dict[bytes, _Pack], used: set[bytes]) -> None:
    """Give each used blob to one pack: the copy in the pack with the most used data wins, so
    duplicates (two runs storing the same chunk) end up garbage in the emptier pack."""
    score: dict[bytes, int] = defaultdict(int)
    holders: dict[bytes, list[tuple[bytes, BlobEntry]]] = defaultdict(list)
    for pid, p in packs.items():
        for b in p.blobs:
            if b.id in used:
                score[pid] += b.length
                holders[b.id].append((pid, b))
    for cands in holders.values():
        # Young packs stay whatever happens, so a copy there costs nothing to keep.
        pid, entry = max(cands, key=lambda c: (packs[c[0]].action == "young", score[c[0]], c[0]))
        packs[pid].used.append(entry)


def _repack(
    repo: Repository, todo: list[_Pack], report: PruneReport, emit: Progress
) -> list[SealedPack]:
    """Copy the used blobs of `todo` into new packs, sealed bytes unchanged (verified first)."""
    if not todo:
        return []
    spool = os.path.join(default_spool_dir(repo.storage), f"prune-{time.time_ns()}-{os.getpid()}")
    os.makedirs(spool, exist_ok=True)
    written: list[SealedPack] = []
    writer: PackWriter | None = None

    def upload(sealed: SealedPack) -> None:
        repo.storage.put_local_file(sealed.path, sealed.name, move=True)
        written.append(sealed)
        report.packs_written += 1
        report.bytes_written += sealed.size

    try:
        for p in sorted(todo, key=lambda q: q.obj.name):
            name = p.obj.name
            sealed = read_sealed(repo.storage, name, [(b.id, b.offset, b.length) for b in p.used])
            for b in sorted(p.used, key=lambda e: e.offset):
                verify_sealed(repo, b.id, sealed[b.id], name)
                if writer is None:
                    writer = PackWriter(repo.cipher, spool, repo.config.compression_level)
                writer.add_sealed(b.type, b.id, sealed[b.id], b.raw_length)
                if writer.size >= repo.config.pack_size:
                    upload(writer.seal())
                    writer = None
            emit("repacked", {"bytes": p.obj.size})
        if writer is not None:
            upload(writer.seal())
            writer = None
    finally:
        if writer is not None:
            writer.abort()
        shutil.rmtree(spool, ignore_errors=True)
    return written
