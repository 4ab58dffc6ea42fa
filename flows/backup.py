"""`backup_flow`: back up a Koofr folder (or any path/URL) into a Kloset store.

The flow only orchestrates: it holds the store's shared lock, runs `enumerate`, then each
batch through `chunk` → `upload` on the chosen task runner with a bounded number of batches in
flight, then `commit_snapshot` and `verify`, and reports. All backup logic is the engine's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from prefect import flow, get_run_logger

from blocks import KlosetRepository, KoofrStorage
from blocks import locations as block_locations
from flows import reporting
from flows.runners import RunnerChoice, make_runner, run_batches
from kloset.backup import BackupOptions, ChunkResult, CommitResult, EnumerateResult, UploadResult
from kloset.backup import spool as engine_spool
from kloset_tasks import chunk, commit_snapshot, enumerate_task, upload, verify
from kloset_tasks.spec import koofr_tags, store_session, store_spec

MIB = 1024 * 1024
# A batch must take seconds, not milliseconds: Prefect's per-task cost (~40 ms of state
# changes on a SQLite server) then stays far below 5% of the run.
DEFAULT_BATCH_BYTES = 256 * MIB
DEFAULT_BATCH_FILES = 20_000


@dataclass
class _Run:
    """What the flow learned so far; enough to report a failure at any point."""

    source: str
    store: str
    plan: EnumerateResult | None = None
    chunks: dict[int, ChunkResult] = field(default_factory=dict)
    uploads: dict[int, UploadResult] = field(default_factory=dict)
    commit: CommitResult | None = None
    verification: dict[str, Any] | None = None
    failures: list[tuple[str, str]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)


@flow(
    name="kloset-backup",
    description="Back up a Koofr folder, path or fsspec URL into an encrypted Kloset store.",
    validate_parameters=True,
)
def backup_flow(
    source: KoofrStorage | str,
    store: KlosetRepository | str,
    tags: list[str] | None = None,
    exclude: list[str] | None = None,
    force_read: bool = False,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    batch_files: int = DEFAULT_BATCH_FILES,
    task_runner: RunnerChoice = "thread",
    workers: int = 4,
    dask_address: str | None = None,
    verify_fraction: float = 0.05,
    create_store: bool = False,
    spool_dir: str | None = None,
    allow_partial: bool = False,
    chunk_processes: bool = True,
) -> dict[str, Any]:
    """Back up `source` into `store` and verify the new snapshot.

    Args:
        source: A Koofr Storage block, or a local path, fsspec URL or ``@NAME[:/sub]``.
        store: A Kloset Repository block, or a store location (passphrase from
            ``KLOSET_PASSPHRASE`` on the worker).
        tags: Tags recorded in the snapshot (retention can keep tagged snapshots).
        exclude: Gitignore-style patterns of paths to leave out.
        force_read: Read every file even if the parent snapshot has it unchanged.
        batch_bytes: Bytes of changed files per batch (one `chunk` + one `upload` task).
        batch_files: Files per batch at most.
        task_runner: ``thread`` (Koofr sources), ``process`` (local sources, all cores) or
            ``dask`` (a local cluster, or the scheduler at `dask_address`).
        workers: Batches processed at once; also the number of local workers.
        dask_address: Address of a running Dask scheduler (implies ``dask``).
        verify_fraction: Fraction of the snapshot's data read back after the backup.
        create_store: Create the store if there is none yet (first run).
        spool_dir: Local directory for sealed packs awaiting upload; must be shared when
            workers run on several machines.
        allow_partial: Finish Completed even if some paths could not be read.
        chunk_processes: With the ``thread`` runner, chunk a local source in `workers` worker
            processes (threads would share the GIL); Koofr sources always use threads.

    Returns:
        The snapshot id and its statistics.
    """
    logger = get_run_logger()
    spec = store_spec(store)
    run = _Run(source=block_locations.label(source), store=spec.location_label())
    # `koofr` tags go only on tasks that talk to Koofr (see kloset_tasks.spec.koofr_tags).
    tag_both, tag_store = koofr_tags(spec, source), koofr_tags(spec)
    options = BackupOptions(
        tags=list(tags or []),
        excludes=list(exclude or []),
        force_read=force_read,
        batch_bytes=int(batch_bytes),
        batch_files=int(batch_files),
    )
    progress = reporting.Progress(f"Backing up {run.source}")
    try:
        with store_session(spec, "backup", create=create_store):
            run.plan = enumerate_task.with_options(tags=tag_both)(spec, source, options, spool_dir)
            logger.info(
                "planned %d batches: %d of %d files to read (%s), %d unchanged",
                run.plan.batches,
                run.plan.files_to_read,
                run.plan.files,
                reporting.human_bytes(run.plan.bytes_to_read),
                run.plan.files_reused,
            )
            progress.update(0.05, force=True)
            processes = workers if chunk_processes and task_runner == "thread" else 0
            _chunk_and_upload(
                run, spec, source, task_runner, workers, dask_address, processes, progress
            )
            run.commit = commit_snapshot.with_options(tags=tag_store)(spec, run.plan.run_dir)
            progress.update(0.95, force=True)
            run.verification = verify.with_options(tags=tag_store)(
                spec, run.commit.snapshot_id, verify_fraction
            )
    except BaseException as exc:
        if run.plan is not None and run.commit is None:
            # Uploaded batches are indexed and reused by the next run; the rest is redone.
            engine_spool.remove_run(run.plan.run_dir)
        if not run.failures:
            run.failures.append(("(backup)", _one_line(exc)))
        _publish(run, failed=True)
        raise
    progress.update(1.0, force=True)
    run.failures.extend(run.commit.errors)
    problems = [("(verify)", e) for e in run.verification.get("errors", [])]
    run.failures.extend(problems)
    _publish(run, failed=bool(problems) or (bool(run.commit.errors) and not allow_partial))
    snap = run.commit.snapshot_id[:12]
    if problems:
        raise reporting.KlosetFlowError(
            reporting.failure_message(
                f"snapshot {snap} committed but verification failed", problems
            )
        )
    if run.commit.errors and not allow_partial:
        raise reporting.KlosetFlowError(
            reporting.failure_message(
                f"snapshot {snap} committed without some paths", run.commit.errors
            )
        )
    return {
        "snapshot_id": run.commit.snapshot_id,
        "stats": run.commit.stats,
        "errors": len(run.commit.errors),
        "verified": bool(run.verification.get("ok")),
    }


def _chunk_and_upload(
    run: _Run,
    spec: KlosetRepository,
    source: KoofrStorage | str,
    task_runner: RunnerChoice,
    workers: int,
    dask_address: str | None,
    processes: int,
    progress: reporting.Progress,
) -> None:
    """Every batch through `chunk` then `upload`, at most `workers` batches in flight."""
    assert run.plan is not None
    plan = run.plan
    if not plan.batches:
        return
    logger = get_run_logger()
    chunk_t = chunk.with_options(tags=koofr_tags(spec, source))  # reads source, indexes store
    upload_t = upload.with_options(tags=koofr_tags(spec))

    def on_result(batch: int, stage: int, result: Any) -> None:
        if stage == 0:
            run.chunks[batch] = result
            logger.info(
                "batch %d/%d chunked: %d files, %s read, %s new",
                batch + 1,
                plan.batches,
                result.files,
                reporting.human_bytes(result.bytes_read),
                reporting.human_bytes(result.new_bytes),
            )
        else:
            run.uploads[batch] = result
        done = len(run.chunks) + len(run.uploads)
        progress.update(0.05 + 0.85 * done / (2 * plan.batches))

    stages = [
        (
            chunk_t,
            lambda b: {
                "store": spec,
                "source": source,
                "run_dir": plan.run_dir,
                "batch": b,
                "processes": 0 if dask_address else processes,
            },
        ),
        (upload_t, lambda b: {"store": spec, "run_dir": plan.run_dir, "batch": b}),
    ]
    with make_runner(task_runner, workers, dask_address) as runner:
        failures = run_batches(runner, plan.batches, stages, window=workers, on_result=on_result)
    if failures:
        names = ("chunk", "upload")
        run.failures.extend(
            (f"(batch {b + 1}: {names[s]})", _one_line(exc)) for b, s, exc in failures
        )
        raise reporting.KlosetFlowError(
            reporting.failure_message(
                f"backup of {run.source} stopped; the store is consistent and a rerun reuses "
                f"the {len(run.uploads)} uploaded batch(es)",
                run.failures,
            )
        )


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _publish(run: _Run, *, failed: bool) -> None:
    plan, commit = run.plan, run.commit
    stats = commit.stats if commit else {}
    logical = int(stats.get("bytes", plan.bytes_total if plan else 0))
    added = int(stats.get("bytes_added", sum(c.stored_bytes for c in run.chunks.values())))
    bytes_read = int(stats.get("bytes_read", sum(c.bytes_read for c in run.chunks.values())))
    verification = run.verification or {}
    if run.verification is None:
        verified = "not run"
    elif verification.get("ok"):
        verified = f"ok ({verification.get('blobs_read', 0)} blobs read back)"
    else:
        verified = f"{len(verification.get('errors', []))} problem(s)"
    rows = [
        ("Status", "FAILED" if failed else "Completed"),
        ("Snapshot", commit.snapshot_id if commit else "none (nothing committed)"),
        ("Source", run.source),
        ("Store", run.store),
        (
            "Files",
            f"{stats.get('files', plan.files if plan else 0)} "
            f"({plan.files_to_read if plan else 0} read, "
            f"{plan.files_reused if plan else 0} unchanged)",
        ),
        ("Size", reporting.human_bytes(logical)),
        ("Bytes read", reporting.human_bytes(bytes_read)),
        ("Bytes added", reporting.human_bytes(added)),
        ("Dedup ratio", reporting.dedup_ratio(logical, added)),
        ("Duration", f"{time.monotonic() - run.started:.1f} s"),
        ("Errors", len(run.failures)),
        ("Verification", verified),
    ]
    title = f"Kloset backup of {run.source}"
    reporting.publish("backup", title, rows, run.failures)
