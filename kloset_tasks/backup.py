"""Backup tasks: `enumerate`, `chunk`, `upload`, `commit_snapshot` and `verify`.

Each is a thin wrapper over one engine stage (`kloset.backup`), so the CLI and Prefect run the
same code. Inputs are a store spec, a location and a run directory on local disk; outputs are
the engine's small result dataclasses. No file bytes or file lists ever pass through Prefect:
the plan and the sealed packs stay in the run directory, and every stage is safe to retry
(chunk redoes its batch, upload skips packs the store already has, commit only writes the
snapshot header last).
"""

from __future__ import annotations

from typing import Any

from blocks import KlosetRepository
from blocks import locations as block_locations
from kloset.backup import (
    BackupOptions,
    ChunkResult,
    CommitResult,
    EnumerateResult,
    UploadResult,
    chunk_batch,
    enumerate_source,
)
from kloset.backup import commit_snapshot as engine_commit
from kloset.backup import upload_batch as engine_upload
from kloset.backup.plan import load_plan_cached
from kloset.backup.procpool import chunk_batch_in_process
from kloset.check import verify_snapshot
from kloset.errors import StoreNotFound
from kloset_tasks.factory import kloset_task
from kloset_tasks.spec import LocationParam, backup_spool_root, open_repo


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
    try:
        repo = open_repo(store)
    except StoreNotFound:
        if not create_store:
            raise
        store.create_repository()
        repo = open_repo(store)
    src = block_locations.open_source(source)
    return enumerate_source(repo, src, backup_spool_root(repo, spool_dir), options)


@kloset_task("chunk", retries=2, backoff=5)
def chunk(
    store: KlosetRepository,
    source: LocationParam,
    run_dir: str,
    batch: int,
    processes: int = 0,
) -> ChunkResult:
    """Read one batch from the source, cut it with FastCDC and seal new chunks into packs.

    Chunks the store already indexes (including batches other workers uploaded meanwhile) are
    dropped; the rest are compressed, encrypted and sealed into packs in the run directory.
    Unreadable files are reported in the result, not raised: one bad file must not fail the
    batch. A retry redoes the batch from scratch. With `processes`, a local source is chunked
    in one of that many worker processes (CPU-bound work that threads would serialise).
    """
    src = block_locations.open_source(source)
    if processes > 0 and src.local_path("") is not None:
        return chunk_batch_in_process(open_repo(store), run_dir, batch, src, processes)
    repo = open_repo(store, refresh=True)
    return chunk_batch(repo, run_dir, batch, source=src, plan=load_plan_cached(run_dir))


@kloset_task("upload", retries=4)
def upload(store: KlosetRepository, run_dir: str, batch: int) -> UploadResult:
    """Move one batch's sealed packs from the spool into the store, then index them.

    Never touches the source: a retry resends only packs the store does not have yet.
    """
    return engine_upload(open_repo(store), run_dir, batch)


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
