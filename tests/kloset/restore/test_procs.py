"""Forked restore writers: byte-exact, every batch once, errors raised in the parent, and no
child left behind either way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import PASSPHRASE, cli, new_repo, open_repo, tree_state, write_file

from kloset import rundir
from kloset.destination import LocalDestination
from kloset.errors import KlosetError
from kloset.restore import finish_restore, plan_restore, procs
from kloset.workers import cpu_count


def _no_children() -> bool:
    """No fork of this process is left (restore's writers run this process's program; the
    `kloset.workers` interpreters earlier tests of the session may keep idle are others)."""
    me = os.getpid()
    own = Path(f"/proc/{me}/cmdline").read_bytes()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if ppid == me and (stat.parent / "cmdline").read_bytes() == own:
                return False
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return True


@pytest.fixture
def planned(tmp_path: Path):  # type: ignore[no-untyped-def]
    src = tmp_path / "src"
    for i in range(40):
        write_file(src / f"d{i % 4}" / f"f{i}.bin", os.urandom(100 + i * 997))
    store = tmp_path / "store"
    new_repo(store)
    assert cli("at", store, "backup", src, env={"KLOSET_PASSPHRASE": PASSPHRASE}).code == 0
    repo = open_repo(store)
    dest = LocalDestination(str(tmp_path / "out"))
    plan = plan_restore(
        repo, repo.list_snapshots()[-1], "/", dest, str(tmp_path / "spool"), batch_files=3
    )
    return src, repo, dest, plan


def test_every_batch_written_once_byte_exact(planned) -> None:  # type: ignore[no-untyped-def]
    src, repo, dest, plan = planned
    assert procs.usable(repo, dest, plan.batches) == (cpu_count() > 1)
    data = rundir.read_msgpack(rundir.plan_path(plan.run_dir))
    files: list[tuple[int, bool]] = []
    results = list(
        procs.forked_batches(
            repo,
            plan.run_dir,
            plan.batches,
            dest,
            overwrite=False,
            threads=2,
            plan=data,
            on_file=lambda size, skipped: files.append((size, skipped)),
            workers=3,
        )
    )
    assert sorted(r.batch for r in results) == list(range(plan.batches)) and plan.batches > 3
    assert sum(r.files_written for r in results) == len(files) == 40
    assert sum(size for size, _ in files) == plan.bytes
    finish_restore(plan.run_dir, dest)
    got, want = tree_state(Path(dest.root)), tree_state(src)
    got.pop(b""), want.pop(b"")  # snapshots record no metadata for their root
    assert got == want
    assert _no_children()


def test_a_failing_batch_raises_here_and_stops_the_workers(
    planned, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    _src, repo, dest, plan = planned
    real = procs.restore_batch

    def flaky(repo, run_dir, batch_no, *a, **k):  # type: ignore[no-untyped-def]
        if batch_no == 2:
            raise KlosetError("pack unreadable")
        return real(repo, run_dir, batch_no, *a, **k)

    monkeypatch.setattr(procs, "restore_batch", flaky)
    data = rundir.read_msgpack(rundir.plan_path(plan.run_dir))
    with pytest.raises(KlosetError, match="pack unreadable"):
        for _ in procs.forked_batches(
            repo,
            plan.run_dir,
            plan.batches,
            dest,
            overwrite=False,
            threads=2,
            plan=data,
            on_file=lambda _s, _k: None,
            workers=2,
        ):
            pass
    assert _no_children()


@pytest.mark.parametrize(
    ("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGKILL, -9)], ids=["TERM", "KILL"]
)
def test_killing_the_cli_ends_its_restore_workers(
    tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    """SIGTERM is handled (one line, lock released); SIGKILL is not, and PR_SET_PDEATHSIG must
    end the forked writers within 2 s all the same."""
    if cpu_count() < 2:
        pytest.skip("one core: restores run in threads")
    src = tmp_path / "src"
    for i in range(3000):
        write_file(src / f"d{i % 30}" / f"f{i}.txt", b"%d" % i * 400)
    store = tmp_path / "store"
    new_repo(store)
    env = {**os.environ, "KLOSET_PASSPHRASE": PASSPHRASE}
    assert cli("at", store, "backup", src, env={"KLOSET_PASSPHRASE": PASSPHRASE}).code == 0
    cmd = [sys.executable, "-m", "kloset.cli.main", "at", str(store), "restore"]
    proc = subprocess.Popen([*cmd, "-to", str(tmp_path / "out"), "latest"], env=env)
    try:
        deadline = time.monotonic() + 60
        while not _children(proc.pid):
            assert proc.poll() is None, "the restore ended before it forked its workers"
            assert time.monotonic() < deadline
            time.sleep(0.002)
        proc.send_signal(sig)
        assert proc.wait(timeout=30) == code
    finally:
        proc.kill()
    time.sleep(2.0)
    left = subprocess.run(["pgrep", "-f", str(store)], capture_output=True, text=True).stdout
    assert left.split() == []
    if sig == signal.SIGTERM:
        assert not os.listdir(store / "locks")


def _children(pid: int) -> list[str]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return found.stdout.split()
