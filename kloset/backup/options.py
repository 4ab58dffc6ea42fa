"""Batch and worker defaults: the one place the CLI, the Prefect tasks and the flows read them.

A batch is the unit of work a worker (a process of the CLI, a Prefect task, a Dask worker)
takes at once. In-process runs (the CLI) use small batches so every core stays busy to the
end; a Prefect task costs ~40 ms of state changes on the server, so flows use batches that
take seconds and keep that overhead far below 5% of the run.
"""

from __future__ import annotations

MIB = 1024 * 1024

BATCH_BYTES = 64 * MIB  # changed bytes per batch, in-process runs (CLI, UI)
BATCH_FILES = 4000  # changed files per batch at most, in-process runs
TASK_BATCH_BYTES = 256 * MIB  # per batch when each batch is one Prefect task
TASK_BATCH_FILES = 20_000
REMOTE_WORKERS = 8  # batches at once from a remote source: they wait on the network
FLOW_WORKERS = 4  # batches in flight in a flow run


def default_workers(local_source: bool) -> int:
    """Batches run at once: one per CPU for a local source (chunking is CPU-bound), more for a
    remote one (reads wait on the network)."""
    from kloset.workers import cpu_count  # (the CLI's start-up imports no worker machinery)

    return cpu_count() if local_source else REMOTE_WORKERS
