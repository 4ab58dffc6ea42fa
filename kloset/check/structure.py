"""Check, structure: the index, the snapshot headers, every reachable tree, the pack listing.

Nothing here downloads data: each distinct tree is loaded once and packs are only listed, so a
structure check of a store on Koofr costs listings and tree reads.
"""

from __future__ import annotations

from kloset.check.findings import Findings
from kloset.errors import KlosetError
from kloset.index import Index, open_index
from kloset.pack import pack_name
from kloset.snapshot import SnapshotHeader


def load_index(found: Findings) -> Index:
    """The repository's index; if a file of it is damaged, report it and use the rest."""
    try:
        index = found.repo.index
    except KlosetError:
        index = Index()
        for name in found.repo.storage.iter_names("index"):
            if ".tmp-" in name:
                continue
            try:
                packs = open_index(found.repo.cipher, name, found.repo.storage.read(name))
            except (KlosetError, OSError) as exc:
                found.report.error(str(exc) if name in str(exc) else f"{name}: {exc}")
                continue
            for pid, size, blobs in packs:
                index.add_pack(pid, size, blobs)
            index.files.add(name)
        found.repo._index = index  # later reads use what could be loaded
    found.report.index_files = len(index.files)
    found.report.packs = len(index.pack_sizes)
    return index


def load_snapshots(found: Findings, refs: list[str] | None) -> None:
    def damaged(sid: bytes, exc: Exception) -> None:
        found.report.error(str(exc))

    if refs:
        seen: dict[bytes, SnapshotHeader] = {}
        for ref in refs:
            header = found.repo.resolve_snapshot(ref)
            seen.setdefault(header.id, header)
        found.headers = list(seen.values())
    else:
        found.headers = found.repo.list_snapshots(on_error=damaged)
    found.report.snapshots = len(found.headers)


def walk_trees(found: Findings) -> None:
    """Load each distinct reachable tree once, collecting the data blobs they reference."""
    index = found.repo.index
    todo = [(h.root, f"snapshot {h.hex[:12]}") for h in found.headers]
    while todo:
        tid, where = todo.pop()
        if tid in found.tree_ids:
            continue
        found.tree_ids.add(tid)
        if tid not in index:
            found.bad_trees.add(tid)
            found.report.error(f"tree {tid.hex()[:16]} (in {where}) is not in the index")
            continue
        try:
            node = found.repo.load_tree(tid)
        except KlosetError as exc:
            found.bad_trees.add(tid)
            found.report.error(str(exc))
            continue
        if node.pages is not None:
            todo.extend((page_id, where) for _f, _c, page_id in node.pages)
            continue
        for entry in node.entries or []:
            if entry.is_dir and entry.subtree is not None:
                todo.append((entry.subtree, where))
            elif entry.is_file:
                found.data_ids.update(entry.chunks)
        if len(found.tree_ids) % 256 == 0:
            found.emit("trees", {"trees": len(found.tree_ids)})
    missing = [b for b in found.data_ids if b not in index]
    for bid in missing[:100]:
        found.report.error(f"blob {bid.hex()[:16]} is used but not in the index (data lost)")
    if len(missing) > 100:
        found.report.error(f"... and {len(missing) - 100} more blobs missing from the index")
    found.bad_blobs.update(missing)
    found.report.trees = len(found.tree_ids)
    found.report.blobs = len(found.data_ids)


def used_packs(found: Findings) -> set[bytes]:
    """Packs holding the blobs of the checked snapshots."""
    index = found.repo.index
    return {loc.pack_id for b in found.data_ids | found.tree_ids if (loc := index.get(b))}


def check_packs(found: Findings, only: set[bytes] | None = None) -> dict[bytes, int]:
    """Indexed packs must exist with their indexed size; unindexed ones are only noted."""
    listed: dict[bytes, int] = {}
    for name, size in found.repo.storage.list("packs"):
        base = name.rsplit("/", 1)[-1]
        if len(base) != 64:
            continue  # a partial upload (.tmp-…) or a foreign file
        try:
            listed[bytes.fromhex(base)] = size
        except ValueError:
            continue
    sizes = found.repo.index.pack_sizes
    for pid, want in sorted(sizes.items()):
        if only is not None and pid not in only:
            continue
        have = listed.get(pid)
        if have is None:
            found.damaged(pid, f"{pack_name(pid)}: pack is missing")
        elif have != want:
            found.damaged(pid, f"{pack_name(pid)}: size is {have} bytes, the index says {want}")
    if only is None:
        for pid in sorted(set(listed) - set(sizes)):
            found.report.unreferenced_packs.append(pack_name(pid))
            found.report.warnings.append(
                f"{pack_name(pid)}: not in the index (unreferenced; prune removes it)"
            )
    return listed
