"""Backup tasks: `enumerate`, `backup_batch`, `commit_snapshot` and `verify`.

Each is a thin wrapper over one engine stage (`kloset.backup`), so the CLI and Prefect run the
same code. Inputs are a store spec, a location, the run (`RunRef`) and a batch's items; outputs
are the engine's small result dataclasses. No file bytes pass through Prefect: a batch puts its
packs, their index and its journal straight into the store, so it can run on any machine that
sees the source and the store, and every stage is safe to retry (a batch skips packs the store
has, commit only writes the snapshot header last).
"""

from __future__ import annotations

import threading
from typing import Any

from blocks import KlosetRepository
from blocks import locations as block_locations
from kloset import workers as engine_workers
from kloset.backup import (
    BackupOptions,
    BatchResult,
    CommitResult,
    EnumerateResult,
    RunRef,
    back_up_batch,
    enumerate_source,
)
from kloset.backup import commit_snapshot as engine_commit
from kloset.backup.batch import BatchItem, batch_job, ship
from kloset.check import verify_snapshot
from kloset_tasks.factory import kloset_task
from kloset_tasks.spec import (
    LocationParam,
    _run_id,
    backup_spool_root,
    open_or_create,
    open_repo,
)

# Per flow run: set when the run is cancelled or interrupted, so the batches it runs in this
# process's threads stop between two files (the engine's `stop`).
_stops: dict[str, threading.Event] = {}
_stops_lock = threading.Lock()


def _batch_stop() -> threading.Event:
    with _stops_lock:
        return _stops.setdefault(_run_id(), threading.Event())


def stop_batches() -> None:
    """Abandon this flow run's batches in this process now: threads stop between two files,
    worker processes are killed (what they half wrote is temporaries nobody names)."""
    _batch_stop().set()
    engine_workers.shutdown_shared()


def forget_batches() -> None:
    """The flow run's batches are over: drop its stop event."""
    with _stops_lock:
        _stops.pop(_run_id(), None)


@kloset_task("enumerate", retries=2, backoff=5)
def enumerate_task(
    store: KlosetRepository,
    source: LocationParam,
    options: BackupOptions,
    spool_dir: str | None = None,
    create_store: bool = False,
) -> EnumerateResult:
    """List the source, match it against its parent snapshot, and plan batches.

    Unchanged files (same size, mtime and, on Koofr, MD5) reuse the parent's chunks and are
    never read. With `create_store`, a missing store is created first (for first runs).
    """
    repo = open_or_create(store, create_store)
    src = block_locations.open_source(source)
    return enumerate_source(repo, src, backup_spool_root(repo, spool_dir), options)


@kloset_task("backup_batch", retries=2, backoff=5)
def backup_batch(
    store: KlosetRepository,
    source: LocationParam,
    run: RunRef,
    batch: int,
    items: list[BatchItem],
    processes: int = 0,
) -> BatchResult:
    """Read one batch from the source, chunk it, and put its new data into the store.

    Chunks the store already indexes (including batches other workers stored meanwhile) are
    dropped; the rest are compressed, encrypted and sealed into packs that go straight into the
    store, then their index and the batch's journal. Unreadable files are reported in the
    result, not raised: one bad file must not fail the batch. A retry redoes the batch; what
    the store already has is not sent again. With `processes`, a local source is chunked in one
    of that many worker processes (CPU-bound work that threads would serialise).
    """
    src = block_locations.open_source(source)
    if processes > 0 and src.local_path("") is not None:
        repo = open_repo(store)
        label = repo.storage.location
        pool = engine_workers.shared_pool(processes, preload="kloset.backup.batch", label=label)
        shipped = ship(repo)
        result: BatchResult = pool.run(batch_job, shipped, src, run, batch, items)
        return result
    repo = open_repo(store, refresh=True)
    return back_up_batch(repo, src, run, batch, items, stop=_batch_stop())


@kloset_task("commit_snapshot", retries=3)
def commit_snapshot(store: KlosetRepository, run_dir: str) -> CommitResult:
    """Write the directory trees and then the snapshot header (which makes it exist)."""
    return engine_commit(open_repo(store), run_dir)


@kloset_task("verify", retries=2)
def verify(
    store: KlosetRepository, snapshot: str, read_data_fraction: float = 0.0
) -> dict[str, Any]:
    """Check a snapshot's structure and read back a fraction of its data.

    Returns the check report as a dict (``ok``, ``errors``, counts, affected paths): damage is
    reported, not raised, so the flow can put it in its summary and then fail.
    """
    repo = open_repo(store, refresh=True)
    report = verify_snapshot(repo, snapshot, read_data_fraction=read_data_fraction)
    return report.to_dict()
