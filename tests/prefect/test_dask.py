"""`backup_flow` on a real Dask cluster that shares no disk with the flow.

One `dask scheduler` and two `dask worker` processes (module-scoped, each in its own working
directory and TMPDIR, started and killed by PID) run the batch tasks. The tree is 200 MiB of
cheap pseudo-random data (BLAKE3's output stream), generated once for the module.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from blocks import KlosetRepository
from flows import backup_flow, restore_flow
from flows.runners import make_runner
from kloset.check import check_store
from tests.prefect.big_tree import fingerprint, make_tree
from tests.prefect.conftest import PASSPHRASE, PrefectServer
from tests.prefect.dask_cluster import DaskCluster

pytestmark = pytest.mark.usefixtures("prefect_harness")
MIB = 1024 * 1024
TREE_BYTES = 200 * MIB
BATCH_BYTES = 24 * MIB
BATCH_TASK = "backup_batch"  # the task of one batch (Dask keys and task runs start so)


@pytest.fixture(scope="module")
def cluster(
    prefect_server: PrefectServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DaskCluster]:
    pytest.importorskip("prefect_dask")
    # The scheduler gives up on a task at its first lost worker, so the rerun of a batch whose
    # worker died is the flow's (a new task run), not Dask's silent one inside the old run.
    env = {**prefect_server.env, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"}
    dask = DaskCluster(tmp_path_factory.mktemp("dask"), env)
    try:
        yield dask.start(2)
    finally:
        dask.stop()


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tree(tmp_path_factory.mktemp("tree") / "src", TREE_BYTES)


def _restored_exactly(store: KlosetRepository, snapshot: str, tree: Path, out: Path) -> None:
    done = store.restore(snapshot, "/", str(out))
    assert done["errors"] == [], done["errors"]
    assert fingerprint(out) == fingerprint(tree)


def _back_up(cluster: DaskCluster, tree: Path, store: KlosetRepository) -> Any:
    """`backup_flow` of `tree` with its batches on `cluster`; the final state."""
    return backup_flow(
        str(tree),
        store,
        create_store=True,
        batch_bytes=BATCH_BYTES,
        workers=2,
        dask_address=cluster.address,
        verify_fraction=0,
        return_state=True,
    )


def _task_runs(state: Any) -> list[Any]:
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async def read() -> list[Any]:
        async with get_client() as client:
            return await client.read_task_runs(
                flow_run_filter=FlowRunFilter(
                    id=FlowRunFilterId(any_=[state.state_details.flow_run_id])
                )
            )

    return asyncio.run(read())


def _logs(state: Any) -> list[str]:
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId, LogFilterLevel
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all()
    flow_run = LogFilterFlowRunId(any_=[state.state_details.flow_run_id])

    async def read() -> list[str]:
        async with get_client() as client:
            logs = await client.read_logs(
                LogFilter(flow_run_id=flow_run, level=LogFilterLevel(ge_=30))  # warnings
            )
            return [log.message for log in logs]

    return asyncio.run(read())


def _dask_ran_batches(cluster: DaskCluster) -> dict[str, int]:
    """{worker name: tasks it ran} as the scheduler counts them."""
    with cluster.client() as client:
        info = client.run(lambda dask_worker: dask_worker.state.executed_count)
        names = {a: w["name"] for a, w in client.scheduler_info()["workers"].items()}
    return {names[a]: n for a, n in info.items()}


def test_backup_into_local_and_koofr_stores_on_a_dask_cluster(
    cluster: DaskCluster, tree: Path, koofr_folder: Any, tmp_path: Path
) -> None:
    stores = {
        "local": KlosetRepository(
            location=str(tmp_path / "store"), passphrase=SecretStr(PASSPHRASE)
        ),
        "koofr": KlosetRepository(location=koofr_folder("store"), passphrase=SecretStr(PASSPHRASE)),
    }
    for name, store in stores.items():
        before = _dask_ran_batches(cluster)
        state = _back_up(cluster, tree, store)
        assert state.is_completed(), f"{name}: {state.message}"
        after = _dask_ran_batches(cluster)
        # Both workers ran batches: the flow's process ran none.
        assert all(after[w] > before.get(w, 0) for w in after), (name, before, after)
        result = state.result()
        assert result["stats"]["files"] == len(list(tree.rglob("*.bin")))

    _restored_exactly(stores["local"], "latest", tree, tmp_path / "out-local")
    # The Koofr store's snapshot is restored on the cluster (its workers write the target).
    out = tmp_path / "out-koofr"
    before = _dask_ran_batches(cluster)
    restored = restore_flow(
        stores["koofr"], str(out), dask_address=cluster.address, workers=2, return_state=True
    )
    assert restored.is_completed(), restored.message
    assert sum(_dask_ran_batches(cluster).values()) > sum(before.values())
    assert fingerprint(out) == fingerprint(tree)


def test_a_worker_killed_mid_batch_is_replaced_and_the_snapshot_is_exact(
    cluster: DaskCluster, tree: Path, tmp_path: Path
) -> None:
    store = KlosetRepository(location=str(tmp_path / "store"), passphrase=SecretStr(PASSPHRASE))
    victim: dict[str, Any] = {}

    def kill_one_mid_batch() -> None:
        """SIGKILL a worker 0.3 s into a batch task, once both have finished one (before that,
        a task's first seconds are the worker importing Prefect). Bounded wait."""
        deadline = time.monotonic() + 60
        warm = _dask_ran_batches(cluster)
        with cluster.client() as client:
            while time.monotonic() < deadline and not victim:
                ran = _dask_ran_batches(cluster)
                busy = {a: ks for a, ks in client.processing().items() if ks}
                names = {a: w["name"] for a, w in client.scheduler_info()["workers"].items()}
                if all(ran.get(w, 0) > n for w, n in warm.items()):
                    for addr, keys in busy.items():
                        if any(str(k).startswith(BATCH_TASK) for k in keys):
                            time.sleep(0.3)
                            victim["name"] = names[addr]
                            cluster.kill_worker(names[addr], signal.SIGKILL)
                            return
                time.sleep(0.05)

    killer = threading.Thread(target=kill_one_mid_batch, daemon=True)
    killer.start()
    try:
        state = _back_up(cluster, tree, store)
    finally:
        killer.join(60)
        survivor = cluster.start_worker()  # the module's cluster has two workers again
    assert victim, "no worker was seen running a batch"
    assert state.is_completed(), state.message
    # The lost batch ran again as a new task run (on the other worker: the only one left
    # until the flow ended); no task run is left looking Running.
    logs = _logs(state)
    assert any("its worker died" in m and "attempt 2" in m for m in logs), logs
    runs = [r for r in _task_runs(state) if r.name.startswith(BATCH_TASK)]
    assert not [r for r in runs if r.state.is_running()], runs
    result = state.result()
    _restored_exactly(store, result["snapshot_id"], tree, tmp_path / "out")
    assert check_store(store.open_repository()).ok
    cluster.wait_for_workers(2)
    assert survivor in cluster.workers


def test_runner_choice() -> None:
    from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    assert isinstance(make_runner("thread", 3), ThreadPoolTaskRunner)
    assert isinstance(make_runner("process", 2), ProcessPoolTaskRunner)
    assert isinstance(make_runner("dask", 2), DaskTaskRunner)
    # An address alone is enough to mean Dask.
    assert isinstance(make_runner("thread", 2, "tcp://127.0.0.1:8786"), DaskTaskRunner)
    with pytest.raises(ValueError, match="unknown task_runner"):
        make_runner("fibers", 2)  # type: ignore[arg-type]
