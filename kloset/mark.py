"""Mark: every blob the snapshots still reference, found by walking their trees.

Prune deletes whatever this does not reach, so it must be exact and must fail loudly rather
than guess: a tree it cannot read, or a referenced blob no pack holds, stops prune before
anything is deleted. Trees are read breadth first, a level at a time, with coalesced ranged
reads grouped by pack, so marking a remote store costs a few requests per level, not one per
directory. Subtrees shared by many snapshots are visited once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from kloset.errors import CorruptObject
from kloset.pack import BlobEntry, pack_name
from kloset.repository import Repository
from kloset.storescan import read_sealed
from kloset.tree import decode_tree

LEVEL_SLICE = 1024


@dataclass
class MarkResult:
    """Used blob ids, and the ids referenced but found in no pack (should be empty)."""

    used: set[bytes] = field(default_factory=set)
    missing: set[bytes] = field(default_factory=set)
    trees: int = 0


def mark_used(
    repo: Repository,
    roots: Iterable[bytes],
    where: Mapping[bytes, tuple[bytes, BlobEntry]],
) -> MarkResult:
    """Walk from `roots` using `where` (blob id → (pack id, entry)) to locate blobs, so the walk
    sees packs the index has not caught up with (adopted orphans) and ignores vanished ones."""
    result = MarkResult()
    frontier = list(dict.fromkeys(roots))
    while frontier:
        level = [t for t in frontier if t not in result.used]
        result.used.update(level)
        frontier = []
        for start in range(0, len(level), LEVEL_SLICE):
            frontier.extend(_expand(repo, level[start : start + LEVEL_SLICE], where, result))
        frontier = list(dict.fromkeys(frontier))
    return result


def _expand(
    repo: Repository,
    tree_ids: list[bytes],
    where: Mapping[bytes, tuple[bytes, BlobEntry]],
    result: MarkResult,
) -> list[bytes]:
    per_pack: dict[bytes, list[tuple[bytes, int, int]]] = defaultdict(list)
    for tid in tree_ids:
        hit = where.get(tid)
        if hit is None:
            result.missing.add(tid)
            continue
        pid, entry = hit
        per_pack[pid].append((tid, entry.offset, entry.length))
    children: list[bytes] = []
    for pid, members in per_pack.items():
        name = pack_name(pid)
        sealed = read_sealed(repo.storage, name, members)
        for tid, _off, _len in members:
            raw = repo.decode_blob(tid, sealed[tid], name)
            node = decode_tree(raw, f"tree {tid.hex()[:16]}")
            result.trees += 1
            if node.pages is not None:
                children.extend(page for _first, _count, page in node.pages)
                continue
            for e in node.entries or []:
                if e.is_file:
                    for c in e.chunks:
                        if c not in result.used:
                            result.used.add(c)
                            if c not in where:
                                result.missing.add(c)
                elif e.is_dir:
                    if e.subtree is None:
                        raise CorruptObject(
                            f"tree {tid.hex()[:16]}: directory {e.name!r} has no tree"
                        )
                    children.append(e.subtree)
    return children
