"""Choosing where tasks run, and running batches through it with a bounded window.

A flow parameter picks the task runner (``thread``, ``process`` or ``dask``), so a deployment
can scale out without code changes. The flow then submits each batch's tasks to that runner
directly, keeping at most ``window`` batches in flight: that bounds the local spool (sealed
packs wait there between `chunk` and `upload`) and keeps memory flat however big the source.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Sequence
from typing import Any, Literal

from prefect import Task, get_run_logger
from prefect.futures import PrefectFuture
from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner

RunnerChoice = Literal["thread", "process", "dask"]


def make_runner(choice: RunnerChoice, workers: int, dask_address: str | None = None) -> TaskRunner:
    """A fresh, not yet started task runner for `choice`.

    ``thread`` suits Koofr sources (network-bound); ``process`` uses every core for local
    sources (chunking is CPU-bound: FastCDC, BLAKE3, zstd, AES); ``dask`` starts a local
    cluster of `workers` processes, or joins the scheduler at `dask_address`.
    """
    workers = max(1, int(workers))
    if dask_address and choice != "dask":
        choice = "dask"
    if choice == "thread":
        return ThreadPoolTaskRunner(max_workers=workers)
    if choice == "process":
        return ProcessPoolTaskRunner(max_workers=workers)
    if choice == "dask":
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError as exc:
            raise RuntimeError(
                "task_runner='dask' needs prefect-dask: pip install 'prefect-kloset[dask]'"
            ) from exc
        if dask_address:
            return DaskTaskRunner(address=dask_address)
        return DaskTaskRunner(
            cluster_kwargs={"n_workers": workers, "threads_per_worker": 2, "processes": True}
        )
    raise ValueError(f"unknown task_runner {choice!r}: use thread, process or dask")


Stage = tuple[Task[..., Any], Callable[[int], dict[str, Any]]]


def worker_lost(exc: BaseException) -> bool:
    """Whether a task failed because the machine running it went away, not by itself: Dask
    gives up on a task whose workers died (`KilledWorker`) without the task ever raising."""
    try:
        from distributed import KilledWorker
    except ImportError:
        return False
    return isinstance(exc, KilledWorker)


def _rerun_lost(batch: int, future: PrefectFuture[Any], exc: BaseException, attempt: int) -> None:
    """Say in the run's log that a batch runs again, and end the lost task run as Crashed if
    the server saw it start: nobody else will (its worker is gone), and the UI must not show
    it Running forever."""
    logger = get_run_logger()
    logger.warning(
        "batch %d: its worker died (%s); running it again as a new task run (attempt %d)",
        batch + 1,
        type(exc).__name__,
        attempt,
    )
    try:
        from prefect.client.orchestration import get_client
        from prefect.exceptions import ObjectNotFound
        from prefect.states import Crashed

        with get_client(sync_client=True) as client:
            try:
                if client.read_task_run(future.task_run_id).state_type.value != "RUNNING":
                    return
            except ObjectNotFound:
                return  # the attempt died before the server heard of it
            client.set_task_run_state(
                future.task_run_id,
                Crashed(message=f"its worker died ({type(exc).__name__}); run again"),
                force=True,
            )
    except Exception as problem:  # noqa: BLE001 - a stale state in the UI must not stop a run
        logger.warning("cannot mark the lost task run Crashed: %s", problem)


def run_batches(
    runner: TaskRunner,
    nbatches: int,
    stages: Sequence[Stage],
    *,
    window: int,
    on_result: Callable[[int, int, Any], None],
    attempts: int = 3,
) -> list[tuple[int, int, BaseException]]:
    """Run every batch through `stages` in order, at most `window` batches in flight.

    A stage is (task, batch -> parameters). Stage ``k+1`` of a batch is submitted when stage
    ``k`` finished, so no worker ever sits blocked waiting for another task. `on_result` gets
    (batch, stage index, result) as results arrive. A stage whose worker died runs again as a
    new task run, up to `attempts` times in all (task retries cannot help: they run on the
    worker that died). After the first failure nothing new is started; what is running is
    allowed to finish, and every failure is returned as (batch, stage, exception).
    """
    done_q: queue.Queue[PrefectFuture[Any]] = queue.Queue()
    inflight: dict[PrefectFuture[Any], tuple[int, int]] = {}
    failures: list[tuple[int, int, BaseException]] = []
    runs: dict[tuple[int, int], int] = {}
    next_batch = 0

    def submit(batch: int, stage: int) -> None:
        runs[batch, stage] = runs.get((batch, stage), 0) + 1
        task, params = stages[stage]
        fut = runner.submit(task, params(batch))
        inflight[fut] = (batch, stage)
        fut.add_done_callback(done_q.put)

    while inflight or (next_batch < nbatches and not failures):
        while not failures and next_batch < nbatches and len(inflight) < max(1, window):
            submit(next_batch, 0)
            next_batch += 1
        fut = done_q.get()
        batch, stage = inflight.pop(fut)
        try:
            result = fut.result()
        except BaseException as exc:  # noqa: BLE001 - reported to the flow, which re-raises
            if worker_lost(exc) and runs[batch, stage] < attempts and not failures:
                _rerun_lost(batch, fut, exc, runs[batch, stage] + 1)
                submit(batch, stage)
                continue
            failures.append((batch, stage, exc))
            continue
        on_result(batch, stage, result)
        if stage + 1 < len(stages) and not failures:
            submit(batch, stage + 1)
    return failures
