"""Repair: rebuild the index from pack headers, adopt a killed run's packs, report lost data.

Packs carry their own sealed header, so the index is a cache that can always be recomputed.
`adopt_unindexed_packs` is the cheap everyday form of that: a backup killed between uploading
packs and writing their index leaves packs nobody mentions; the next run reads only those
headers and indexes them instead of uploading the same data again. `rebuild_index` is the full
form for a damaged or lost index, followed by a file-by-file account of what the snapshots can
no longer restore.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from kloset.errors import KlosetError
from kloset.index import encode_index, seal_index
from kloset.pack import BlobEntry, SealedPack
from kloset.repository import Repository
from kloset.storescan import (
    TMP_MARK,
    StoredObject,
    describe_error,
    list_objects,
    list_packs,
    read_pack_header,
)
from kloset.tree import Entry
from kloset.vfs import iter_tree

MAX_INDEX_BLOBS = 100_000

PackContents = tuple[bytes, int, list[BlobEntry]]


def write_index_files(repo: Repository, packs: Iterable[PackContents]) -> list[str]:
    """Write index files covering `packs`, split so no file grows without bound."""
    names: list[str] = []
    batch: list[PackContents] = []
    count = 0

    def flush() -> None:
        nonlocal count
        if not batch:
            return
        name, sealed = seal_index(repo.cipher, encode_index(batch), repo.config.compression_level)
        repo.storage.write(name, sealed)
        names.append(name)
        batch.clear()
        count = 0

    for item in packs:
        batch.append(item)
        count += len(item[2])
        if count >= MAX_INDEX_BLOBS:
            flush()
    flush()
    return names


def read_headers(
    repo: Repository, objs: dict[bytes, StoredObject]
) -> tuple[dict[bytes, list[BlobEntry]], list[tuple[str, str]]]:
    """Headers of many packs (in parallel on remote stores); unreadable ones are reported."""
    items = list(objs.items())

    def one(item: tuple[bytes, StoredObject]) -> list[BlobEntry] | str:
        pid, obj = item
        try:
            return read_pack_header(repo, obj.name, obj.size)
        except (KlosetError, OSError) as exc:
            return describe_error(exc)

    good: dict[bytes, list[BlobEntry]] = {}
    bad: list[tuple[str, str]] = []
    with ThreadPoolExecutor(1 if repo.storage.local else 8) as pool:
        for (pid, obj), res in zip(items, pool.map(one, items), strict=True):
            if isinstance(res, str):
                bad.append((obj.name, res))
            else:
                good[pid] = res
    return good, bad


@dataclass
class AdoptResult:
    """Packs found in the store that no index mentioned, now indexed."""

    packs: int = 0
    blobs: int = 0
    bytes: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    index_files: list[str] = field(default_factory=list)


def adopt_unindexed_packs(repo: Repository) -> AdoptResult:
    """Index every finished pack the index does not know (crash leftovers, or a concurrent
    run's packs a moment before its own index lands; indexing those twice is harmless)."""
    repo.refresh_index()  # packs other runs indexed since we loaded ours are not orphans
    listing, _other = list_packs(repo.storage)
    known = repo.index.pack_sizes
    orphans = {pid: obj for pid, obj in listing.items() if pid not in known}
    result = AdoptResult()
    if not orphans:
        return result
    headers, result.unreadable = read_headers(repo, orphans)
    contents = [(pid, orphans[pid].size, blobs) for pid, blobs in headers.items() if blobs]
    result.index_files = write_index_files(repo, contents)
    repo.index.add_sealed(SealedPack(pid, "", size, blobs) for pid, size, blobs in contents)
    repo.index.files.update(result.index_files)
    result.packs = len(contents)
    result.blobs = sum(len(b) for _p, _s, b in contents)
    result.bytes = sum(s for _p, s, _b in contents)
    return result


@dataclass
class Damage:
    """Something a snapshot references that the store can no longer provide."""

    snapshot: str
    path: str
    reason: str


@dataclass
class RepairReport:
    packs: int = 0
    blobs: int = 0
    unreadable_packs: list[tuple[str, str]] = field(default_factory=list)
    index_written: list[str] = field(default_factory=list)
    index_removed: list[str] = field(default_factory=list)
    damage: list[Damage] = field(default_factory=list)
    dry_run: bool = False


def rebuild_index(repo: Repository, *, dry_run: bool = False) -> RepairReport:
    """Replace every index file by one rebuilt from the packs' own headers (hold an exclusive
    lock). New files are written before old ones go, so a crash leaves a usable index."""
    old = [o.name for o in list_objects(repo.storage, "index") if TMP_MARK not in o.name]
    listing, _other = list_packs(repo.storage)
    headers, bad = read_headers(repo, listing)
    report = RepairReport(dry_run=dry_run, unreadable_packs=bad)
    contents = [(pid, listing[pid].size, blobs) for pid, blobs in sorted(headers.items())]
    report.packs = len(contents)
    report.blobs = sum(len(b) for _p, _s, b in contents)
    if dry_run:
        rebuilt = {b.id for _p, _s, blobs in contents for b in blobs}
        report.damage = find_damage(repo, rebuilt.__contains__)
        return report
    report.index_written = write_index_files(repo, contents)
    keep = set(report.index_written)
    for name in old:
        if name not in keep:
            repo.storage.delete(name)
            report.index_removed.append(name)
    repo.reload_index()
    report.damage = find_damage(repo)
    return report


def find_damage(repo: Repository, have: Callable[[bytes], bool] | None = None) -> list[Damage]:
    """Every snapshot path whose data or directory listing is missing, file by file."""
    have = have or repo.index.__contains__
    memo: dict[bytes, list[tuple[str, str]]] = {}
    out: list[Damage] = []

    def bad_header(sid: bytes, exc: Exception) -> None:
        out.append(Damage(sid.hex(), "", f"snapshot header unreadable: {describe_error(exc)}"))

    for header in repo.list_snapshots(on_error=bad_header):
        for rel, reason in _tree_damage(repo, header.root, have, memo):
            out.append(Damage(header.hex, "/" + rel, reason))
    return out


def _tree_damage(
    repo: Repository,
    root: bytes,
    have: Callable[[bytes], bool],
    memo: dict[bytes, list[tuple[str, str]]],
) -> list[tuple[str, str]]:
    """Damage below one tree, as (path relative to it, reason); iterative so depth is unbounded.
    Shared subtrees are judged once (`memo`), which keeps a store of many snapshots cheap."""
    expanded: dict[bytes, list[Entry]] = {}
    stack = [root]
    while stack:
        tid = stack[-1]
        if tid in memo:
            stack.pop()
            continue
        if tid not in expanded:
            try:
                if not have(tid):
                    raise KlosetError(f"tree {tid.hex()[:16]} is not in any pack")
                entries = list(iter_tree(repo, tid))
            except KlosetError as exc:
                memo[tid] = [("", f"directory listing lost ({describe_error(exc)})")]
                stack.pop()
                continue
            expanded[tid] = entries
            children = [
                e.subtree for e in entries if e.is_dir and e.subtree and e.subtree not in memo
            ]
            if children:
                stack.extend(children)
                continue
        entries = expanded.pop(tid)
        found: list[tuple[str, str]] = []
        for e in entries:
            if e.is_file:
                missing = sum(1 for c in e.chunks if not have(c))
                if missing:
                    found.append((e.name, f"{missing} of {len(e.chunks)} chunks lost"))
            elif e.is_dir and e.subtree:
                for sub, reason in memo.get(e.subtree, []):
                    found.append((f"{e.name}/{sub}" if sub else e.name, reason))
        memo[tid] = found
        stack.pop()
    return memo[root]


__all__ = [
    "AdoptResult",
    "Damage",
    "RepairReport",
    "adopt_unindexed_packs",
    "find_damage",
    "read_headers",
    "rebuild_index",
    "write_index_files",
]
