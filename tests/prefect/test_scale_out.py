"""The Dask path: backup and restore flows on a 2-worker `LocalCluster`.

The workers are threads of this process (``processes=False``): spawned worker processes would
each import Prefect (~2 s) and could not see the test harness's in-process API settings. Real
deployments run worker processes or remote workers (docs/PREFECT.md); the flow code is the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from blocks import KlosetRepository
from flows import backup_flow, restore_flow
from flows.runners import make_runner
from kloset.check import check_store
from tests.prefect.conftest import koofr_files, tree_files

pytestmark = pytest.mark.usefixtures("prefect_harness")
MIB = 1024 * 1024


def test_backup_and_restore_on_a_two_worker_dask_cluster(
    koofr_folder: Any, store_block: KlosetRepository, tmp_path: Path, koofr_fs: Any
) -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        source = koofr_folder("Corpus", fresh=False)
        state = backup_flow(
            source,
            store_block,
            create_store=True,
            batch_bytes=1 * MIB,
            workers=2,
            dask_address=cluster.scheduler_address,
            return_state=True,
        )
        assert state.is_completed(), state.message
        assert {"backup_batch"} <= set(cluster.scheduler.task_prefixes)
        executed = [w.state.executed_count for w in cluster.workers.values()]
        assert len(executed) == 2 and all(n > 0 for n in executed), executed

        out = tmp_path / "out"
        restored = restore_flow(
            store_block,
            str(out),
            task_runner="dask",
            dask_address=cluster.scheduler_address,
            return_state=True,
        )
        assert restored.is_completed(), restored.message
        assert "restore_batch" in cluster.scheduler.task_prefixes

    assert state.result()["stats"]["files"] == 13
    assert tree_files(out) == koofr_files(koofr_fs, "Corpus")
    assert check_store(store_block.open_repository(), read_data=True).ok


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
