"""The real processes Prefect tests run: `prefect server start`, `prefect worker start`, the CLI.

Each is started in its own session (process group) and stopped by that group's id, so a
server's or a worker's children (uvicorn, flow-run subprocesses) die with it and nothing of
another helper's tests is ever touched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

PREFECT = [sys.executable, "-m", "prefect"]


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Process:
    """A child process in its own group, with its output in a log file."""

    args: list[str]
    env: dict[str, str]
    log_path: Path
    cwd: Path | None = None
    popen: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> Process:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            self.args,
            env=self.env,
            cwd=self.cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        """SIGTERM to the whole group, SIGKILL if it lingers; always reaps the child."""
        if self.popen is not None:
            for sig, wait in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 10.0)):
                try:
                    os.killpg(self.popen.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.popen.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
            with contextlib.suppress(ProcessLookupError):  # children the leader left behind
                os.killpg(self.popen.pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()


def wait_healthy(url: str, process: Process, timeout: float = 120.0) -> None:
    """Poll `url` until it answers 200; fail with the process's log if it dies or times out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert process.popen is not None
        if process.popen.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{' '.join(process.args)} did not come up:\n{process.log_tail()}")
        time.sleep(0.3)


def prefect_cli(
    args: list[str], env: dict[str, str], cwd: Path, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Run ``prefect ARGS``; the result is returned whatever the exit code."""
    return subprocess.run(
        [*PREFECT, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
