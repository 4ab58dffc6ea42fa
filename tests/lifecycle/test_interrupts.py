"""Interrupted commands stop cleanly: one line, exit 130/143, lock released, no process left.

Real CLI processes back up a source big enough for several batches and get a signal while
they store data; the next run resumes from what they stored. Run with ``--durations``: each
case is one interrupted backup of ~150 MiB plus, for some, the resuming run.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from lifecycle_helpers import MB, PASS, assert_check_ok, cli_env, kloset, new_store, spawn

LINE = re.compile(r"^interrupted: ([\d,]+) files stored; run the same backup again to resume$")


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~150 MiB in 3 MiB files: three batches of the CLI's 64 MiB."""
    root = tmp_path_factory.mktemp("interrupts") / "src"
    rng = random.Random(13)
    for n in range(50):
        folder = root / f"d{n % 5}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{n:03d}.bin").write_bytes(rng.randbytes(3 * MB))
    return root


def _wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 60.0) -> None:
    """Until something exists under `path` (the run stored data); fails if the run ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_dir() and any(files for _d, _s, files in os.walk(path)):
            return
        assert proc.poll() is None, "the backup ended before it could be interrupted"
        time.sleep(0.005)
    raise AssertionError(f"nothing appeared under {path}")


def _survivors(store: Path) -> list[str]:
    found = subprocess.run(["pgrep", "-af", str(store)], capture_output=True, text=True)
    return [line for line in found.stdout.splitlines() if "pgrep" not in line]


def _stderr_lines(proc: subprocess.Popen[str]) -> list[str]:
    _out, err = proc.communicate(timeout=30)
    return [line for line in err.splitlines() if line.strip()]


def test_sigint_stops_the_batches_and_the_next_run_resumes(big: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    new_store(store)
    # One worker: batches run in a thread of the CLI, which must stop between two files.
    proc = spawn("at", str(store), "backup", str(big), "--workers", "1")
    _wait_for(store / "runs", proc)  # the first batch is stored and journaled
    time.sleep(0.1)  # ... and counted
    proc.send_signal(signal.SIGINT)
    lines = _stderr_lines(proc)
    assert proc.returncode == 130
    assert len(lines) == 1 and LINE.match(lines[0]), lines
    assert int(LINE.match(lines[0])[1].replace(",", "")) > 0  # type: ignore[index]
    assert not os.listdir(store / "locks")  # released
    assert_check_ok(store)
    out = kloset("at", str(store), "backup", str(big), "--json")
    summary = json.loads(out.stdout.splitlines()[-1])
    # What the interrupted run journaled is adopted: those files are not read again.
    assert summary["files_unchanged"] > 0 and summary["files_read"] < 50, summary
    assert not [n for n in os.listdir(store / "tmp") if n.startswith("run-")]


def test_sigterm_ends_worker_processes_and_releases_the_lock(big: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    new_store(store)
    proc = spawn("at", str(store), "backup", str(big), "--workers", "2")
    _wait_for(store / "packs", proc)
    proc.send_signal(signal.SIGTERM)
    lines = _stderr_lines(proc)
    assert proc.returncode == 143
    assert len(lines) == 1 and LINE.match(lines[0]), lines
    time.sleep(2.0)
    assert _survivors(store) == []
    assert not os.listdir(store / "locks")
    assert_check_ok(store)


HOLDER = textwrap.dedent(
    """
    import sys, time
    from kloset import interrupts
    from kloset.locations import open_storage
    from kloset.locks import store_lock
    from kloset.repository import Repository

    repo = Repository.open(open_storage(sys.argv[1]), sys.argv[2])
    interrupts.set_verb("prune")
    try:
        with interrupts.handled(), store_lock(repo, True, "prune"):
            try:  # "ready" inside: a signal right after it must land in this try
                print("ready", flush=True)
                time.sleep(60)
            except interrupts.Interrupted:
                time.sleep(60)  # work that does not stop when asked
    except interrupts.Interrupted as exc:
        interrupts.say()
        sys.exit(exc.exit_code)
    """
)


def _holder(store: Path, **env: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(store), PASS],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(**env),
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def test_a_second_ctrl_c_exits_at_once(tmp_path: Path) -> None:
    store = tmp_path / "store"
    new_store(store)
    proc = _holder(store, KLOSET_INTERRUPT_GRACE="60")
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    assert proc.poll() is None  # still "stopping"
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=5)
    # "At once": well inside the 60 s grace, with room for a loaded 2-core CI machine.
    assert proc.returncode == 130 and time.monotonic() - started < 3.0


def test_work_that_does_not_stop_is_abandoned_after_the_grace_period(tmp_path: Path) -> None:
    store = tmp_path / "store"
    new_store(store)
    proc = _holder(store, KLOSET_INTERRUPT_GRACE="0.5")
    assert os.listdir(store / "locks")
    proc.send_signal(signal.SIGHUP)
    lines = _stderr_lines(proc)
    assert proc.returncode == 129
    assert lines == ["interrupted: the store is consistent; run prune again to finish"]
    assert not os.listdir(store / "locks")
