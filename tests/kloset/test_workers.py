"""Worker processes die with their parent, whatever kills it, and each safeguard works alone.

A real parent process starts busy workers and is then killed; within 2 s no worker may remain.
Run with ``--durations`` to keep this file fast: each case costs one interpreter start-up.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kloset.errors import KlosetError
from kloset.workers import NO_PDEATHSIG_ENV, NO_WATCHDOG_ENV, WorkerDied, WorkerPool, ping

PARENT = """
import sys, threading, time
from kloset.workers import WorkerPool, ping
pool = WorkerPool(2)
inside = []  # each worker reports its pid once inside its job
for _ in range(2):
    kwargs = {"on_report": inside.append}
    threading.Thread(target=pool.run, args=(ping, 120), kwargs=kwargs, daemon=True).start()
while len(inside) < 2:
    time.sleep(0.01)
print(" ".join(map(str, inside)), flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie nobody reaped yet (PID 1 of a container)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _start_parent(**env: str) -> tuple[subprocess.Popen[str], list[int]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", PARENT],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    pids = [int(p) for p in line.split()]
    assert len(pids) == 2 and all(_alive(p) for p in pids), line
    return proc, pids


def _gone_within(pids: list[int], seconds: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if not any(_alive(p) for p in pids):
            return time.monotonic() - started
        time.sleep(0.02)
    for pid in pids:  # never leave them behind, even when the test fails
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    raise AssertionError(f"workers {pids} outlived their parent by {seconds} s")


@pytest.mark.parametrize(
    "env",
    [{}, {NO_WATCHDOG_ENV: "1"}, {NO_PDEATHSIG_ENV: "1"}],
    ids=["both", "pdeathsig-alone", "watchdog-alone"],
)
def test_workers_die_within_2s_of_a_sigkilled_parent(env: dict[str, str]) -> None:
    if NO_WATCHDOG_ENV in env and not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux only")
    proc, pids = _start_parent(**env)
    proc.kill()
    proc.wait()
    assert _gone_within(pids, 2.0) < 2.0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_workers_die_with_a_parent_ended_by_a_signal(sig: signal.Signals) -> None:
    proc, pids = _start_parent()
    proc.send_signal(sig)
    proc.wait()
    _gone_within(pids, 2.0)


def test_workers_ignore_sigint_and_answer_in_order() -> None:
    """A Ctrl-C reaches the whole process group: the parent decides, workers carry on."""
    seen: list[int] = []
    with WorkerPool(1) as pool:
        pid = pool.run(ping)
        os.kill(pid, signal.SIGINT)
        time.sleep(0.2)
        assert pool.run(ping, 0.25, on_report=seen.append) == pid  # the same worker, alive
    assert seen and set(seen) == {pid}
    _gone_within([pid], 2.0)  # close() stopped it


def test_an_exception_in_the_job_comes_back_and_the_worker_is_reused() -> None:
    with WorkerPool(1) as pool:
        pid = pool.run(ping)
        with pytest.raises(TypeError):
            pool.run(ping, "not a number")
        assert pool.run(ping) == pid


def test_kill_makes_running_jobs_fail_at_once() -> None:
    import threading

    pool = WorkerPool(1)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            pool.run(ping, 60)
        except KlosetError as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    while not pool.pids:
        time.sleep(0.01)
    pids = pool.pids
    time.sleep(0.2)
    pool.kill()
    thread.join(5)
    assert not thread.is_alive() and isinstance(errors[0], WorkerDied)
    _gone_within(pids, 2.0)


def test_without_either_safeguard_workers_would_survive() -> None:
    """The cases above are not vacuous: with both safeguards off, the workers outlive the kill."""
    proc, pids = _start_parent(**{NO_WATCHDOG_ENV: "1", NO_PDEATHSIG_ENV: "1"})
    proc.kill()
    proc.wait()
    time.sleep(1.0)
    survivors = [p for p in pids if _alive(p)]
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    assert survivors == pids
