"""The in-process restore (the CLI's and the UI's): plan, batches two at a time, finish."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from kloset.backup import spool
from kloset.destination import Destination, LocalDestination
from kloset.gcpause import fewer_collections
from kloset.repository import Repository
from kloset.restore.batch import restore_batch
from kloset.restore.finish import finish_restore
from kloset.restore.plan import RestorePlan, plan_restore
from kloset.snapshot import SnapshotHeader


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
