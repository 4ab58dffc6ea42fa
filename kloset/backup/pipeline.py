"""The in-process backup (CLI, UI): the same stages a Prefect flow runs, overlapped for speed.

enumerate → `back_up_batch` for every batch (at once, up to `workers`) → commit. Chunking a
local source is CPU-bound and runs in worker processes (`kloset.workers`: they die with this
process, whatever kills it); a remote source waits on the network and runs in threads. An
interrupt (see `kloset.interrupts`) stops handing out batches and abandons those in flight:
what they sealed is in the store and the next run adopts it.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from kloset.backup.batch import BatchItem, BatchResult, back_up_batch, batch_job, ship
from kloset.backup.commit import CommitResult, commit_snapshot
from kloset.backup.options import default_workers
from kloset.backup.plan import BackupOptions, EnumerateResult, enumerate_source, load_batches
from kloset.gcpause import fewer_collections
from kloset.repository import Repository, default_spool_dir
from kloset.source import Source
from kloset.workers import WorkerPool

ProgressFn = Callable[[str, dict[str, Any]], None]


@dataclass
class BackupReport:
    plan: EnumerateResult
    commit: CommitResult  # a dry run's has no snapshot id and counts what would be added
    duration: float
    dry_run: bool = False


def run_backup(
    repo: Repository,
    source: Source,
    options: BackupOptions | None = None,
    *,
    workers: int | None = None,
    progress: ProgressFn | None = None,
    spool_root: str | None = None,
    lock: bool = True,
) -> BackupReport:
    """Back up `source` into `repo`; returns the plan summary and the committed snapshot.

    Holds a shared store lock for the whole run (so a prune waits for it); `lock=False` is for
    callers that already hold one. A dry run (`options.dry_run`) takes no lock and writes
    nothing into the store.
    """
    options = options or BackupOptions()
    if lock and not options.dry_run:
        from kloset.locks import store_lock

        with store_lock(repo, False, "backup"), fewer_collections():
            return _run(repo, source, options, workers, progress, spool_root)
    with fewer_collections():
        return _run(repo, source, options, workers, progress, spool_root)


def _run(
    repo: Repository,
    source: Source,
    options: BackupOptions,
    workers: int | None,
    progress: ProgressFn | None,
    spool_root: str | None,
) -> BackupReport:
    started = time.perf_counter()
    emit = progress or (lambda _event, _data: None)
    scratch = tempfile.mkdtemp(prefix="kloset-dry-") if options.dry_run else None
    spool_root = scratch or spool_root or default_spool_dir(repo.storage)
    local = source.local_path("") is not None
    workers = max(1, workers or default_workers(local))
    plan: EnumerateResult | None = None
    # Worker processes for a local source's batches, started once a second batch is certain
    # (a run of one batch runs it in this process), so they start while the scan goes on.
    pool = (
        WorkerPool(workers, preload="kloset.backup.batch", label=repo.storage.location)
        if local and workers > 1
        else None
    )

    def on_batch(planned: int) -> None:
        if pool is not None:
            pool.prestart(planned + 1)  # at least one more batch follows this full one

    try:
        plan = enumerate_source(repo, source, spool_root, options, on_batch=on_batch)
        emit("planned", {"plan": plan})
        results = _run_batches(repo, source, plan, workers, pool, emit) if plan.batches else []
        if options.dry_run:
            return BackupReport(
                plan, _dry_commit(plan, results), time.perf_counter() - started, True
            )
        emit("committing", {})
        commit = commit_snapshot(repo, plan.run_dir)
    except BaseException:
        # What the batches stored is indexed and journaled: the next run adopts it.
        if pool is not None:
            pool.kill()
        if plan is not None:
            shutil.rmtree(plan.run_dir, ignore_errors=True)
        raise
    finally:
        if pool is not None:
            pool.close()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return BackupReport(plan, commit, time.perf_counter() - started)


def _run_batches(
    repo: Repository,
    source: Source,
    plan: EnumerateResult,
    workers: int,
    pool: WorkerPool | None,
    emit: ProgressFn,
) -> list[BatchResult]:
    """Every batch, `workers` at once; emits "read" as files are read and "batch" per batch.
    Batches run in `pool`'s processes when there is more than one, else in threads."""
    batches = load_batches(plan.run_dir)
    run = plan.run
    stop = threading.Event()
    if len(batches) < 2:
        pool = None
    shipped = ship(repo) if pool is not None else None

    def on_report(value: tuple[int, int]) -> None:
        emit("read", {"bytes": value[0], "files": value[1]})

    def on_file(nbytes: int) -> None:
        emit("read", {"bytes": nbytes, "files": 1})

    def one(batch_no: int, items: list[BatchItem]) -> BatchResult:
        if stop.is_set():
            raise BatchStoppedEarly
        if pool is not None:
            result: BatchResult = pool.run(
                batch_job, shipped, source, run, batch_no, items, on_report=on_report
            )
        else:
            result = back_up_batch(repo, source, run, batch_no, items, on_file=on_file, stop=stop)
        # Said at once, from this thread: an interrupt's line counts the batch as stored.
        emit("batch", {"result": result})
        return result

    results: list[BatchResult] = []
    executor = ThreadPoolExecutor(min(workers, len(batches)), thread_name_prefix="kloset-batch")
    try:
        pending: set[Future[BatchResult]] = {
            executor.submit(one, b, items) for b, items in enumerate(batches)
        }
        while pending:
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            results.extend(fut.result() for fut in done)
    except BaseException:
        # Stop handing out batches and abandon those in flight (see the module docstring).
        stop.set()
        executor.shutdown(wait=False, cancel_futures=True)
        if pool is not None:
            pool.kill()
        raise
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
    return results


class BatchStoppedEarly(Exception):
    """A batch that had not started when the run stopped."""


def _dry_commit(plan: EnumerateResult, results: list[BatchResult]) -> CommitResult:
    """What a dry run reports in place of a commit: what the batches would have added."""
    errors = [e for r in results for e in r.errors]
    stats = {
        "files": plan.files,
        "dirs": max(0, plan.dirs - 1),  # as commit counts them: the root is not one
        "symlinks": plan.symlinks,
        "bytes": plan.bytes_total,
        "bytes_read": sum(r.bytes_read for r in results),
        "chunks_new": sum(r.new_chunks for r in results),
        "bytes_new": sum(r.new_bytes for r in results),
        "bytes_added": sum(r.stored_bytes for r in results),
        "files_read": sum(r.files for r in results),
        "errors": len(errors),
    }
    return CommitResult(snapshot_id="", stats=stats, errors=errors)
