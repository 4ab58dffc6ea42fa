"""`restore_flow`: restore a file, a folder or everything from a snapshot, then verify it.

Targets are a `KoofrStorage` block or a plain path / fsspec URL / ``@NAME[:/sub]``, so the
same flow restores to local disk, back to Koofr, or to another provider. The flow holds the
store's shared lock (if it can write one: a read-only store is still restorable), runs
`plan_restore`, the `restore_batch` tasks, `finish_restore` and `verify_restore`, and reports.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from prefect import flow, get_run_logger

from blocks import KlosetRepository, KoofrStorage
from blocks import locations as block_locations
from flows import events, reporting
from flows.runners import RunnerChoice, make_runner, run_batches
from kloset.restore import RestoreBatchResult, RestorePlan
from kloset.restore.verify import RestoreVerifyResult
from kloset.throttle import limited
from kloset_tasks import finish_restore, plan_restore, restore_batch, verify_restore
from kloset_tasks.spec import koofr_tags, store_session, store_spec

MIB = 1024 * 1024


@dataclass
class _Restore:
    """What the flow learned so far; enough to report a failure at any point."""

    target: str
    started: float = field(default_factory=time.monotonic)
    plan: RestorePlan | None = None
    results: dict[int, RestoreBatchResult] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)
    links: int = 0
    checked: RestoreVerifyResult | None = None

    def total(self, name: str) -> int:
        return sum(getattr(r, name) for r in self.results.values())


@flow(
    name="kloset-restore",
    description="Restore a path of a Kloset snapshot to local disk, Koofr or any fsspec target.",
    validate_parameters=True,
)
def restore_flow(
    store: KlosetRepository | str,
    target: KoofrStorage | str,
    snapshot: str = "latest",
    path: str = "/",
    overwrite: bool = False,
    verify: bool = True,
    task_runner: RunnerChoice = "thread",
    workers: int = 4,
    dask_address: str | None = None,
    batch_bytes: int = 256 * MIB,
    batch_files: int = 4096,
    spool_dir: str | None = None,
    allow_partial: bool = False,
    limit_upload: int | None = None,
    limit_download: int | None = None,
) -> dict[str, Any]:
    """Restore `path` of `snapshot` from `store` into `target`.

    Args:
        store: A Kloset Repository block, or a store location.
        target: A Koofr Storage block, or a local path, fsspec URL or ``@NAME[:/sub]``.
        snapshot: ``latest`` or a snapshot id prefix (4+ hex digits).
        path: Path inside the snapshot (``/`` for everything).
        overwrite: Replace files that exist in the target and differ.
        verify: Read back every written file and compare MD5s.
        task_runner: ``thread``, ``process`` or ``dask``.
        workers: Batches restored at once.
        dask_address: Address of a running Dask scheduler (implies ``dask``).
        batch_bytes: Bytes per `restore_batch` task.
        batch_files: Files per `restore_batch` task at most.
        spool_dir: Local directory for the restore plan (shared, for workers on many hosts).
        allow_partial: Finish Completed even if some paths could not be restored.
        limit_upload: KiB/s for everything written to a remote target, in every task process.
        limit_download: KiB/s for everything read from a remote store.

    Returns:
        Counts of what was written, skipped and verified.
    """
    spec = store_spec(store)
    run = _Restore(target=block_locations.label(target))
    progress = reporting.Progress(f"Restoring {path} to {run.target}")
    try:
        with limited(limit_upload, limit_download), store_session(spec, "restore", required=False):
            run.plan = _plan(spec, snapshot, path, target, spool_dir, batch_bytes, batch_files)
            run.failures.extend(run.plan.errors)
            progress.update(0.05, force=True)
            _restore_batches(
                run, spec, target, overwrite, task_runner, workers, dask_address, progress
            )
            _finish(run, target, verify)
    except BaseException as exc:
        run.failures.append(("(restore)", f"{type(exc).__name__}: {exc}"))
        _publish(run, failed=True)
        raise reporting.with_fix(exc)  # noqa: B904 - chained in with_fix
    finally:
        if run.plan is not None:
            run.plan.discard()
    progress.update(1.0, force=True)
    failed = bool(run.failures) and not allow_partial
    _publish(run, failed=failed)
    if failed:
        raise reporting.KlosetFlowError(
            reporting.failure_message(f"restore of {path} to {run.target}", run.failures)
        )
    counts = {
        "files_written": run.total("files_written"),
        "files_skipped": run.total("files_skipped"),
        "bytes_written": run.total("bytes_written"),
        "symlinks": run.links,
        "files_verified": run.checked.files_checked if run.checked else 0,
        "errors": len(run.failures),
    }
    if run.plan is not None:
        events.restore_completed(spec, run.plan.snapshot, run.target, counts)
    return {"snapshot": run.plan.snapshot if run.plan else None, **counts}


def _plan(
    spec: KlosetRepository,
    snapshot: str,
    path: str,
    target: KoofrStorage | str,
    spool_dir: str | None,
    batch_bytes: int,
    batch_files: int,
) -> RestorePlan:
    plan = plan_restore.with_options(tags=koofr_tags(spec, target))(
        spec, snapshot, path, target, spool_dir, batch_bytes, batch_files
    )
    get_run_logger().info(
        "restoring %d files (%s) in %d batches",
        plan.files,
        reporting.human_bytes(plan.bytes),
        plan.batches,
    )
    return plan


def _restore_batches(
    run: _Restore,
    spec: KlosetRepository,
    target: KoofrStorage | str,
    overwrite: bool,
    task_runner: RunnerChoice,
    workers: int,
    dask_address: str | None,
    progress: reporting.Progress,
) -> None:
    """Every batch through `restore_batch`, at most `workers` in flight. A batch that failed
    for good leaves its files missing (reported); the others are still finished."""
    assert run.plan is not None
    run_dir, nbatches = run.plan.run_dir, run.plan.batches

    def on_result(batch: int, _stage: int, result: RestoreBatchResult) -> None:
        run.results[batch] = result
        progress.update(0.05 + 0.8 * len(run.results) / max(1, nbatches))

    stage = (
        restore_batch.with_options(tags=koofr_tags(spec, target)),
        lambda b: {
            "store": spec,
            "run_dir": run_dir,
            "batch": b,
            "target": target,
            "overwrite": overwrite,
        },
    )
    with make_runner(task_runner, workers, dask_address) as runner:
        crashed = run_batches(runner, nbatches, [stage], window=workers, on_result=on_result)
    run.failures.extend((f"(batch {b + 1})", f"{type(e).__name__}: {e}") for b, _, e in crashed)
    for res in run.results.values():
        run.failures.extend(res.errors)


def _finish(run: _Restore, target: KoofrStorage | str, verify: bool) -> None:
    """Symlinks and directory metadata, then the read-back; only the target is touched."""
    assert run.plan is not None
    tags = koofr_tags(target)
    run.links, link_errors = finish_restore.with_options(tags=tags)(run.plan.run_dir, target)
    run.failures.extend(link_errors)
    if verify:
        run.checked = verify_restore.with_options(tags=tags)(run.plan.run_dir, target)
        run.failures.extend(run.checked.errors)


def _publish(run: _Restore, *, failed: bool) -> None:
    plan, checked = run.plan, run.checked
    verified = "not run"
    if checked is not None:
        bad = len(checked.errors)
        outcome = f", {bad} mismatched" if bad else ", all match"
        verified = f"{checked.files_checked} files read back{outcome}"
    rows = [
        ("Status", "FAILED" if failed else "Completed"),
        ("Snapshot", plan.snapshot if plan else "not resolved"),
        ("Path", plan.path if plan else ""),
        ("Target", run.target),
        (
            "Files",
            f"{run.total('files_written')} written, {run.total('files_skipped')} already there"
            + (f" (of {plan.files})" if plan else ""),
        ),
        ("Bytes written", reporting.human_bytes(run.total("bytes_written"))),
        ("Symlinks", run.links),
        ("Duration", f"{time.monotonic() - run.started:.1f} s"),
        ("Errors", len(run.failures)),
        ("Verification", verified),
    ]
    reporting.publish("restore", f"Kloset restore to {run.target}", rows, run.failures)
