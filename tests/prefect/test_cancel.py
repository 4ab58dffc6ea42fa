"""Cancelling a backup through a real `prefect server`, and a flow-run process that dies.

The nightly-style deployment runs on the session's process worker, so the cancel takes the
path a user's does: `prefect flow-run cancel` → the server marks the run Cancelling → the
worker SIGTERMs the flow-run process (its process group) → the flow cleans up and exits → the
worker marks the run Cancelled.

The source is a local tree (its batches run in worker processes) and the store is a folder on
the Koofr emulator whose uploads each take 0.5 s: slow enough that the run is reliably caught
mid-backup however fast the machine, and still seconds long.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from pydantic import SecretStr

from tests.prefect.big_tree import make_tree
from tests.prefect.conftest import PASSPHRASE, WORK_POOL
from tests.prefect.feed import wait_for
from tests.prefect.processes import Process

MIB = 1024 * 1024
TREE_BYTES = 96 * MIB
BATCH_BYTES = 8 * MIB


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tree(tmp_path_factory.mktemp("cancel") / "src", TREE_BYTES, seed="cancel")


@pytest.fixture(scope="module")
def deployment(prefect_harness: None, process_worker: Process) -> Iterator[Callable[..., UUID]]:
    """Factory: run `backup_flow` as a deployment on the process worker; the flow run's id."""
    from prefect.deployments import run_deployment
    from prefect.deployments.runner import EntrypointType

    from flows import backup_flow

    name = "cancel-tests"
    backup_flow.to_deployment(
        name=name, entrypoint_type=EntrypointType.MODULE_PATH, work_pool_name=WORK_POOL
    ).apply()

    def run(**parameters: Any) -> UUID:
        flow_run = run_deployment(f"kloset-backup/{name}", parameters=parameters, timeout=0)
        return flow_run.id  # type: ignore[no-any-return]

    yield run


def _state(flow_run_id: UUID) -> Any:
    from prefect.client.orchestration import get_client

    async def read() -> Any:
        async with get_client() as client:
            return (await client.read_flow_run(flow_run_id)).state

    return asyncio.run(read())


def _cancel(flow_run_id: UUID) -> None:
    """What `prefect flow-run cancel` does: ask the server to move the run to Cancelling."""
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelling

    async def cancel() -> None:
        async with get_client() as client:
            result = await client.set_flow_run_state(flow_run_id, Cancelling())
            assert result.status.value == "ACCEPT", result

    asyncio.run(cancel())


def run_processes(flow_run_id: UUID) -> dict[int, str]:
    """{pid: command line} of every live process whose environment names this flow run: the
    flow-run process and everything it started (batch workers inherit its environment). Not
    the hook runner the Prefect worker itself starts once the run ended (same environment)."""
    needle = f"PREFECT__FLOW_RUN_ID={flow_run_id}".encode()
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                if needle not in fh.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
            if "_workspace_runtime_bootstrap.py hook" not in cmdline:
                found[int(entry)] = cmdline
        except OSError:  # gone meanwhile, or a zombie
            continue
    return found


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rpartition(")")[2].split()[1])


def _pgrep(pattern: str) -> list[str]:
    done = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True, check=False)
    return [line for line in done.stdout.splitlines() if str(os.getpid()) != line.split()[0]]


def _summary(flow_run_id: UUID) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async def read() -> list[Any]:
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
                )
            )

    return "\n".join(a.data for a in asyncio.run(read()) if a.type == "markdown")


@pytest.fixture
def slow_store(emulator: Any, koofr_folder: Any) -> Iterator[tuple[Any, dict[str, Any]]]:
    """A Kloset store on a Koofr folder whose uploads are slow, and a reference to it as a
    saved block (how deployments pass stores)."""
    from blocks import KlosetRepository
    from koofr_emulator import FaultRule

    folder = koofr_folder(f"store{os.getpid()}")  # unique on the machine: `pgrep -f` finds it
    block = KlosetRepository(location=folder, passphrase=SecretStr(PASSPHRASE))
    block.create_repository()
    name = folder.base_folder.lower().replace("_", "-")
    block.save(name, overwrite=True)
    rule = emulator.add_fault(
        FaultRule(
            kind="latency", seconds=0.5, rate=1.0, route="files/put", path_regex=folder.base_folder
        )
    )
    try:
        yield block, {"$ref": {"block_document_slug": f"kloset-repository/{name}"}}
    finally:
        emulator.remove_fault(rule)


def _first_batch_stored(store: Any, flow_run_id: UUID) -> bool:
    """Whether a batch of the running flow finished: its journal (written last) is stored."""
    fs, root = store.location.fs_and_root()
    fs.invalidate_cache()
    journals = fs.find(f"{root}/runs") if fs.exists(f"{root}/runs") else []
    return any("journal-" in str(j) for j in journals) and _state(flow_run_id).is_running()


def test_cancel_mid_backup_ends_cancelled_and_the_next_run_resumes(
    deployment: Callable[..., UUID],
    tree: Path,
    slow_store: tuple[Any, dict[str, Any]],
    emulator: Any,
) -> None:
    from flows import backup_flow
    from kloset.check import check_store
    from kloset.locks import read_locks

    store, ref = slow_store
    flow_run_id = deployment(
        source=str(tree), store=ref, batch_bytes=BATCH_BYTES, workers=2, verify_fraction=0
    )
    wait_for(
        lambda: _first_batch_stored(store, flow_run_id), "the first batch in the store", 120, 0.1
    )
    busy = run_processes(flow_run_id)
    assert len(busy) >= 2, f"no batch workers running: {busy}"

    started = time.monotonic()
    _cancel(flow_run_id)
    wait_for(lambda: not run_processes(flow_run_id), "the run's processes to exit", 10, 0.1)
    exited = time.monotonic() - started
    final = wait_for(lambda: (s := _state(flow_run_id)).is_final() and s, "the run to end", 30, 0.1)
    took = time.monotonic() - started
    assert final.is_cancelled(), final
    print(f"cancel: the run's processes exited after {exited:.1f} s, Cancelled after {took:.1f} s")
    # Most of it is Prefect's: noticing the request, its 3 s between checks that the process
    # exited, and the subprocess it starts to look for on_cancellation hooks.
    assert took < 10, f"cancelled after {took:.1f} s (the processes exited after {exited:.1f} s)"
    assert not _pgrep(store.location.base_folder)

    # The lock is released, the store is consistent, and the summary says what was stored.
    repo = store.open_repository()
    assert read_locks(repo) == []
    report = check_store(repo)
    assert report.ok, report.errors
    summary = _summary(flow_run_id)
    assert "| **Status** | CANCELLED |" in summary, summary
    stored_line = next(line for line in summary.splitlines() if "Stored so far" in line)
    stored_files = int(stored_line.split("|")[2].split()[0])
    assert stored_files > 0, stored_line

    # The next run resumes: what the cancelled run stored is neither lost nor stored again.
    stored_before = sum(loc.raw_length for _, loc in repo.index.items())
    assert stored_before > 0
    emulator.clear_faults()
    again = backup_flow(
        str(tree), store, batch_bytes=BATCH_BYTES, workers=2, verify_fraction=0,
        return_state=True,
    )  # fmt: skip
    assert again.is_completed(), again.message
    stats = again.result()["stats"]
    # The files the summary said were stored are adopted, not read again; the rest are read,
    # and only what the store does not hold yet is stored.
    assert stats["files_read"] == len(list(tree.rglob("*.bin"))) - stored_files, stats
    assert stats["bytes_new"] <= TREE_BYTES - stored_before, stats


def test_a_killed_flow_run_process_takes_its_batch_workers_along(
    deployment: Callable[..., UUID], tree: Path, slow_store: tuple[Any, dict[str, Any]]
) -> None:
    _store, ref = slow_store
    flow_run_id = deployment(
        source=str(tree), store=ref, batch_bytes=BATCH_BYTES, workers=2, verify_fraction=0
    )
    wait_for(
        lambda: len(run_processes(flow_run_id)) >= 2 and _state(flow_run_id).is_running(),
        "batch workers",
        120,
        0.1,
    )
    procs = run_processes(flow_run_id)
    # The flow-run process is the one whose parent (the Prefect worker) is not of the run.
    (flow_pid,) = [pid for pid in procs if _parent(pid) not in procs]
    os.kill(flow_pid, signal.SIGKILL)
    try:
        wait_for(lambda: not run_processes(flow_run_id), "the batch workers to exit", 2, 0.1)
    finally:
        for pid in run_processes(flow_run_id):  # a failed test leaves nothing behind
            os.kill(pid, signal.SIGKILL)
    final = wait_for(lambda: (s := _state(flow_run_id)).is_final() and s, "the run to end", 30, 0.1)
    assert final.is_crashed(), final


def test_stopped_batches_end_between_two_files(
    local_source: Path, store_block: Any, tmp_path: Path
) -> None:
    """A cancelled run's batches running in the flow's threads (a Koofr source's) stop at the
    next file instead of finishing: `stop_batches` sets the engine's `stop` for this run."""
    from blocks import locations
    from kloset.backup import BackupOptions, enumerate_source, load_batches
    from kloset.backup.batch import BatchStopped
    from kloset_tasks.backup import backup_batch, forget_batches, stop_batches

    store_block.create_repository()
    repo = store_block.open_repository()
    source = locations.open_source(str(local_source))
    plan = enumerate_source(repo, source, str(tmp_path / "spool"), BackupOptions())
    (items,) = load_batches(plan.run_dir)
    try:
        stop_batches()
        with pytest.raises(BatchStopped):
            backup_batch.fn(store_block, str(local_source), plan.run, 0, items)
    finally:
        forget_batches()
    done = backup_batch.fn(store_block, str(local_source), plan.run, 0, items)
    assert done.files == len(items) > 0
