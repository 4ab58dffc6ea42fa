"""The in-process restore (the CLI's and the UI's): plan, batches two at a time, finish, and
with `verify` a read-back of what was written; `dry_run` stops after the plan and reports
what the batches would do."""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from kloset import rundir
from kloset.destination import Destination, LocalDestination
from kloset.gcpause import fewer_collections
from kloset.repository import Repository
from kloset.restore import procs
from kloset.restore.batch import restore_batch
from kloset.restore.finish import finish_restore
from kloset.restore.plan import RestorePlan, plan_restore
from kloset.restore.select import Selection
from kloset.restore.verify import RestoreVerifyResult, verify_restored
from kloset.snapshot import SnapshotHeader
from kloset.tree import Entry

Progress = Callable[[str, dict[str, Any]], None]


@dataclass
class RestoreReport:
    plan: RestorePlan
    files_written: int  # in a dry run: would be written
    files_skipped: int
    bytes_written: int
    symlinks: int
    errors: list[tuple[str, str]]
    duration: float
    dry_run: bool = False
    verified: RestoreVerifyResult | None = None
    bytes_skipped: int = 0

    @property
    def deleted(self) -> list[str]:
        return self.plan.deleted


@dataclass
class _Options:
    overwrite: bool
    threads: int
    select: Selection | None
    delete: bool
    dry_run: bool
    verify: bool


def run_restore(
    repo: Repository,
    header: SnapshotHeader,
    path: str,
    dest: Destination,
    *,
    overwrite: bool = False,
    threads: int = 8,
    progress: Progress | None = None,
    spool_root: str | None = None,
    lock: bool = True,
    select: Selection | None = None,
    delete: bool = False,
    dry_run: bool = False,
    verify: bool = False,
) -> RestoreReport:
    """Restore `path` of a snapshot into `dest` (the CLI's entry point).

    `select` limits it to `--include`/`--exclude`; `delete` makes the target equal to the
    snapshot (it replaces files that differ too); `dry_run` writes and deletes nothing;
    `verify` reads back every file written. Holds a shared lock so a prune cannot delete packs
    mid-restore; a read-only store that cannot take a lock is still restorable. `lock=False`:
    the caller holds one.
    """
    options = _Options(overwrite or delete, threads, select, delete, dry_run, verify)
    emit = progress or (lambda _e, _d: None)
    root = spool_root or tempfile.gettempdir()
    if not lock:
        return _restore(repo, header, path, dest, options, emit, root)
    from kloset.locks import store_lock

    with store_lock(repo, False, "restore", required=False), fewer_collections():
        return _restore(repo, header, path, dest, options, emit, root)


def _restore(
    repo: Repository,
    header: SnapshotHeader,
    path: str,
    dest: Destination,
    options: _Options,
    emit: Progress,
    spool_root: str,
) -> RestoreReport:
    started = time.perf_counter()
    if isinstance(dest, LocalDestination):
        # Hashing what is written costs more CPU than decrypting it: only --verify needs it.
        dest.hash_written = options.verify
    plan = plan_restore(
        repo,
        header,
        path,
        dest,
        spool_root,
        threads=options.threads,
        select=options.select,
        delete=options.delete,
        dry_run=options.dry_run,
    )
    emit("planned", {"plan": plan})
    data = rundir.read_msgpack(rundir.plan_path(plan.run_dir))
    errors = list(plan.errors)
    try:
        if options.dry_run:
            counts = _dry_run(data, dest, options.overwrite, errors)
            written, skipped, nbytes, skipped_bytes, links = counts
            verified = None
        else:
            counts = _batches(repo, plan, data, dest, options, emit, errors)
            written, skipped, nbytes, skipped_bytes = counts
            links, link_errors = finish_restore(plan.run_dir, dest, data)
            errors.extend(link_errors)
            verified = None
            if options.verify:
                verified = verify_restored(plan.run_dir, dest, threads=options.threads, plan=data)
                errors.extend(verified.errors)
    finally:
        plan.discard()
    duration = time.perf_counter() - started
    return RestoreReport(
        plan,
        written,
        skipped,
        nbytes,
        links,
        errors,
        duration,
        options.dry_run,
        verified,
        skipped_bytes,
    )


def _batches(
    repo: Repository,
    plan: RestorePlan,
    data: dict[str, Any],
    dest: Destination,
    options: _Options,
    emit: Progress,
    errors: list[tuple[str, str]],
) -> tuple[int, int, int, int]:
    """Every batch, two at a time so fetching one overlaps writing the other (in a forked
    process per core for a local store and target, see `procs`): (files written, files
    skipped as identical, bytes written, bytes skipped)."""
    written = skipped = nbytes = 0
    skipped_bytes = [0]
    lock = threading.Lock()  # files finish in many threads at once

    def on_file(size: int, was_skipped: bool) -> None:
        if was_skipped:
            with lock:
                skipped_bytes[0] += size
        emit("file", {"bytes": size, "skipped": was_skipped})

    if procs.usable(repo, dest, plan.batches):
        for res in procs.forked_batches(
            repo,
            plan.run_dir,
            plan.batches,
            dest,
            overwrite=options.overwrite,
            threads=options.threads,
            plan=data,
            on_file=on_file,
        ):
            written += res.files_written
            skipped += res.files_skipped
            nbytes += res.bytes_written
            errors.extend(res.errors)
        return written, skipped, nbytes, skipped_bytes[0]
    with ThreadPoolExecutor(2) as pool:
        futures = [
            pool.submit(
                restore_batch,
                repo,
                plan.run_dir,
                b,
                dest,
                overwrite=options.overwrite,
                threads=options.threads,
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
    return written, skipped, nbytes, skipped_bytes[0]


def _dry_run(
    data: dict[str, Any], dest: Destination, overwrite: bool, errors: list[tuple[str, str]]
) -> tuple[int, int, int, int, int]:
    """What the batches would do: (files written, skipped, bytes written, skipped, symlinks)."""
    written = skipped = nbytes = skipped_bytes = links = 0
    for rel, obj in data["items"]:
        entry = Entry.from_obj(obj)
        if entry.is_symlink:
            links += 1
        if not entry.is_file:
            continue
        current = dest.is_current(rel, entry)
        if current is True:
            skipped += 1
            skipped_bytes += entry.size
        elif current is False and not overwrite:
            errors.append(("/" + rel, "exists and differs (use --overwrite to replace)"))
        else:
            written += 1
            nbytes += entry.size
    return written, skipped, nbytes, skipped_bytes, links
