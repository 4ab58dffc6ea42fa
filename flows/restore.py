"""`restore_flow`: restore a file, a folder or everything from a snapshot, then verify it.

Targets are a `KoofrStorage` block or a plain path / fsspec URL / ``@NAME[:/sub]``, so the
same flow restores to local disk, back to Koofr, or to another provider. The flow holds the
store's shared lock (if it can write one: a read-only store is still restorable), runs
`plan_restore`, the `restore_batch` tasks, `finish_restore` and `verify_restore`, and reports.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import flow, get_run_logger

from blocks import KlosetRepository, KoofrStorage
from blocks import locations as block_locations
from flows import reporting
from flows.runners import RunnerChoice, make_runner, run_batches
from kloset.backup import spool as engine_spool
from kloset.restore import RestoreBatchResult, RestorePlan
from kloset_tasks import finish_restore, plan_restore, restore_batch, verify_restore
from kloset_tasks.spec import koofr_tags, store_session, store_spec

MIB = 1024 * 1024


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

    Returns:
        Counts of what was written, skipped and verified.
    """
    logger = get_run_logger()
    spec = store_spec(store)
    target_label = block_locations.label(target)
    tag = koofr_tags(spec, target)
    started = time.monotonic()
    progress = reporting.Progress(f"Restoring {path} to {target_label}")
    plan: RestorePlan | None = None
    results: dict[int, RestoreBatchResult] = {}
    failures: list[tuple[str, str]] = []
    links = 0
    checked: Any = None
    try:
        with store_session(spec, "restore", required=False):
            plan = plan_restore.with_options(tags=tag)(
                spec, snapshot, path, target, spool_dir, batch_bytes, batch_files
            )
            failures.extend(plan.errors)
            logger.info(
                "restoring %d files (%s) in %d batches",
                plan.files,
                reporting.human_bytes(plan.bytes),
                plan.batches,
            )
            progress.update(0.05, force=True)
            run_dir, nbatches = plan.run_dir, plan.batches

            def on_result(batch: int, _stage: int, result: RestoreBatchResult) -> None:
                results[batch] = result
                progress.update(0.05 + 0.8 * len(results) / max(1, nbatches))

            stage = (
                restore_batch.with_options(tags=tag),
                lambda b: {
                    "store": spec,
                    "run_dir": run_dir,
                    "batch": b,
                    "target": target,
                    "overwrite": overwrite,
                },
            )
            with make_runner(task_runner, workers, dask_address) as runner:
                crashed = run_batches(
                    runner, nbatches, [stage], window=workers, on_result=on_result
                )
            # A batch that failed for good: its files are missing, the rest is still finished.
            failures.extend((f"(batch {b + 1})", f"{type(e).__name__}: {e}") for b, _, e in crashed)
            for res in results.values():
                failures.extend(res.errors)
            # Only the target is touched from here on.
            links, link_errors = finish_restore.with_options(tags=koofr_tags(target))(
                run_dir, target
            )
            failures.extend(link_errors)
            if verify:
                checked = verify_restore.with_options(tags=koofr_tags(target))(run_dir, target)
                failures.extend(checked.errors)
    except BaseException as exc:
        failures.append(("(restore)", f"{type(exc).__name__}: {exc}"))
        _publish(plan, results, links, checked, failures, target_label, started, failed=True)
        raise
    finally:
        if plan is not None:
            engine_spool.remove_run(plan.run_dir)
    progress.update(1.0, force=True)
    failed = bool(failures) and not allow_partial
    _publish(plan, results, links, checked, failures, target_label, started, failed=failed)
    if failed:
        raise reporting.KlosetFlowError(
            reporting.failure_message(f"restore of {path} to {target_label}", failures)
        )
    return {
        "snapshot": plan.snapshot if plan else None,
        "files_written": sum(r.files_written for r in results.values()),
        "files_skipped": sum(r.files_skipped for r in results.values()),
        "bytes_written": sum(r.bytes_written for r in results.values()),
        "symlinks": links,
        "files_verified": checked.files_checked if checked else 0,
        "errors": len(failures),
    }


def _publish(
    plan: RestorePlan | None,
    results: dict[int, RestoreBatchResult],
    links: int,
    checked: Any,
    failures: list[tuple[str, str]],
    target: str,
    started: float,
    *,
    failed: bool,
) -> None:
    verified = "not run"
    if checked is not None:
        bad = len(checked.errors)
        outcome = f", {bad} mismatched" if bad else ", all match"
        verified = f"{checked.files_checked} files read back{outcome}"
    rows = [
        ("Status", "FAILED" if failed else "Completed"),
        ("Snapshot", plan.snapshot if plan else "not resolved"),
        ("Path", plan.path if plan else ""),
        ("Target", target),
        (
            "Files",
            f"{sum(r.files_written for r in results.values())} written, "
            f"{sum(r.files_skipped for r in results.values())} already there"
            + (f" (of {plan.files})" if plan else ""),
        ),
        ("Bytes written", reporting.human_bytes(sum(r.bytes_written for r in results.values()))),
        ("Symlinks", links),
        ("Duration", f"{time.monotonic() - started:.1f} s"),
        ("Errors", len(failures)),
        ("Verification", verified),
    ]
    reporting.publish("restore", f"Kloset restore to {target}", rows, failures)
