"""A real Dask cluster for the tests: one `dask scheduler` and `dask worker` processes.

Each process starts in a directory of its own, which is also its TMPDIR, HOME and Dask local
directory, so nothing passes between the flow and the workers through a local disk other than
the store itself. Workers run without a nanny: a worker killed by its PID stays dead, as a
machine that went away would, instead of being restarted behind the test's back.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.prefect.processes import Process, free_port

DASK = [sys.executable, "-m"]


def _own_dir_env(base: dict[str, str], root: Path) -> dict[str, str]:
    """`base` with every per-user and temporary location moved into `root`."""
    tmp = root / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    return {
        **base,
        "TMPDIR": str(tmp),
        "HOME": str(root),
        "XDG_CACHE_HOME": str(root / "cache"),
        "KLOSET_CONFIG_DIR": str(root / "kloset-config"),
        "KLOSET_SPOOL": str(root / "spool"),
        "PREFECT_HOME": str(root / "prefect-home"),
        "DASK_TEMPORARY_DIRECTORY": str(tmp),
    }


@dataclass
class DaskCluster:
    """A scheduler on 127.0.0.1 and its workers, each started and stopped by PID."""

    root: Path
    env: dict[str, str]
    address: str = ""
    scheduler: Process | None = None
    workers: dict[str, Process] = field(default_factory=dict)  # name -> process
    _count: int = 0

    def start(self, nworkers: int) -> DaskCluster:
        port = free_port()
        self.address = f"tcp://127.0.0.1:{port}"
        sdir = self.root / "scheduler"
        sdir.mkdir(parents=True)
        self.scheduler = Process(
            [
                *DASK,
                "distributed.cli.dask_scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-dashboard",
            ],
            _own_dir_env(self.env, sdir),
            sdir / "scheduler.log",
            cwd=sdir,
        ).start()
        for _ in range(nworkers):
            self.start_worker()
        self.wait_for_workers(nworkers)
        return self

    def start_worker(self) -> str:
        """One more `dask worker` (one thread, no nanny) in a fresh directory; its name."""
        self._count += 1
        name = f"w{self._count}"
        wdir = self.root / name
        wdir.mkdir(parents=True)
        self.workers[name] = Process(
            [
                *DASK,
                "distributed.cli.dask_worker",
                self.address,
                "--name",
                name,
                "--nthreads",
                "1",
                "--no-nanny",
                "--no-dashboard",
                "--local-directory",
                str(wdir / "dask"),
                "--death-timeout",
                "60",
            ],
            _own_dir_env(self.env, wdir),
            wdir / "worker.log",
            cwd=wdir,
        ).start()
        return name

    def client(self) -> Any:
        from distributed import Client

        return Client(self.address, timeout=30, set_as_default=False)

    def wait_for_workers(self, n: int, timeout: float = 90.0) -> None:
        """Until the scheduler knows exactly the live workers (bounded in time)."""
        deadline = time.monotonic() + timeout
        with self.client() as client:
            while True:
                names = {w["name"] for w in client.scheduler_info()["workers"].values()}
                alive = {k for k, p in self.workers.items() if p.popen and p.popen.poll() is None}
                if len(names) >= n and names == alive:
                    return
                if time.monotonic() > deadline:
                    logs = "\n".join(p.log_tail(2000) for p in self.workers.values())
                    raise RuntimeError(f"dask workers did not join {self.address}:\n{logs}")
                time.sleep(0.2)

    def pid(self, name: str) -> int:
        popen = self.workers[name].popen
        assert popen is not None
        return popen.pid

    def kill_worker(self, name: str, sig: int) -> None:
        """Signal one worker by its PID and reap it."""
        popen = self.workers[name].popen
        assert popen is not None
        os.kill(popen.pid, sig)
        popen.wait(10)

    def stop(self) -> None:
        for process in self.workers.values():
            process.stop()
        if self.scheduler is not None:
            self.scheduler.stop()
