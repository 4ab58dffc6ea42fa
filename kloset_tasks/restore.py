"""Restore tasks: `plan_restore`, `restore_batch`, `finish_restore` and `verify_restore`.

Thin wrappers over `kloset.restore` (the CLI's restore runs the same stages). The plan lives in
a run directory on local disk; batches are ordered by where their data sits in the packs, so
each batch reads a few coalesced ranges. Every task is idempotent: a file already restored
identically is skipped, directories and links are (re)applied, verification only reads.
"""

from __future__ import annotations

from blocks import KlosetRepository
from blocks import locations as block_locations
from kloset import restore as engine
from kloset.restore.verify import RestoreVerifyResult, verify_restored
from kloset_tasks.factory import kloset_task
from kloset_tasks.spec import LocationParam, open_repo, restore_spool_root


@kloset_task("plan_restore", retries=2)
def plan_restore(
    store: KlosetRepository,
    snapshot: str,
    path: str,
    target: LocationParam,
    spool_dir: str | None = None,
    batch_bytes: int = 256 * 1024 * 1024,
    batch_files: int = 4096,
) -> engine.RestorePlan:
    """Resolve the snapshot, create the target's directories and batch the files to write."""
    repo = open_repo(store)
    header = repo.resolve_snapshot(snapshot)
    dest = block_locations.open_destination(target)
    return engine.plan_restore(
        repo,
        header,
        path,
        dest,
        restore_spool_root(spool_dir),
        batch_bytes=batch_bytes,
        batch_files=batch_files,
    )


@kloset_task("restore_batch", retries=3)
def restore_batch(
    store: KlosetRepository,
    run_dir: str,
    batch: int,
    target: LocationParam,
    overwrite: bool = False,
    threads: int = 8,
) -> engine.RestoreBatchResult:
    """Write one batch of files; files already there and identical are skipped."""
    dest = block_locations.open_destination(target)
    return engine.restore_batch(
        open_repo(store), run_dir, batch, dest, overwrite=overwrite, threads=threads
    )


@kloset_task("finish_restore", retries=2)
def finish_restore(run_dir: str, target: LocationParam) -> tuple[int, list[tuple[str, str]]]:
    """Create symlinks and apply directory modes and mtimes, once every file is written."""
    return engine.finish_restore(run_dir, block_locations.open_destination(target))


@kloset_task("verify_restore", retries=2)
def verify_restore(
    run_dir: str, target: LocationParam, batches: list[int] | None = None
) -> RestoreVerifyResult:
    """Read back what was written and compare MD5s (and the source's MD5, when recorded)."""
    return verify_restored(run_dir, block_locations.open_destination(target), batches)
