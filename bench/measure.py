"""Measuring one command as a child process: wall and CPU time, peak RSS, whole-tree PSS.

Why a module of its own: `run.py` (against restic and borg), `scale.py` (synthetic trees and
big stores) and `profile.py` measure commands the same way, so their numbers compare.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Measurement:
    """Cost of one command. Memory in KiB; `tree_pss_kib` is the sampled whole-tree peak."""

    cmd: list[str]
    wall_s: float
    user_s: float
    sys_s: float
    maxrss_kib: int
    tree_pss_kib: int
    tree_rss_kib: int
    returncode: int
    background_cores: float = 0.0


def _cpu_busy_s() -> float:
    """Seconds of CPU time the whole machine has spent busy since boot (all cores)."""
    with open("/proc/stat") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    busy = sum(fields[:8]) - idle  # guest time is already inside user/nice
    return busy / os.sysconf("SC_CLK_TCK")


def wait_for_quiet(max_cores: float, timeout: float) -> float:
    """Wait until other processes use less than `max_cores` CPUs over one second.

    Why: this machine is shared with other work; a command measured while a test suite runs
    next to it is slowed by an amount we cannot subtract. Returns the last load seen.
    """
    deadline = time.monotonic() + timeout
    while True:
        before = _cpu_busy_s()
        time.sleep(1.0)
        load = _cpu_busy_s() - before
        if load < max_cores or time.monotonic() >= deadline:
            return load


def _children(pid: int) -> list[int]:
    """Direct children of `pid` via /proc/PID/task/*/children (no psutil dependency)."""
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                out.extend(int(x) for x in fh.read().split())
        except (OSError, ValueError):
            continue
    return out


def _rollup(pid: int) -> tuple[int, int]:
    """(Pss, Rss) in KiB from smaps_rollup; PSS splits copy-on-write pages between forks."""
    pss = rss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss = int(line.split()[1])
    except (OSError, ValueError):
        pass
    return pss, rss


class TreeSampler(threading.Thread):
    """Samples the summed PSS/RSS of a process and all its descendants until stopped.

    Why: peak RSS from rusage is the largest *single* process; a tool that forks workers can use
    several times that. PSS is the honest sum because shared copy-on-write pages count once.
    """

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak_pss = 0
        self.peak_rss = 0
        self._stop_evt = threading.Event()

    def run(self) -> None:
        while not self._stop_evt.is_set():
            pss = rss = 0
            todo = [self.pid]
            seen: set[int] = set()
            while todo:
                p = todo.pop()
                if p in seen:
                    continue
                seen.add(p)
                a, b = _rollup(p)
                pss += a
                rss += b
                todo.extend(_children(p))
            self.peak_pss = max(self.peak_pss, pss)
            self.peak_rss = max(self.peak_rss, rss)
            self._stop_evt.wait(self.interval)

    def stop(self) -> None:
        self._stop_evt.set()
        self.join()


def run_measured(
    cmd: Sequence[str], *, cwd: Path, env: dict[str, str], log: Path, check: bool = True
) -> Measurement:
    """Run `cmd`, wait with wait4 to get *its* rusage (not the sum of all children so far)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"$ {' '.join(cmd)}\n".encode())
        out.flush()
        busy_before = _cpu_busy_s()
        started = time.perf_counter()
        proc = subprocess.Popen(list(cmd), cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        busy = _cpu_busy_s() - busy_before
        sampler.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)  # Popen must not wait again
    m = Measurement(
        cmd=list(cmd),
        wall_s=wall,
        user_s=usage.ru_utime,
        sys_s=usage.ru_stime,
        maxrss_kib=usage.ru_maxrss,
        tree_pss_kib=sampler.peak_pss,
        tree_rss_kib=sampler.peak_rss,
        returncode=proc.returncode,
        # CPU used by anything but the measured command (and this thin runner), in cores.
        background_cores=max(0.0, busy - usage.ru_utime - usage.ru_stime) / wall if wall else 0.0,
    )
    if check and m.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise RuntimeError(f"{cmd[0]} failed (exit {m.returncode}):\n" + "\n".join(tail))
    return m


def sync() -> None:
    """Flush dirty pages so they are not written back during the next measured command."""
    os.sync()


def first_line(cmd: list[str]) -> str:
    """First line a command prints (a version string), or "?"."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return out.strip().splitlines()[0] if out.strip() else "?"
