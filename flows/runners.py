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

from prefect import Task
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


def run_batches(
    runner: TaskRunner,
    nbatches: int,
    stages: Sequence[Stage],
    *,
    window: int,
    on_result: Callable[[int, int, Any], None],
) -> list[tuple[int, int, BaseException]]:
    """Run every batch through `stages` in order, at most `window` batches in flight.

    A stage is (task, batch -> parameters). Stage ``k+1`` of a batch is submitted when stage
    ``k`` finished, so no worker ever sits blocked waiting for another task. `on_result` gets
    (batch, stage index, result) as results arrive. After the first failure nothing new is
    started; what is running is allowed to finish (a half-written spool is never abandoned
    mid-write), and every failure is returned as (batch, stage, exception).
    """
    done_q: queue.Queue[PrefectFuture[Any]] = queue.Queue()
    inflight: dict[PrefectFuture[Any], tuple[int, int]] = {}
    failures: list[tuple[int, int, BaseException]] = []
    next_batch = 0

    def submit(batch: int, stage: int) -> None:
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
            failures.append((batch, stage, exc))
            continue
        on_result(batch, stage, result)
        if stage + 1 < len(stages) and not failures:
            submit(batch, stage + 1)
    return failures
