"""`kloset at STORE mount`: the real CLI on real FUSE (/dev/fuse, libfuse 3 via mfusepy).

Each test starts `kloset … mount` as a process, waits (bounded) for the mount to appear, and
always leaves no mount and no process behind: teardown unmounts lazily (`fusermount3 -u -z`,
then `umount -l`) and kills the process by its PID, so a stuck mount cannot hang the suite.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import cli, run_kloset, tree_state
from kloset_samples import SampleStore

from kloset.locks import read_locks
from kloset.storetree import snapshot_dir_name

FUSERMOUNT = shutil.which("fusermount3") or shutil.which("fusermount")


def _fuse_missing() -> str | None:
    if sys.platform == "linux" and not os.path.exists("/dev/fuse"):
        return "no /dev/fuse on this machine"
    if sys.platform == "linux" and FUSERMOUNT is None:
        return "fusermount3 is missing (.ci/run installs Debian's fuse3)"
    try:
        from kloset.mount import load_fuse

        load_fuse()
    except Exception as exc:  # noqa: BLE001 - any reason FUSE cannot load is a reason to skip
        return f"FUSE cannot be used here: {exc}"
    return None


MISSING = _fuse_missing()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")


def _unmount(path: Path) -> None:
    if FUSERMOUNT:
        subprocess.run([FUSERMOUNT, "-u", "-z", str(path)], capture_output=True, timeout=10)
    if os.path.ismount(path):
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=10)


class Mounted:
    """A running `kloset … mount` process and its mountpoint."""

    def __init__(self, sample: SampleStore, mnt: Path) -> None:
        mnt.mkdir(exist_ok=True)
        self.mnt = mnt
        cmd = [sys.executable, "-m", "kloset.cli.main", "at", str(sample.store), "mount", str(mnt)]
        env = {**os.environ, **sample.env}
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 30
        while not os.path.ismount(mnt):
            if self.proc.poll() is not None:
                raise AssertionError(f"mount exited early: {self.proc.communicate()}")
            assert time.monotonic() < deadline, "the mount did not appear within 30 s"
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGINT) -> tuple[int, str]:
        """Stop as a user would (Ctrl-C by default); returns (exit code, stderr)."""
        self.proc.send_signal(sig)
        try:
            _out, err = self.proc.communicate(timeout=20)
        finally:
            self.cleanup()
        return self.proc.returncode, err

    def cleanup(self) -> None:
        """Unmount (lazily: a busy or stuck mount cannot hang the suite), then the process ends
        by itself; one that does not within 10 s is killed."""
        _unmount(self.mnt)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def mounted(sample_store: SampleStore, tmp_path: Path) -> Iterator[Mounted]:
    m = Mounted(sample_store, tmp_path / "mnt")
    try:
        yield m
    finally:
        m.cleanup()


def test_the_mount_shows_every_snapshot_exactly_as_stored(
    sample_store: SampleStore, mounted: Mounted, tmp_path: Path
) -> None:
    mnt = mounted.mnt
    first, second = sample_store.first, sample_store.second
    assert sorted(os.listdir(mnt)) == ["ids", "latest", "snapshots", "tags"]
    assert os.listdir(mnt / "snapshots") == [snapshot_dir_name(first), snapshot_dir_name(second)]
    assert sorted(os.listdir(mnt / "ids")) == sorted([first.hex, second.hex])
    assert sorted(os.listdir(mnt / "tags")) == ["daily", "weird_tag"]
    assert os.listdir(mnt / "tags" / "weird_tag") == [snapshot_dir_name(second)]

    # The newest snapshot is the source as it is now: bytes, modes, symlinks, ns mtimes.
    want = tree_state(sample_store.source)
    del want[b""]  # a snapshot keeps no metadata for its root
    latest = snapshot_dir_name(second)
    for root in (mnt / "latest", mnt / "ids" / second.hex, mnt / "snapshots" / latest):
        got = tree_state(root)
        del got[b""]
        assert got == want
    old = mnt / "snapshots" / snapshot_dir_name(first) / "docs" / "notes.txt"
    assert old.read_bytes() == b"first notes\n"
    assert os.readlink(mnt / "latest" / "dangling") == "/nowhere/at/all"

    # Byte ranges, as a video player asks for them.
    video = (sample_store.source / "video.mp4").read_bytes()
    fd = os.open(mnt / "latest" / "video.mp4", os.O_RDONLY)
    try:
        for start in (len(video) - 5000, 0, 3 * 1024 * 1024 + 7, 1024 * 1024 - 3):
            assert os.pread(fd, 70000, start) == video[start : start + 70000]
    finally:
        os.close(fd)

    # Read-only: nothing can be created, changed or removed.
    for attempt in (
        lambda: open(mnt / "latest" / "new.txt", "w"),  # noqa: SIM115
        lambda: open(mnt / "latest" / "docs" / "notes.txt", "r+b"),  # noqa: SIM115
        lambda: os.unlink(mnt / "latest" / "empty"),
        lambda: os.mkdir(mnt / "snapshots" / "x"),
    ):
        with pytest.raises(OSError) as caught:
            attempt()
        assert caught.value.errno in (errno.EROFS, errno.EACCES, errno.EPERM)


def test_ctrl_c_and_fusermount_both_unmount_cleanly(
    sample_store: SampleStore, tmp_path: Path
) -> None:
    m = Mounted(sample_store, tmp_path / "a")
    assert (m.mnt / "latest" / "docs" / "notes.txt").exists()
    prune = run_kloset("at", sample_store.store, "prune", env=sample_store.env)
    assert prune.returncode == 5 and b"mount (shared)" in prune.stderr, prune.stderr
    code, err = m.stop(signal.SIGINT)
    assert code == 0, err
    assert "unmounted" in err and not os.path.ismount(m.mnt) and os.listdir(m.mnt) == []

    m = Mounted(sample_store, tmp_path / "b")
    try:
        assert FUSERMOUNT is not None
        subprocess.run([FUSERMOUNT, "-u", str(m.mnt)], check=True, timeout=10)
        assert m.proc.wait(timeout=20) == 0
    finally:
        m.cleanup()
    assert not os.path.ismount(m.mnt)
    held = [lock.pid for lock in read_locks(sample_store.repo)]
    assert m.proc.pid not in held, "the mount left its lock behind"


def test_bad_mountpoints_get_one_line_and_exit_2(sample_store: SampleStore, tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    (tmp_path / "file").write_text("x")
    cases = {
        tmp_path / "missing": "does not exist",
        busy: "is not empty",
        tmp_path / "file": "is not a directory",
    }
    for path, message in cases.items():
        res = cli("at", sample_store.store, "mount", path, env=sample_store.env)
        assert res.code == 2 and len(res.err_lines) == 1 and message in res.err, res.err
