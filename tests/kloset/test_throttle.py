"""`kloset.throttle`: the token buckets behind --limit-upload/--limit-download, on a fake clock
(no timing assertions: the waits the bucket asks for are what is checked), and the places
every remote byte passes through."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import cli, random_bytes, write_file

from kloset import throttle
from kloset.errors import KlosetError


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_a_bucket_paces_bytes_to_its_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(throttle.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(throttle.time, "sleep", clock.sleep)
    bucket = throttle.TokenBucket(1000.0)  # bytes per second
    for _ in range(10):
        bucket.take(500)
    assert sum(clock.slept) == pytest.approx(5.0)  # 5000 bytes at 1000 B/s
    clock.slept.clear()
    clock.now += 60  # idle for a minute: only half a second of allowance is saved up
    for _ in range(4):
        bucket.take(500)
    assert sum(clock.slept) == pytest.approx(1.5)
    unlimited = throttle.TokenBucket(None)
    clock.slept.clear()
    unlimited.take(10**12)
    assert clock.slept == []


def test_limits_parse_as_whole_kib_per_second() -> None:
    assert throttle.parse_kib("512", "--limit-upload") == 512
    assert throttle.parse_kib(0, "--limit-upload") is None
    assert throttle.parse_kib(None, "--limit-upload") is None
    for bad in ("1.5", "fast", "-3"):
        with pytest.raises(KlosetError, match="--limit-download"):
            throttle.parse_kib(bad, "--limit-download")


def test_every_remote_byte_goes_through_the_buckets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A memory:// source, store and target are remote to kloset: the store's writes and reads
    and the source's and target's file bytes are all taken from the buckets."""
    import fsspec

    counted = {"up": 0, "down": 0}
    monkeypatch.setattr(
        throttle.UPLOAD, "take", lambda n: counted.__setitem__("up", counted["up"] + n)
    )
    monkeypatch.setattr(
        throttle.DOWNLOAD, "take", lambda n: counted.__setitem__("down", counted["down"] + n)
    )
    mem = fsspec.filesystem("memory")
    data = random_bytes(600_000, 5)  # incompressible: stored and sent at its own size
    mem.pipe_file(f"/{tmp_path.name}-src/a.bin", data)
    store = f"memory://{tmp_path.name}-store"
    assert cli("at", store, "create", "--no-encryption").code == 0
    assert cli("at", store, "backup", f"memory://{tmp_path.name}-src").code == 0
    assert counted["down"] >= len(data)  # the source file, read once
    stored = sum(
        int(i["size"]) for i in mem.find(f"/{tmp_path.name}-store/packs", detail=True).values()
    )
    assert counted["up"] >= stored  # every pack (and index, snapshot) uploaded
    counted.update(up=0, down=0)
    res = cli("at", store, "restore", "-to", f"memory://{tmp_path.name}-out", "latest")
    assert res.code == 0, res.err
    assert counted["up"] >= len(data) and counted["down"] >= len(data)  # (+ the lock object)
    # Local disk is never limited.
    counted.update(up=0, down=0)
    write_file(tmp_path / "local" / "b.bin", data)
    assert cli("at", tmp_path / "lstore", "create", "--no-encryption").code == 0
    assert cli("at", tmp_path / "lstore", "backup", tmp_path / "local").code == 0
    assert counted == {"up": 0, "down": 0}


def test_the_cli_sets_the_limits_anywhere_after_the_store(tmp_path: Path) -> None:
    store = tmp_path / "s"
    assert cli("at", store, "create", "--no-encryption").code == 0
    try:
        res = cli("at", store, "ls", "--limit-upload", "64", "--limit-download=128")
        assert res.code == 0, res.err
        assert throttle.UPLOAD.rate == 64 * 1024 and throttle.DOWNLOAD.rate == 128 * 1024
        res = cli("at", store, "ls", "--limit-upload", "lots")
        assert res.code == 1 and len(res.err_lines) == 1 and "KiB/s" in res.err
    finally:
        throttle.set_limits()
    assert throttle.UPLOAD.rate is None and throttle.DOWNLOAD.rate is None


def test_limits_reach_the_processes_started_meanwhile_and_are_undone(tmp_path: Path) -> None:
    """`limited` is how a flow's limit_upload/limit_download reach its task processes (they
    start from the environment), and the CLI reads the same variables."""
    import os
    import subprocess
    import sys

    probe = "from kloset import throttle; print(throttle.UPLOAD.rate, throttle.DOWNLOAD.rate)"
    with throttle.limited(64, None):
        assert (throttle.UPLOAD.rate, throttle.DOWNLOAD.rate) == (64 * 1024, None)
        child = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60
        )
        assert child.stdout.split() == [str(64 * 1024), "None"], child.stderr
    assert throttle.UPLOAD.rate is None and throttle.ENV_UPLOAD not in os.environ
    with pytest.raises(KlosetError, match="limit_download"), throttle.limited(None, "lots"):
        pass
    store = tmp_path / "s"
    assert cli("at", store, "create", "--no-encryption").code == 0
    try:
        res = cli("at", store, "ls", env={throttle.ENV_DOWNLOAD: "32"})
        assert res.code == 0 and throttle.DOWNLOAD.rate == 32 * 1024, res.err
    finally:
        throttle.set_limits()


def test_worker_processes_share_the_limits_of_their_parent() -> None:
    """A local backup's batches run in `kloset.workers` processes that upload their own packs:
    together they must keep the limit the CLI (or a flow) set in the parent."""
    from kloset.workers import WorkerPool

    try:
        throttle.set_limits(1000, None)  # as the CLI does: no environment involved
        with WorkerPool(2) as pool:
            assert pool.run(throttle.current_limits) == (500 * 1024, None)
        throttle.set_limits(None, 300)
        with WorkerPool(3) as pool:
            assert pool.run(throttle.current_limits) == (None, 100 * 1024)
    finally:
        throttle.set_limits()
