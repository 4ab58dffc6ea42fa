"""The in-process backup: the same stages the Prefect flow runs, overlapped for speed.

Chunking is CPU-bound for local sources (FastCDC, BLAKE3, zstd, AES) and runs in forked worker
processes (threads lose to the GIL there); for remote sources it waits on the network and runs
in threads. The main thread uploads each batch as soon as it is sealed, then commits.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing.managers import BaseManager
from typing import Any

from kloset.backup.chunk import ChunkResult, chunk_batch
from kloset.backup.claims import Claims, LocalClaims
from kloset.backup.commit import CommitResult, commit_snapshot
from kloset.backup.plan import BackupOptions, EnumerateResult, enumerate_source, load_plan
from kloset.backup.upload import upload_batch
from kloset.gcpause import fewer_collections
from kloset.repository import Repository, default_spool_dir
from kloset.source import Source

ProgressFn = Callable[[str, dict[str, Any]], None]


@dataclass
class BackupReport:
    plan: EnumerateResult
    commit: CommitResult
    duration: float


class _ClaimsManager(BaseManager):
    pass


_ClaimsManager.register("LocalClaims", LocalClaims)

# Set in the parent right before forking; workers inherit them copy-on-write.
_FORK_STATE: dict[str, Any] = {}


def _fork_worker(batch_no: int) -> ChunkResult:
    st = _FORK_STATE
    counter = st["counter"]

    def on_file(nbytes: int) -> None:
        with counter.get_lock():
            counter.value += nbytes

    return chunk_batch(
        st["repo"],
        st["run_dir"],
        batch_no,
        source=st["source"],
        claims=st["claims"],
        plan=st["plan"],
        on_file=on_file,
    )


def default_workers(source: Source) -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cpus) if source.local_path("") is not None else 8


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
    callers that already hold one.
    """
    if lock:
        from kloset.locks import store_lock

        with store_lock(repo, False, "backup"), fewer_collections():
            return run_backup(
                repo,
                source,
                options,
                workers=workers,
                progress=progress,
                spool_root=spool_root,
                lock=False,
            )
    started = time.perf_counter()
    options = options or BackupOptions(batch_bytes=64 * 1024 * 1024, batch_files=4000)
    spool_root = spool_root or default_spool_dir(repo.storage)
    emit = progress or (lambda _event, _data: None)
    repo.index  # noqa: B018 - load once before forking so workers share it
    plan_summary = enumerate_source(repo, source, spool_root, options)
    emit("planned", {"plan": plan_summary})
    run_dir = plan_summary.run_dir
    workers = workers or default_workers(source)
    nbatches = plan_summary.batches
    use_processes = source.local_path("") is not None and workers > 1 and nbatches > 1
    try:
        if nbatches:
            if use_processes:
                _run_forked(repo, source, run_dir, nbatches, workers, emit)
            else:
                _run_threaded(repo, source, run_dir, nbatches, workers, emit)
        emit("committing", {})
        commit = commit_snapshot(repo, run_dir)
    except BaseException:
        # Leave sealed-but-unindexed packs for nobody: uploaded ones are indexed and reused.
        from kloset.backup import spool

        spool.remove_run(run_dir)
        raise
    return BackupReport(plan_summary, commit, time.perf_counter() - started)


def _run_threaded(
    repo: Repository, source: Source, run_dir: str, nbatches: int, workers: int, emit: ProgressFn
) -> None:
    plan = load_plan(run_dir)
    claims: Claims = LocalClaims()

    def on_file(nbytes: int) -> None:
        emit("read", {"bytes": nbytes, "files": 1})

    with ThreadPoolExecutor(max(1, min(workers, nbatches))) as pool:
        futures: list[Future[ChunkResult]] = [
            pool.submit(
                chunk_batch,
                repo,
                run_dir,
                b,
                source=source,
                claims=claims,
                plan=plan,
                on_file=on_file,
            )
            for b in range(nbatches)
        ]
        for fut in as_completed(futures):
            res = fut.result()
            upload_batch(repo, run_dir, res.batch)
            emit("batch", {"result": res})


def _run_forked(
    repo: Repository, source: Source, run_dir: str, nbatches: int, workers: int, emit: ProgressFn
) -> None:
    ctx = mp.get_context("fork")
    manager = _ClaimsManager(ctx=ctx)
    manager.start()
    counter = ctx.Value("q", 0)
    try:
        _FORK_STATE.update(
            repo=repo,
            source=source,
            run_dir=run_dir,
            plan=load_plan(run_dir),
            claims=manager.LocalClaims(),
            counter=counter,  # type: ignore[attr-defined]
        )
        seen = 0
        with ProcessPoolExecutor(max_workers=min(workers, nbatches), mp_context=ctx) as pool:
            pending = {pool.submit(_fork_worker, b) for b in range(nbatches)}
            while pending:
                done = {f for f in pending if f.done()}
                for fut in done:
                    pending.discard(fut)
                    res = fut.result()
                    upload_batch(repo, run_dir, res.batch)
                    emit("batch", {"result": res})
                now = counter.value
                if now != seen:
                    emit("read", {"bytes": now - seen, "files": 0})
                    seen = now
                if pending and not done:
                    time.sleep(0.05)
    finally:
        _FORK_STATE.clear()
        manager.shutdown()
