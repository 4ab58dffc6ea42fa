"""`backup_flow`: back up a Koofr folder (or any path/URL) into a Kloset store.

The flow only orchestrates, in four steps that are each a small function here: plan
(`enumerate`), the batches (one `backup_batch` task each on the chosen task runner, a bounded
number in flight), commit and verify, and the report. It holds the store's shared lock for the
whole run. All backup logic is the engine's.

A batch task gets its items (paths, sizes, mtimes: data), the store spec and the source, and
puts packs, index and journal straight into the store: it runs on any machine that reaches
both, with no disk shared with the flow. The plan stays on the flow's machine; `commit` reads
the batches' journals from the store. See docs/PREFECT.md, "Run model".
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from prefect import flow, get_run_logger

from blocks import KlosetRepository, KoofrStorage
from blocks import locations as block_locations
from flows import cancel, reporting
from flows.events import BackupEvents
from flows.runners import RunnerChoice, make_runner, run_batches
from kloset.backup import BackupOptions, BatchResult, CommitResult, EnumerateResult
from kloset.backup.journal import RUNS_DIR, batch_of, read_journal
from kloset.backup.options import TASK_BATCH_BYTES, TASK_BATCH_FILES
from kloset.backup.plan import load_batches
from kloset.display import parse_size
from kloset.storescan import list_objects
from kloset.throttle import limited
from kloset_tasks import backup_batch, commit_snapshot, enumerate_task, verify
from kloset_tasks.backup import forget_batches, stop_batches
from kloset_tasks.spec import koofr_tags, open_repo, store_session, store_spec

# A batch must take seconds, not milliseconds: Prefect's per-task cost (~40 ms of state
# changes on a SQLite server) then stays far below 5% of the run (kloset.backup.options).
DEFAULT_BATCH_BYTES = TASK_BATCH_BYTES
DEFAULT_BATCH_FILES = TASK_BATCH_FILES


@dataclass
class _Run:
    """What the flow learned so far; enough to report a failure or a cancel at any point."""

    source: str
    store: str
    title: str
    attempt: int = 1
    plan: EnumerateResult | None = None
    items: list[list[Any]] = field(default_factory=list)  # per batch, as the tasks get them
    batches: dict[int, BatchResult] = field(default_factory=dict)  # the finished ones
    commit: CommitResult | None = None
    verification: dict[str, Any] | None = None
    failures: list[tuple[str, str]] = field(default_factory=list)
    stopped: str | None = None  # why the run stopped early, one line
    started: float = field(default_factory=time.monotonic)

    def finished_batches(self) -> list[BatchResult]:
        """The batches whose data and journal reached the store: what a failed or cancelled
        run really stored, and what the next run adopts instead of reading again."""
        return [self.batches[b] for b in sorted(self.batches)]


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
    exclude_larger_than: str | int | None = None,
    files_from: list[str] | None = None,
    one_file_system: bool = False,
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
    limit_upload: int | None = None,
    limit_download: int | None = None,
) -> dict[str, Any]:
    """Back up `source` into `store` and verify the new snapshot.

    Args:
        source: A Koofr Storage block, or a local path, fsspec URL or ``@NAME[:/sub]``.
        store: A Kloset Repository block, or a store location (passphrase from
            ``KLOSET_PASSPHRASE`` on the worker).
        tags: Tags recorded in the snapshot (retention can keep tagged snapshots).
        exclude: Gitignore-style patterns of paths to leave out.
        exclude_larger_than: Leave out files larger than this (``100M``; K, M, G, T binary).
        files_from: Back up only these paths (relative to the source root) and what they hold.
        one_file_system: Do not descend into other file systems (local sources only).
        force_read: Read every file even if the parent snapshot has it unchanged.
        batch_bytes: Bytes of changed files per batch (one `backup_batch` task).
        batch_files: Files per batch at most.
        task_runner: ``thread`` (Koofr sources), ``process`` (local sources, all cores) or
            ``dask`` (a local cluster, or the scheduler at `dask_address`).
        workers: Batches processed at once; also the number of local workers.
        dask_address: Address of a running Dask scheduler (implies ``dask``).
        verify_fraction: Fraction of the snapshot's data read back after the backup.
        create_store: Create the store if there is none yet (first run).
        spool_dir: Local directory for the run's plan (on the flow's machine; batches never
            need it). Default: inside a local store, else ``KLOSET_SPOOL`` or the user cache.
        allow_partial: Finish Completed even if some paths could not be read.
        chunk_processes: With the ``thread`` runner, chunk a local source in `workers` worker
            processes (threads would share the GIL); Koofr sources always use threads.
        limit_upload: KiB/s for everything sent to a remote store, in every task process.
        limit_download: KiB/s for everything read from a remote source or store.

    Returns:
        The snapshot id and its statistics.
    """
    spec = store_spec(store)
    run = _Run(
        source=block_locations.label(source),
        store=spec.location_label(),
        title=_short_name(source),
        attempt=_attempt(),
    )
    events = BackupEvents(spec, run.source)
    options = BackupOptions(
        tags=list(tags or []),
        excludes=list(exclude or []),
        exclude_larger_than=parse_size(str(exclude_larger_than)) if exclude_larger_than else None,
        files_from=list(files_from) if files_from else None,
        one_file_system=one_file_system,
        force_read=force_read,
        batch_bytes=int(batch_bytes),
        batch_files=int(batch_files),
    )
    progress = reporting.Progress(f"Backing up {run.title}{_attempt_label(run)}")
    try:
        with (
            limited(limit_upload, limit_download),
            store_session(spec, "backup", create=create_store),
        ):
            _plan(run, spec, source, options, spool_dir)
            progress.update(0.05, force=True)
            processes = workers if chunk_processes and task_runner == "thread" else 0
            _back_up_batches(
                run, spec, source, task_runner, workers, dask_address, processes, progress
            )
            _commit_and_verify(run, spec, verify_fraction, events)
    except BaseException as exc:
        _stop(run, exc)
        if cancel.ended_by(exc) != cancel.CANCELLED:  # a cancel is what the user asked for
            events.failed(exc, *events.committed(run.commit))
        raise reporting.with_fix(exc)  # noqa: B904 - chained in with_fix
    progress.update(1.0, force=True)
    try:
        result = _report(run, allow_partial)
    except reporting.KlosetFlowError as exc:
        events.failed(exc, *events.committed(run.commit))
        raise
    events.completed(*events.committed(run.commit), verified=result["verified"])
    return result


def _plan(
    run: _Run,
    spec: KlosetRepository,
    source: KoofrStorage | str,
    options: BackupOptions,
    spool_dir: str | None,
) -> None:
    """List the source and plan its batches (`enumerate`)."""
    run.plan = enumerate_task.with_options(tags=koofr_tags(spec, source))(
        spec, source, options, spool_dir
    )
    get_run_logger().info(
        "planned %d batches: %d of %d files to read (%s), %d unchanged",
        run.plan.batches,
        run.plan.files_to_read,
        run.plan.files,
        reporting.human_bytes(run.plan.bytes_to_read),
        run.plan.files_reused,
    )


def _back_up_batches(
    run: _Run,
    spec: KlosetRepository,
    source: KoofrStorage | str,
    task_runner: RunnerChoice,
    workers: int,
    dask_address: str | None,
    processes: int,
    progress: reporting.Progress,
) -> None:
    """Every batch through `backup_batch`, at most `workers` batches in flight.

    Interrupted (a cancel, a signal), the batches still running are abandoned at once: their
    worker processes are killed, and what they half wrote is temporaries nobody names.
    """
    assert run.plan is not None
    plan = run.plan
    if not plan.batches:
        return
    logger = get_run_logger()
    batch_t = backup_batch.with_options(tags=koofr_tags(spec, source))
    run.items = load_batches(plan.run_dir)

    def on_result(batch: int, _stage: int, result: BatchResult) -> None:
        run.batches[batch] = result
        logger.info(
            "batch %d/%d stored: %d files, %s read, %s new",
            batch + 1,
            plan.batches,
            result.files,
            reporting.human_bytes(result.bytes_read),
            reporting.human_bytes(result.new_bytes),
        )
        progress.update(0.05 + 0.85 * len(run.batches) / plan.batches)

    def params(batch: int) -> dict[str, Any]:
        return {
            "store": spec,
            "source": source,
            "run": plan.run,
            "batch": batch,
            "items": run.items[batch],
            # On Dask the worker is the process; elsewhere local chunking needs processes.
            "processes": 0 if dask_address else processes,
        }

    try:
        with make_runner(task_runner, workers, dask_address) as runner:
            try:
                failures = run_batches(
                    runner, plan.batches, [(batch_t, params)], window=workers, on_result=on_result
                )
            except BaseException:
                stop_batches()  # before the runner waits for them: nobody will commit them
                raise
    finally:
        forget_batches()
        if len(run.batches) < plan.batches:
            _count_stored_batches(run, spec)
    if failures:
        for batch, _stage, exc in failures:
            if batch not in run.batches:  # its journal may have made it to the store
                run.failures.extend(_batch_failures(run, batch, exc))
        run.stopped = f"batch {failures[0][0] + 1}: {_one_line(failures[0][2])}"
        raise reporting.KlosetFlowError(
            reporting.failure_message(
                f"backup of {run.source} stopped; the store is consistent and a rerun reuses "
                f"the {len(run.batches)} stored batch(es)",
                run.failures,
            )
        )


def _count_stored_batches(run: _Run, spec: KlosetRepository) -> None:
    """Add the batches whose journal is in the store although their result never reached the
    flow (cut off by a cancel or a lost worker at their last moment), so a stopped run's
    summary says exactly what the next run adopts. Best effort: the store may be what failed.
    """
    assert run.plan is not None
    try:
        repo = open_repo(spec)
        names = list_objects(repo.storage, f"{RUNS_DIR}/{run.plan.run_id}")
        for obj in names:
            batch = batch_of(obj.name)
            if batch is None or batch in run.batches:
                continue
            doc = read_journal(repo, obj.name)
            stats = doc.get("stats", {})
            run.batches[batch] = BatchResult(
                batch=batch,
                files=len(doc.get("files", [])),
                bytes_read=int(stats.get("bytes_read", 0)),
                chunks=int(stats.get("chunks", 0)),
                new_chunks=int(stats.get("new_chunks", 0)),
                new_bytes=int(stats.get("new_bytes", 0)),
                stored_bytes=int(stats.get("stored_bytes", 0)),
                packs=len(doc.get("packs", [])),
                index=doc.get("index"),
                journal=obj.name,
                errors=[tuple(e) for e in doc.get("errors", [])],
            )
    except Exception as exc:  # noqa: BLE001 - the summary then says what the flow saw
        get_run_logger().warning("cannot list the run's stored batches: %s", _one_line(exc))


def _batch_failures(run: _Run, batch: int, exc: BaseException) -> list[tuple[str, str]]:
    """One failed-paths row per file of a batch that did not reach the store, naming the
    cause: the file the error names gets the error, the others say their batch stopped."""
    cause = _one_line(exc)
    named = str(getattr(exc, "path", "") or "").lstrip("/")
    rows = []
    for item in run.items[batch] if batch < len(run.items) else []:
        path = "/" + str(item[1]).lstrip("/")
        if named and path[1:] == named:
            rows.append((path, cause))
        else:
            rows.append((path, f"not backed up: its batch {batch + 1} stopped: {cause}"))
    return rows or [(f"/{named}" if named else f"(batch {batch + 1})", cause)]


def _commit_and_verify(
    run: _Run, spec: KlosetRepository, verify_fraction: float, events: BackupEvents
) -> None:
    """Write the snapshot (`commit_snapshot`), then read part of it back (`verify`)."""
    assert run.plan is not None
    tags = koofr_tags(spec)
    run.commit = commit_snapshot.with_options(tags=tags)(spec, run.plan.run_dir)
    events.snapshot_created(*events.committed(run.commit))
    run.verification = verify.with_options(tags=tags)(spec, run.commit.snapshot_id, verify_fraction)


def _stop(run: _Run, exc: BaseException) -> None:
    """The run ends early (failure, cancel, termination): tidy up and say what was stored.

    Runs after the lock was released. What finished batches stored (packs, index, journal)
    stays in the store and the next run adopts it; the local run directory (the plan) goes.
    """
    if run.plan is not None and run.commit is None:
        run.plan.discard()
    status = cancel.ended_by(exc)
    run.stopped = run.stopped or (
        "a cancel request" if status == cancel.CANCELLED else _one_line(exc)
    )
    _publish(run, status)
    if status == cancel.CANCELLED:
        cancel.confirm_cancelled(
            f"Cancelled: {_stored_so_far(run)} stored; run the same backup again to resume"
        )


def _report(run: _Run, allow_partial: bool) -> dict[str, Any]:
    """Publish the summary of a committed run; fail it when verification or paths failed."""
    assert run.commit is not None and run.verification is not None
    run.failures.extend(run.commit.errors)
    problems = _verify_problems(run.verification)
    run.failures.extend(problems)
    failed = bool(problems) or (bool(run.commit.errors) and not allow_partial)
    _publish(run, "FAILED" if failed else "Completed")
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


def _verify_problems(report: dict[str, Any]) -> list[tuple[str, str]]:
    """Failed-paths rows for what verify found: the files whose data is damaged, then the
    store-level errors that name no file."""
    errors = list(report.get("errors", []))
    first = errors[0] if errors else "damaged data"
    rows = [
        (str(path), f"damaged in the new snapshot {snap[:12]}: {first}")
        for snap, paths in report.get("affected", {}).items()
        for path in paths
    ]
    return rows + [("(store)", e) for e in errors if not rows]


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _attempt() -> int:
    """Which attempt of its flow run this is (2 after one Retry or one flow-level retry)."""
    try:
        from prefect.runtime import flow_run

        return max(1, int(flow_run.run_count or 1))
    except Exception:  # noqa: BLE001 - outside a flow run there are no attempts
        return 1


def _attempt_label(run: _Run) -> str:
    return f" (attempt {run.attempt})" if run.attempt > 1 else ""


def _short_name(source: KoofrStorage | str) -> str:
    """A short name for titles: the block's name, else the folder's last part (the full
    ``koofr://user@host/...`` label is in the summary's Source row; the UI clips titles)."""
    if isinstance(source, KoofrStorage):
        name = getattr(source, "_block_document_name", None)
        if name:
            return str(name)
        folder = source.base_folder.rstrip("/").rpartition("/")[2]
        return folder or "Koofr root"
    text = str(source).rstrip("/")
    if text.startswith("@"):
        return text
    return text.rpartition("/")[2] or text


def _publish(run: _Run, status: str) -> None:
    """The summary and failed-paths artifacts of this attempt."""
    reporting.publish(
        "backup",
        f"Kloset backup of {run.title}{_attempt_label(run)}",
        [("Status", status), *_summary_rows(run)],
        run.failures,
        description=f"Kloset backup of {run.title}",
        attempt=run.attempt,
    )


def _stored_so_far(run: _Run) -> str:
    """'4 files of 22 to read (96.0 MiB) in 1 of 5 batches': what the finished batches hold."""
    done, plan = run.finished_batches(), run.plan
    files = sum(c.files for c in done)
    if plan is None:
        return f"{files} files"
    return (
        f"{files} files of {plan.files_to_read} to read "
        f"({reporting.human_bytes(plan.bytes_to_read)}) in {len(done)} of {plan.batches} batches"
    )


def _summary_rows(run: _Run) -> list[tuple[str, Any]]:
    """What a run did. A committed run reports its snapshot's stats; a run that stopped early
    reports only what its finished batches stored (the plan is not what happened)."""
    plan, commit = run.plan, run.commit
    rows: list[tuple[str, Any]] = []
    if commit is not None:
        stats = commit.stats
        logical, added = int(stats.get("bytes", 0)), int(stats.get("bytes_added", 0))
        rows += [
            ("Snapshot", commit.snapshot_id),
            ("Source", run.source),
            ("Store", run.store),
            (
                "Files",
                f"{stats.get('files', 0)} ({stats.get('files_read', 0)} read, "
                f"{plan.files_reused if plan else 0} unchanged)",
            ),
            ("Size", reporting.human_bytes(logical)),
            ("Bytes read", reporting.human_bytes(int(stats.get("bytes_read", 0)))),
            ("Bytes added", reporting.human_bytes(added)),
            ("Dedup ratio", reporting.dedup_ratio(logical, added)),
        ]
    else:
        done = run.finished_batches()
        rows += [
            ("Snapshot", "none (nothing committed)"),
            ("Source", run.source),
            ("Store", run.store),
            ("Stored so far", _stored_so_far(run)),
            ("Bytes read", reporting.human_bytes(sum(c.bytes_read for c in done))),
            ("Bytes added", reporting.human_bytes(sum(c.stored_bytes for c in done))),
            ("Next run", "reuses what was stored: run the same backup again to resume"),
        ]
        if run.stopped:
            rows.append(("Stopped by", run.stopped))
    verification = run.verification
    if verification is None:
        verified = "not run"
    elif verification.get("ok"):
        verified = f"ok ({verification.get('blobs_read', 0)} blobs read back)"
    else:
        verified = f"{len(verification.get('errors', []))} problem(s)"
    rows += [
        ("Duration", f"{time.monotonic() - run.started:.1f} s"),
        ("Errors", len(run.failures)),
        ("Verification", verified),
    ]
    if run.attempt > 1:
        rows.append(("Attempt", run.attempt))
    return rows
