"""Stage 1, enumerate: list the source, match it against the parent snapshot, plan batches.

Files whose path, size and mtime (and MD5 when the source has one) equal the parent snapshot's,
or an entry a dead run of the same source journaled (`kloset.backup.adopt`), reuse that chunk
list and are never read. The rest are grouped into batches bounded by bytes and file count,
each of which becomes one `back_up_batch` unit of work. The plan stays in the run directory
of the machine that planned (commit reads it there); batches get their items as data.
"""

from __future__ import annotations

import getpass
import os
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from kloset.backup import spool
from kloset.backup.claims import RunClaims
from kloset.backup.journal import Reusable
from kloset.backup.options import BATCH_BYTES, BATCH_FILES
from kloset.backup.runs import RunRef, make_run_dir, new_run_id, run_dir_name
from kloset.errors import LocationError
from kloset.excludes import ScanFilter
from kloset.repository import Repository
from kloset.snapshot import SnapshotHeader
from kloset.source import ScanItem, Source
from kloset.tree import DIR, FILE, Entry, decode_tree


@dataclass
class BackupOptions:
    """What a user chooses for a backup; plain types so Prefect can pass it around."""

    tags: list[str] = field(default_factory=list)
    excludes: list[str] = field(default_factory=list)
    # --exclude-larger-than (bytes), --files-from (paths relative to the source root) and
    # --one-file-system (local sources): the scan's other filters, see `scan_filter`.
    exclude_larger_than: int | None = None
    files_from: list[str] | None = None
    one_file_system: bool = False
    # --skip-if-unchanged: commit saves no snapshot when the tree equals the parent's.
    skip_if_unchanged: bool = False
    force_read: bool = False
    parent: str | None = None  # snapshot ref; None = latest snapshot of the same source
    batch_bytes: int = BATCH_BYTES
    batch_files: int = BATCH_FILES
    # Read and chunk for real, write nothing to the store; the result says what would be added.
    dry_run: bool = False
    # Recorded in the snapshot header as given (see SnapshotHeader.origin): who ran the backup.
    origin: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EnumerateResult:
    """Small, serialisable summary of a plan; the plan itself stays in `run_dir`."""

    run_dir: str
    source: str
    parent: str | None
    batches: int
    files: int
    dirs: int
    symlinks: int
    bytes_total: int
    files_to_read: int
    bytes_to_read: int
    files_reused: int
    errors: int
    run_id: str = ""
    files_adopted: int = 0  # of files_reused: from journals a dead run left, not the parent
    dry_run: bool = False

    @property
    def run(self) -> RunRef:
        """What each batch is given to know its run."""
        return RunRef(self.run_id, self.run_dir, self.source, self.dry_run)

    def discard(self) -> None:
        """Remove the plan's local run directory once the run ended without a commit: what
        its finished batches stored (packs, index, journal) stays in the store for the next
        run to adopt; the plan itself is never read again."""
        spool.remove_run(self.run_dir)


class ParentLookup:
    """Finds a path's entry in the parent snapshot, loading one directory at a time.

    Only the directories on the path of the latest lookup are kept: a scan goes depth first,
    so a folder it has left is never asked about again, and keeping every folder it passed
    held the whole parent snapshot as Python objects (~500 MiB for a million files). The
    parent's trees are decoded here, past the store's tree cache: each is read once, and
    caching them would keep up to 4,096 folders' entries alive for the rest of the run.
    A source that lists in another order still gets right answers, only reloads.
    """

    def __init__(self, repo: Repository, header: SnapshotHeader | None) -> None:
        self.repo = repo
        self.header = header
        self._dirs: dict[str, dict[str, Entry] | None] = {}
        self._last: str | None = None

    def _load(self, tree_id: bytes) -> dict[str, Entry]:
        node = decode_tree(self.repo.read_blob(tree_id), f"tree {tree_id.hex()[:16]}")
        if node.entries is not None:
            return {e.name: e for e in node.entries}
        out: dict[str, Entry] = {}
        for _first, _count, page_id in node.pages or []:
            page = decode_tree(self.repo.read_blob(page_id), f"tree {page_id.hex()[:16]}")
            out.update((e.name, e) for e in page.entries or [])
        return out

    def _dir(self, reldir: str) -> dict[str, Entry] | None:
        if self.header is None:
            return None
        if reldir in self._dirs:
            return self._dirs[reldir]
        if not reldir:
            tree_id: bytes | None = self.header.root
        else:
            parent_dir, _, name = reldir.rpartition("/")
            entries = self._dir(parent_dir)
            ent = entries.get(name) if entries else None
            tree_id = ent.subtree if ent is not None and ent.is_dir else None
        result = self._load(tree_id) if tree_id is not None else None
        self._dirs[reldir] = result
        return result

    def _forget_all_but(self, reldir: str) -> None:
        """Drop the folders that are neither `reldir` nor above it."""
        keep = reldir + "/"
        for d in [d for d in self._dirs if d and not keep.startswith(d + "/")]:
            del self._dirs[d]

    def lookup(self, relpath: str) -> Entry | None:
        reldir, _, name = relpath.rpartition("/")
        if reldir != self._last:
            self._forget_all_but(reldir)
            self._last = reldir
        entries = self._dir(reldir)
        return entries.get(name) if entries else None


def _unchanged(item: ScanItem, old: Entry | None) -> bool:
    if old is None or not old.is_file or old.size != item.size or old.mtime_ns != item.mtime_ns:
        return False
    new_md5 = item.extra.get("md5")
    old_md5 = old.extra.get("md5")
    if new_md5 and old_md5 and new_md5 != old_md5:
        return False
    # An empty chunk list is only right for an empty file.
    return bool(old.chunks) or item.size == 0


def find_parent(repo: Repository, source: str, parent_ref: str | None) -> SnapshotHeader | None:
    if parent_ref:
        return repo.resolve_snapshot(parent_ref)
    for header in reversed(repo.list_snapshots()):
        if header.source == source:
            return header
    return None


def scan_filter(options: BackupOptions, source: Source) -> ScanFilter:
    """What the scan of `source` skips, from the options (one place for CLI and Prefect)."""
    if options.one_file_system and source.local_path("") is None:
        # restic refuses the flag where it cannot apply; silently ignoring it would back up
        # what the user meant to leave out.
        raise LocationError(f"--one-file-system is for local folders; {source.location} is not")
    return ScanFilter(
        options.excludes,
        larger_than=options.exclude_larger_than,
        only=options.files_from,
        one_file_system=options.one_file_system,
    )


def enumerate_source(
    repo: Repository,
    source: Source,
    spool_root: str,
    options: BackupOptions | None = None,
    *,
    lock_id: str | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> EnumerateResult:
    """Scan `source`, write the plan into a fresh run directory and return its summary.

    `on_batch(n)` is called as each full batch is planned (the scan goes on): the CLI starts
    its worker processes then, so their start-up overlaps the rest of the scan.

    `lock_id` is the store lock the run holds (default: the one this process holds on this
    store); it goes into the run id, which is how a later run tells this one is dead.
    """
    options = options or BackupOptions()
    excluder = scan_filter(options, source)
    started = time.time_ns()
    run_id, run_dir = _new_run(repo, spool_root, lock_id)
    reusable = _adopt(repo, source, spool_root, run_id, options)
    # --force-read needs no parent, unless --skip-if-unchanged compares with it at commit.
    parent = (
        None
        if options.force_read and not options.parent and not options.skip_if_unchanged
        else find_parent(repo, source.location, options.parent)
    )
    scan = _Scan(ParentLookup(repo, None if options.force_read else parent), reusable, options)
    scan.on_batch = on_batch
    for item in source.scan(excluder):
        scan.add(item)
    scan.finish(excluder.missing())
    plan = {
        "v": 2,
        "run": run_id,
        "store": repo.config.store_id,
        "adopted_runs": reusable.runs,
        "source": source.location,
        "parent": parent.id if parent is not None else None,
        "options": options.to_dict(),
        "started": started,
        "host": socket.gethostname(),
        "user": _user(),
        "items": scan.items,
        "batches": scan.batches,
        "counts": scan.counts,
    }
    spool.write_msgpack(spool.plan_path(run_dir), plan)
    counts = scan.counts
    return EnumerateResult(
        run_dir=run_dir,
        source=source.location,
        parent=parent.hex if parent is not None else None,
        batches=len(scan.batches),
        files=counts["files"],
        dirs=counts["dirs"],
        symlinks=counts["symlinks"],
        bytes_total=counts["bytes"],
        files_to_read=counts["read_files"],
        bytes_to_read=counts["read_bytes"],
        files_reused=counts["files"] - counts["read_files"],
        errors=scan.errors,
        run_id=run_id,
        files_adopted=counts["adopted_files"],
        dry_run=options.dry_run,
    )


def _new_run(repo: Repository, spool_root: str, lock_id: str | None) -> tuple[str, str]:
    """A fresh run id (carrying the store lock's id) and its run directory, with the claims
    file created before parallel batches race for it."""
    if lock_id is None:
        from kloset.locks import held_lock_id

        lock_id = held_lock_id(repo)
    run_id = new_run_id(lock_id)
    run_dir = os.path.join(spool_root, run_dir_name(run_id))
    make_run_dir(run_dir, repo.config.store_id)
    RunClaims.open_db(spool.claims_path(run_dir)).close()
    return run_id, run_dir


def _adopt(
    repo: Repository, source: Source, spool_root: str, run_id: str, options: BackupOptions
) -> Reusable:
    """Take in what dead runs left (spool packs into the store, unindexed packs indexed) and
    return their journals' files, reused by the scan so they are not read again. A dry run
    changes nothing; --force-read reuses nothing (but still adopts)."""
    if options.dry_run:
        return Reusable()
    from kloset.backup.adopt import adopt_dead_runs

    reusable = adopt_dead_runs(repo, source.location, spool_root, run_id).reusable
    return Reusable() if options.force_read else reusable


class _Scan:
    """The plan as the scan builds it: every item (with the parent's or a dead run's chunks
    where a file is unchanged), and batches of the files to read, cut by bytes and count."""

    def __init__(self, lookup: ParentLookup, reusable: Reusable, options: BackupOptions) -> None:
        self.lookup = lookup
        self.reusable = reusable
        self.batch_bytes = options.batch_bytes
        self.batch_files = options.batch_files
        self.on_batch: Callable[[int], None] | None = None
        self.items: list[list[Any]] = []
        self.batches: list[list[int]] = []
        self.current: list[int] = []
        self.cur_bytes = 0
        self.errors = 0
        self.counts = dict.fromkeys(
            ("files", "dirs", "symlinks", "bytes", "read_files", "read_bytes", "adopted_files"), 0
        )

    def add(self, item: ScanItem) -> None:
        meta = [item.type, item.mode, item.mtime_ns, item.size, item.target, item.extra]
        reuse = None
        if item.error:
            self.errors += 1
        elif item.type == FILE:
            reuse = self._file(item)
        elif item.type == DIR:
            self.counts["dirs"] += 1
        else:
            self.counts["symlinks"] += 1
        self.items.append([item.relpath, meta, reuse, item.error])

    def _file(self, item: ScanItem) -> list[bytes] | None:
        """The chunks to reuse for an unchanged file, or None: it goes into a batch."""
        counts = self.counts
        counts["files"] += 1
        counts["bytes"] += item.size
        old = self.lookup.lookup(item.relpath)
        if _unchanged(item, old):
            assert old is not None
            return old.chunks
        md5 = item.extra.get("md5")
        adopted = self.reusable.lookup(item.relpath, item.size, item.mtime_ns, md5)
        if adopted is not None:
            counts["adopted_files"] += 1
            return adopted
        if item.size == 0:
            return []
        self.current.append(len(self.items))
        self.cur_bytes += item.size
        counts["read_files"] += 1
        counts["read_bytes"] += item.size
        if self.cur_bytes >= self.batch_bytes or len(self.current) >= self.batch_files:
            self.batches.append(self.current)
            self.current, self.cur_bytes = [], 0
            if self.on_batch is not None:
                self.on_batch(len(self.batches))
        return None

    def finish(self, missing: Iterable[str]) -> None:
        """Paths `--files-from` named that the scan never met become errors (restic warns about
        these too; the snapshot records them); the last partial batch is closed."""
        for relpath in missing:
            self.errors += 1
            self.items.append(
                [relpath, [FILE, 0, 0, 0, None, {}], None, "in --files-from but not found"]
            )
        if self.current:
            self.batches.append(self.current)


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        return ""


def load_plan(run_dir: str) -> dict[str, Any]:
    return spool.read_msgpack(spool.plan_path(run_dir))  # type: ignore[no-any-return]


_plans: OrderedDict[str, dict[str, Any]] = OrderedDict()
_plans_lock = threading.Lock()


def load_plan_cached(run_dir: str) -> dict[str, Any]:
    """The run's plan, decoded once per process (the two newest runs are kept): it never
    changes after enumerate, and decoding it (every file of the source) for each batch costs
    more than chunking a small batch."""
    with _plans_lock:
        plan = _plans.get(run_dir)
    if plan is None:
        plan = load_plan(run_dir)
        with _plans_lock:
            _plans[run_dir] = plan
            while len(_plans) > 2:
                _plans.popitem(last=False)
    return plan


def load_batches(run_dir: str) -> list[list[list[Any]]]:
    """Every batch's items, as `back_up_batch` takes them: [index, relpath, size, mtime, md5]."""
    plan = load_plan_cached(run_dir)
    items = plan["items"]
    out = []
    for batch in plan["batches"]:
        rows = []
        for idx in batch:
            relpath, meta = items[idx][0], items[idx][1]
            rows.append([idx, relpath, int(meta[3] or 0), int(meta[2]), (meta[5] or {}).get("md5")])
        out.append(rows)
    return out
