"""Checking a store: is everything the snapshots need there, and is it intact?

The structure check reads CONFIG, the index, the snapshot headers and every tree reachable from
them (each distinct tree once), and lists the packs. Reading data (`read_data`) then downloads
whole packs, checks each against its name (the unkeyed BLAKE3 of its content) and opens every
blob in it. Damage is reported by object name and traced back to the snapshots and paths that
use it, so the user knows exactly what a damaged pack costs.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from kloset.crypto import plain_hash
from kloset.errors import KlosetError
from kloset.fetch import fetch_blobs
from kloset.index import Index, open_index
from kloset.locks import store_lock
from kloset.pack import BlobEntry, pack_name, read_header_from_bytes
from kloset.repository import Repository
from kloset.snapshot import SnapshotHeader
from kloset.tree import Entry

ProgressFn = Callable[[str, dict[str, Any]], None]
MAX_PATHS = 1000  # affected paths kept per snapshot; the count is always exact
MAX_LINES_PER_PACK = 5


@dataclass
class CheckReport:
    """What a check found. `errors` are one line each and name the damaged object."""

    ok: bool = True
    snapshots: int = 0
    trees: int = 0
    blobs: int = 0  # distinct data blobs referenced by the checked snapshots
    index_files: int = 0
    packs: int = 0  # packs in the index
    packs_read: int = 0
    blobs_read: int = 0
    bytes_read: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    damaged_packs: list[str] = field(default_factory=list)
    unreferenced_packs: list[str] = field(default_factory=list)
    affected: dict[str, list[str]] = field(default_factory=dict)  # snapshot hex -> paths
    affected_counts: dict[str, int] = field(default_factory=dict)
    duration: float = 0.0

    def error(self, message: str) -> None:
        self.ok = False
        self.errors.append(message)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_subset(subset: str) -> tuple[int, int] | float:
    """`n/m` → (n, m); `N%` → fraction in (0, 1]."""
    text = subset.strip()
    try:
        if text.endswith("%"):
            pct = float(text[:-1])
            if 0 < pct <= 100:
                return pct / 100
        elif "/" in text:
            n, m = (int(x) for x in text.split("/", 1))
            if 1 <= n <= m <= 256:  # groups are by a pack id's first byte
                return n, m
    except ValueError:
        pass
    raise KlosetError(
        f"bad --read-data-subset '{subset}' (use n/m with 1 <= n <= m <= 256, or N% up to 100%)"
    )


def select_packs(pack_ids: list[bytes], subset: str | None) -> list[bytes]:
    """Which packs to read: all, the n-th of m groups (by first byte), or a random sample."""
    ids = sorted(pack_ids)
    if subset is None:
        return ids
    spec = parse_subset(subset)
    if isinstance(spec, tuple):
        n, m = spec
        return [p for p in ids if p[0] % m == n - 1]
    if not ids:
        return []
    count = min(len(ids), max(1, math.ceil(len(ids) * spec)))
    return sorted(random.sample(ids, count))


class _Checker:
    def __init__(self, repo: Repository, progress: ProgressFn | None) -> None:
        self.repo = repo
        self.emit: ProgressFn = progress or (lambda _e, _d: None)
        self.report = CheckReport()
        self.headers: list[SnapshotHeader] = []
        self.data_ids: set[bytes] = set()
        self.tree_ids: set[bytes] = set()
        self.bad_blobs: set[bytes] = set()
        self.bad_trees: set[bytes] = set()

    # -- structure ---------------------------------------------------------------------------
    def load_index(self) -> Index:
        """The repository's index; if a file of it is damaged, report it and use the rest."""
        try:
            index = self.repo.index
        except KlosetError:
            index = Index()
            for name in self.repo.storage.iter_names("index"):
                if ".tmp-" in name:
                    continue
                try:
                    packs = open_index(self.repo.cipher, name, self.repo.storage.read(name))
                except (KlosetError, OSError) as exc:
                    self.report.error(str(exc) if name in str(exc) else f"{name}: {exc}")
                    continue
                for pid, size, blobs in packs:
                    index.add_pack(pid, size, blobs)
                index.files.add(name)
            self.repo._index = index  # later reads use what could be loaded
        self.report.index_files = len(index.files)
        self.report.packs = len(index.pack_sizes)
        return index

    def load_snapshots(self, refs: list[str] | None) -> None:
        def damaged(sid: bytes, exc: Exception) -> None:
            self.report.error(str(exc))

        if refs:
            seen: dict[bytes, SnapshotHeader] = {}
            for ref in refs:
                header = self.repo.resolve_snapshot(ref)
                seen.setdefault(header.id, header)
            self.headers = list(seen.values())
        else:
            self.headers = self.repo.list_snapshots(on_error=damaged)
        self.report.snapshots = len(self.headers)

    def walk_trees(self) -> None:
        """Load each distinct reachable tree once, collecting the data blobs they reference."""
        index = self.repo.index
        todo = [(h.root, f"snapshot {h.hex[:12]}") for h in self.headers]
        while todo:
            tid, where = todo.pop()
            if tid in self.tree_ids:
                continue
            self.tree_ids.add(tid)
            if tid not in index:
                self.bad_trees.add(tid)
                self.report.error(f"tree {tid.hex()[:16]} (in {where}) is not in the index")
                continue
            try:
                node = self.repo.load_tree(tid)
            except KlosetError as exc:
                self.bad_trees.add(tid)
                self.report.error(str(exc))
                continue
            if node.pages is not None:
                todo.extend((page_id, where) for _f, _c, page_id in node.pages)
                continue
            for entry in node.entries or []:
                if entry.is_dir and entry.subtree is not None:
                    todo.append((entry.subtree, where))
                elif entry.is_file:
                    self.data_ids.update(entry.chunks)
            if len(self.tree_ids) % 256 == 0:
                self.emit("trees", {"trees": len(self.tree_ids)})
        missing = [b for b in self.data_ids if b not in index]
        for bid in missing[:100]:
            self.report.error(f"blob {bid.hex()[:16]} is used but not in the index (data lost)")
        if len(missing) > 100:
            self.report.error(f"... and {len(missing) - 100} more blobs missing from the index")
        self.bad_blobs.update(missing)
        self.report.trees = len(self.tree_ids)
        self.report.blobs = len(self.data_ids)

    def used_packs(self) -> set[bytes]:
        """Packs holding the blobs of the checked snapshots."""
        index = self.repo.index
        return {loc.pack_id for b in self.data_ids | self.tree_ids if (loc := index.get(b))}

    def check_packs(self, only: set[bytes] | None = None) -> dict[bytes, int]:
        """Indexed packs must exist with their indexed size; unindexed ones are only noted."""
        listed: dict[bytes, int] = {}
        for name, size in self.repo.storage.list("packs"):
            base = name.rsplit("/", 1)[-1]
            if len(base) != 64:
                continue  # a partial upload (.tmp-…) or a foreign file
            try:
                listed[bytes.fromhex(base)] = size
            except ValueError:
                continue
        sizes = self.repo.index.pack_sizes
        for pid, want in sorted(sizes.items()):
            if only is not None and pid not in only:
                continue
            have = listed.get(pid)
            if have is None:
                self._damaged(pid, f"{pack_name(pid)}: pack is missing")
            elif have != want:
                self._damaged(pid, f"{pack_name(pid)}: size is {have} bytes, the index says {want}")
        if only is None:
            for pid in sorted(set(listed) - set(sizes)):
                self.report.unreferenced_packs.append(pack_name(pid))
                self.report.warnings.append(
                    f"{pack_name(pid)}: not in the index (unreferenced; prune removes it)"
                )
        return listed

    def _damaged(self, pid: bytes, message: str, blobs: list[bytes] | None = None) -> None:
        self.report.error(message)
        name = pack_name(pid)
        if name not in self.report.damaged_packs:
            self.report.damaged_packs.append(name)
        if blobs is None:
            blobs = [bid for bid, loc in self.repo.index.items() if loc.pack_id == pid]
        self.bad_blobs.update(blobs)

    # -- data ----------------------------------------------------------------------------
    def read_packs(self, pack_ids: list[bytes], listed: dict[bytes, int]) -> None:
        by_pack: dict[bytes, list[tuple[bytes, int, int]]] = {p: [] for p in pack_ids}
        for bid, loc in self.repo.index.items():
            if loc.pack_id in by_pack:
                by_pack[loc.pack_id].append((bid, loc.offset, loc.length))
        todo = [p for p in pack_ids if p in listed]
        total = sum(listed[p] for p in todo)
        self.emit("read_planned", {"packs": len(todo), "bytes": total})
        workers = 2 if self.repo.storage.local else 8
        with ThreadPoolExecutor(min(workers, max(1, len(todo)))) as pool:
            for pid, size, problems, bad, nblobs in pool.map(
                lambda p: self._read_pack(p, by_pack[p]), todo
            ):
                self.report.packs_read += 1
                self.report.bytes_read += size
                self.report.blobs_read += nblobs
                if problems:
                    # A truncated pack fails every blob: a few lines say enough.
                    self._damaged(pid, problems[0], bad)
                    for extra in problems[1:MAX_LINES_PER_PACK]:
                        self.report.error(extra)
                    if len(problems) > MAX_LINES_PER_PACK:
                        more = len(problems) - MAX_LINES_PER_PACK
                        self.report.error(f"{pack_name(pid)}: ... and {more} more problems")
                self.emit("pack", {"bytes": size})

    def _read_pack(
        self, pid: bytes, indexed: list[tuple[bytes, int, int]]
    ) -> tuple[bytes, int, list[str], list[bytes], int]:
        """(pack id, size, problems, damaged blob ids, blobs opened) for one whole pack."""
        name = pack_name(pid)
        try:
            data = self.repo.storage.read(name)
        except (OSError, KlosetError) as exc:
            return pid, 0, [f"{name}: cannot read: {exc}"], [b for b, _o, _l in indexed], 0
        problems: list[str] = []
        if plain_hash(data) != pid:
            problems.append(f"{name}: content does not match its name (damaged)")
        blobs: list[tuple[bytes, int, int]] = list(indexed)
        try:
            header = read_header_from_bytes(self.repo.cipher, data, name)
        except KlosetError as exc:
            problems.append(str(exc))
        else:
            problems.extend(_compare_header(name, header, indexed))
            known = {b for b, _o, _l in indexed}
            blobs += [(e.id, e.offset, e.length) for e in header if e.id not in known]
        bad: list[bytes] = []
        for bid, off, length in blobs:
            sealed = data[off : off + length]
            try:
                if len(sealed) != length:
                    raise KlosetError(f"{name}: blob {bid.hex()[:16]} lies past the pack's end")
                plain = self.repo.decode_blob(bid, sealed, name)
                if self.repo.blob_id(plain) != bid:
                    raise KlosetError(f"{name}: blob {bid.hex()[:16]}: content does not match id")
            except KlosetError as exc:
                bad.append(bid)
                problems.append(str(exc))
        return pid, len(data), problems, bad, len(blobs)

    def sample_blobs(self, fraction: float) -> None:
        """Open a random fraction of the referenced data blobs (ranged reads, not whole packs)."""
        candidates = sorted(b for b in self.data_ids if b not in self.bad_blobs)
        if fraction <= 0 or not candidates:
            return
        count = min(len(candidates), max(1, math.ceil(len(candidates) * min(fraction, 1.0))))
        sample = random.sample(candidates, count)
        index = self.repo.index

        def failed(bid: bytes, exc: KlosetError) -> None:
            loc = index.get(bid)
            if loc is not None:
                self._damaged(loc.pack_id, str(exc), [bid])
            else:
                self.bad_blobs.add(bid)
                self.report.error(str(exc))

        for start in range(0, len(sample), 256):
            part = sample[start : start + 256]
            got = fetch_blobs(self.repo, part, on_error=failed)
            self.report.blobs_read += len(got)
            self.report.bytes_read += sum(index.get(b).length for b in got)  # type: ignore[union-attr]
            self.emit("blobs", {"blobs": len(part)})

    # -- who is affected -----------------------------------------------------------------
    def trace_damage(self) -> None:
        if not self.bad_blobs and not self.bad_trees:
            return
        memo: dict[bytes, list[str]] = {}
        for header in self.headers:
            paths = self._affected(header.root, memo)
            if paths:
                shown = ["/" + p for p in paths]
                self.report.affected[header.hex] = shown[:MAX_PATHS]
                self.report.affected_counts[header.hex] = len(shown)

    def _affected(self, root: bytes, memo: dict[bytes, list[str]]) -> list[str]:
        """Relative paths below tree `root` whose data is damaged ('' = the directory itself)."""
        if root in self.bad_trees:
            return [""]
        stack: list[list[Any]] = [[root, "", *self._children(root), 0]]
        while stack:
            frame = stack[-1]
            tid, name, entries, acc, pos = frame
            if pos < len(entries):
                frame[4] += 1
                entry: Entry = entries[pos]
                if entry.is_file and any(c in self.bad_blobs for c in entry.chunks):
                    acc.append(entry.name)
                elif entry.is_dir and entry.subtree is not None:
                    sub = entry.subtree
                    if sub in self.bad_trees:
                        acc.append(entry.name + "/")
                    elif sub in memo:
                        acc.extend(f"{entry.name}/{p}" for p in memo[sub])
                    else:
                        stack.append([sub, entry.name, *self._children(sub), 0])
                continue
            stack.pop()
            memo[tid] = acc
            if stack:
                stack[-1][3].extend(f"{name}/{p}" for p in acc)
        return memo[root]

    def _children(self, tid: bytes) -> tuple[list[Entry], list[str]]:
        """(entries, ['']) when some page of a large directory is damaged, else (entries, [])."""
        node = self.repo.load_tree(tid)  # known good: walk_trees loaded it
        if node.pages is None:
            return list(node.entries or []), []
        out: list[Entry] = []
        lost = False
        for _f, _c, page_id in node.pages:
            if page_id in self.bad_trees:
                lost = True
            else:
                out.extend(self.repo.load_tree(page_id).entries or [])
        return out, [""] if lost else []


def _compare_header(
    name: str, header: list[BlobEntry], indexed: list[tuple[bytes, int, int]]
) -> list[str]:
    """The pack's own header must agree with the index about every indexed blob."""
    where = {e.id: (e.offset, e.length) for e in header}
    out = []
    for bid, off, length in indexed:
        got = where.get(bid)
        if got is None:
            out.append(f"{name}: blob {bid.hex()[:16]} is indexed but not in the pack header")
        elif got != (off, length):
            out.append(f"{name}: blob {bid.hex()[:16]} is at {got}, the index says {(off, length)}")
    return out


def check_store(
    repo: Repository,
    *,
    read_data: bool = False,
    subset: str | None = None,
    snapshots: list[str] | None = None,
    progress: ProgressFn | None = None,
    lock: bool = True,
) -> CheckReport:
    """Check the structure of the store (or of some snapshots) and, optionally, read its data.

    `subset` (implies reading data) is `n/m` (packs whose id's first byte mod m is n-1) or
    `N%` (a random sample of the packs). A shared lock keeps a prune from deleting packs
    under the check (which would look like damage); `lock=False` when the caller holds one.
    """
    if lock:
        with store_lock(repo, False, "check", required=False):
            return check_store(
                repo, read_data=read_data, subset=subset, snapshots=snapshots,
                progress=progress, lock=False,
            )  # fmt: skip
    started = time.perf_counter()
    checker = _Checker(repo, progress)
    if subset is not None:
        parse_subset(subset)  # fail on a typo before doing any work
    checker.load_index()
    checker.load_snapshots(snapshots)
    checker.walk_trees()
    listed = checker.check_packs()
    if read_data or subset is not None:
        candidates = checker.used_packs() if snapshots else set(repo.index.pack_sizes)
        damaged = set(checker.report.damaged_packs)
        wanted = [p for p in candidates if pack_name(p) not in damaged]
        checker.read_packs(select_packs(wanted, subset), listed)
    checker.trace_damage()
    checker.report.duration = round(time.perf_counter() - started, 3)
    return checker.report


def verify_snapshot(
    repo: Repository,
    snapshot_hex: str,
    read_data_fraction: float = 0.0,
    *,
    progress: ProgressFn | None = None,
    lock: bool = True,
) -> CheckReport:
    """Structure of one snapshot, plus a random `read_data_fraction` of its data blobs opened.

    Used after each backup (the Prefect verify task): it reads only what this snapshot
    references, so verifying a small incremental snapshot stays cheap.
    """
    if lock:
        with store_lock(repo, False, "verify", required=False):
            return verify_snapshot(
                repo, snapshot_hex, read_data_fraction, progress=progress, lock=False
            )
    started = time.perf_counter()
    checker = _Checker(repo, progress)
    checker.load_index()
    checker.load_snapshots([snapshot_hex])
    checker.walk_trees()
    checker.check_packs(only=checker.used_packs())
    checker.sample_blobs(read_data_fraction)
    checker.trace_damage()
    checker.report.duration = round(time.perf_counter() - started, 3)
    return checker.report
