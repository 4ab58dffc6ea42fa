"""Restore: plan → batches → finish, the same stages for the CLI and the Prefect flow.

Files are ordered by where their data lives so each batch reads few, coalesced ranges; batches
write files from several threads because creating a file costs kernel time that only overlap
hides. Directory modes/mtimes and symlinks are applied last, so nothing is ever written through
a symlink and a read-only directory never blocks its own children.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from kloset.backup import spool
from kloset.destination import Destination, FsspecDestination, LocalDestination, safe_parts
from kloset.errors import KlosetError, LocationError, UnsafePath
from kloset.fetch import fetch_blobs
from kloset.gcpause import fewer_collections
from kloset.repository import Repository
from kloset.snapshot import SnapshotHeader
from kloset.tree import Entry
from kloset.vfs import SnapshotView, iter_tree, normalize

BIG_FILE = 16 * 1024 * 1024
WINDOW_CHUNKS = 8


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


@dataclass
class RestoreBatchResult:
    batch: int
    files_written: int = 0
    files_skipped: int = 0
    bytes_written: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)


def open_destination(location: str) -> Destination:
    from fsspec.implementations.local import LocalFileSystem

    from kloset.locations import resolve

    fs, root = resolve(location, "destination")
    if isinstance(fs, LocalFileSystem):
        if os.path.exists(root) and not os.path.isdir(root):
            raise LocationError(f"restore target {location} exists and is not a directory")
        return LocalDestination(root)
    return FsspecDestination(fs, root, location)


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
) -> RestorePlan:
    """Walk the snapshot below `path`, create the directories, and batch the files."""
    view = SnapshotView(repo, header)
    base = normalize(path)
    run_dir = os.path.join(spool_root, f"restore-{time.time_ns()}-{os.urandom(4).hex()}")
    os.makedirs(run_dir, exist_ok=True)
    errors: list[tuple[str, str]] = []
    found: list[tuple[str, str, Entry]] = []  # (snapshot path, target-relative path, entry)
    root_entry = view.stat(base)
    # Our own depth-first walk (not view.walk) so that a directory we refuse or cannot read is
    # not descended into; one we cannot create drops its whole subtree afterwards.
    rel0 = "" if root_entry.is_dir else root_entry.name  # a single file lands inside the target
    todo: list[tuple[str, str, Entry]] = [(base, rel0, root_entry)]
    while todo:
        spath, rel, entry = todo.pop()
        try:
            if entry is not root_entry and (entry.name in ("", ".", "..") or "/" in entry.name):
                # A crafted tree may hold names with '/', which would silently address another
                # path (possibly below a symlink already in the target).
                raise UnsafePath(f"refusing unsafe name {entry.name!r}")
            safe_parts(rel)
        except UnsafePath as exc:
            errors.append((spath, str(exc)))
            continue
        found.append((spath, rel, entry))
        if entry.is_dir:
            try:
                children = list(iter_tree(repo, entry.subtree)) if entry.subtree else []
            except KlosetError as exc:
                errors.append((spath, f"cannot read directory: {exc}"))
                children = []
            for child in reversed(children):
                cpath = f"{spath.rstrip('/')}/{child.name}"
                todo.append((cpath, f"{rel}/{child.name}" if rel else child.name, child))

    dirs = [(rel, spath) for spath, rel, entry in found if entry.is_dir]
    failed = _create_dirs(dest, dirs, threads, errors)
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
    spool.write_msgpack(
        spool.plan_path(run_dir),
        {"v": 1, "snapshot": header.id, "path": base, "items": items, "batches": batches},
    )
    return RestorePlan(run_dir, header.hex, base, len(batches), errors=errors, **counts)


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


def _file_blocks(repo: Repository, entry: Entry, cache: dict[bytes, bytes]) -> Iterator[bytes]:
    if all(c in cache for c in entry.chunks):
        for c in entry.chunks:
            yield cache[c]
        return
    for start in range(0, len(entry.chunks), WINDOW_CHUNKS):
        window = entry.chunks[start : start + WINDOW_CHUNKS]
        blobs = fetch_blobs(repo, window)
        for c in window:
            yield blobs[c]


def restore_batch(
    repo: Repository,
    run_dir: str,
    batch_no: int,
    dest: Destination,
    *,
    overwrite: bool = False,
    threads: int = 8,
    plan: dict[str, Any] | None = None,
    on_file: Callable[[int], None] | None = None,
) -> RestoreBatchResult:
    """Write batch `batch_no`'s files; idempotent (identical files already there are skipped)."""
    plan = plan or spool.read_msgpack(spool.plan_path(run_dir))
    items = plan["items"]
    entries = [(items[i][0], Entry.from_obj(items[i][1])) for i in plan["batches"][batch_no]]
    result = RestoreBatchResult(batch_no)
    todo: list[tuple[str, Entry]] = []
    for rel, entry in entries:
        current = dest.is_current(rel, entry)
        if current is True:
            result.files_skipped += 1
            if on_file is not None:
                on_file(entry.size)
        elif current is False and not overwrite:
            result.errors.append(("/" + rel, "exists and differs (use --overwrite to replace)"))
        else:
            todo.append((rel, entry))
    small = [c for rel, e in todo if e.size <= BIG_FILE for c in e.chunks]
    # Blobs that fail here are fetched again per file, so only the files using them fail.
    cache = fetch_blobs(repo, small, on_error=lambda _bid, _exc: None) if small else {}
    md5s: dict[str, str] = {}

    def write(item: tuple[str, Entry]) -> tuple[str, int, str | None, str | None]:
        rel, entry = item
        try:
            digest = dest.write_file(rel, entry, _file_blocks(repo, entry, cache))
            return rel, entry.size, digest, None
        except (OSError, KlosetError) as exc:
            return rel, 0, None, str(exc)
        except Exception as exc:  # noqa: BLE001 - remote destinations raise their own errors
            return rel, 0, None, str(exc)

    def write_group(
        group: list[tuple[str, Entry]],
    ) -> list[tuple[str, int, str | None, str | None]]:
        return [write(item) for item in group]

    # Files go to the threads in groups: one future per file costs more GIL time than the
    # small files themselves take to write.
    step = max(1, min(64, len(todo) // (4 * max(1, threads)) or 1))
    groups = [todo[i : i + step] for i in range(0, len(todo), step)]
    with ThreadPoolExecutor(max(1, threads)) as pool:
        results = (r for rs in pool.map(write_group, groups) for r in rs)
        for rel, size, digest, err in results:
            if err is not None:
                result.errors.append(("/" + rel, err))
            else:
                result.files_written += 1
                result.bytes_written += size
                md5s[rel] = digest or ""
            if on_file is not None:
                on_file(size)
    spool.write_msgpack(os.path.join(run_dir, f"written-{spool.batch_name(batch_no)}"), md5s)
    return result


def finish_restore(run_dir: str, dest: Destination) -> tuple[int, list[tuple[str, str]]]:
    """Create symlinks, then apply directory modes and mtimes deepest first."""
    plan = spool.read_msgpack(spool.plan_path(run_dir))
    errors: list[tuple[str, str]] = []
    links = 0
    dirs: list[tuple[str, Entry]] = []
    for rel, obj in plan["items"]:
        entry = Entry.from_obj(obj)
        if entry.is_symlink:
            try:
                if dest.symlink(rel, entry):
                    links += 1
                else:
                    why = "destination cannot hold it, or a non-link is there"
                    errors.append(("/" + rel, f"symlink not restored ({why})"))
            except OSError as exc:
                errors.append(("/" + rel, f"cannot create symlink: {exc}"))
        elif entry.is_dir:
            dirs.append((rel, entry))
    for rel, entry in sorted(dirs, key=lambda t: t[0].count("/"), reverse=True):
        try:
            dest.finish_dir(rel, entry)
        except OSError as exc:
            errors.append(("/" + rel, f"cannot set directory metadata: {exc}"))
    return links, errors


@dataclass
class RestoreReport:
    plan: RestorePlan
    files_written: int
    files_skipped: int
    bytes_written: int
    symlinks: int
    errors: list[tuple[str, str]]
    duration: float


def run_restore(
    repo: Repository,
    header: SnapshotHeader,
    path: str,
    dest: Destination,
    *,
    overwrite: bool = False,
    threads: int = 8,
    progress: Callable[[str, dict[str, Any]], None] | None = None,
    spool_root: str | None = None,
    lock: bool = True,
) -> RestoreReport:
    """Restore `path` of a snapshot into `dest` (the CLI's entry point).

    Holds a shared lock so a prune cannot delete packs mid-restore; a read-only store that
    cannot take a lock is still restorable. `lock=False`: the caller holds one.
    """
    import tempfile

    if lock:
        from kloset.locks import store_lock

        with store_lock(repo, False, "restore", required=False), fewer_collections():
            return run_restore(
                repo,
                header,
                path,
                dest,
                overwrite=overwrite,
                threads=threads,
                progress=progress,
                spool_root=spool_root,
                lock=False,
            )

    started = time.perf_counter()
    emit = progress or (lambda _e, _d: None)
    spool_root = spool_root or tempfile.gettempdir()
    if isinstance(dest, LocalDestination):
        dest.hash_written = False  # nothing reads the MD5s on this path (see LocalDestination)
    plan = plan_restore(repo, header, path, dest, spool_root)
    emit("planned", {"plan": plan})
    data = spool.read_msgpack(spool.plan_path(plan.run_dir))
    errors = list(plan.errors)
    written = skipped = nbytes = 0

    def on_file(size: int) -> None:
        emit("file", {"bytes": size})

    try:
        # Batches run two at a time so fetching one overlaps writing the other.
        with ThreadPoolExecutor(2) as pool:
            futures = [
                pool.submit(
                    restore_batch,
                    repo,
                    plan.run_dir,
                    b,
                    dest,
                    overwrite=overwrite,
                    threads=threads,
                    plan=data,
                    on_file=on_file,
                )
                for b in range(plan.batches)
            ]
            for fut in futures:
                res = fut.result()
                written += res.files_written
                skipped += res.files_skipped
                nbytes += res.bytes_written
                errors.extend(res.errors)
        links, link_errors = finish_restore(plan.run_dir, dest)
        errors.extend(link_errors)
    finally:
        spool.remove_run(plan.run_dir)
    duration = time.perf_counter() - started
    return RestoreReport(plan, written, skipped, nbytes, links, errors, duration)
