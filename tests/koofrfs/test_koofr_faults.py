"""Resilience against the emulator's injected faults: 429/5xx, dropped connections, latency."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from koofr_emulator import FaultRule, KoofrEmulator
from koofrfs.errors import KoofrError, KoofrRetryError, KoofrUploadError
from koofrfs.filesystem import KoofrFileSystem

MakeFs = Callable[..., KoofrFileSystem]


@pytest.fixture
def seeded_emulator(tmp_path: Path) -> Iterator[KoofrEmulator]:
    """An emulator whose random faults are reproducible run to run."""
    emu = KoofrEmulator(tmp_path / "emu", host="127.0.0.1", port=0, seed=20240601)
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


def test_operations_succeed_under_ten_percent_faults(seeded_emulator: KoofrEmulator) -> None:
    emu = seeded_emulator
    fs = KoofrFileSystem(
        user=emu.user,
        password=emu.password,
        endpoint=emu.url,
        provider="other",
        retries=12,
        backoff_base=0.005,
        backoff_max=0.05,
        skip_instance_cache=True,
    )
    emu.add_fault(FaultRule(kind="status", status=429, rate=0.1, retry_after=0.01))
    emu.add_fault(FaultRule(kind="status", status=503, rate=0.1, retry_after=None))
    emu.add_fault(FaultRule(kind="drop", rate=0.1))
    blobs = {f"run/{i // 5}/blob-{i}.bin": os.urandom(50_000 + i) for i in range(20)}
    for path, data in blobs.items():
        fs.pipe_file(path, data, modified=1_600_000_000_000 + len(data))
    big = os.urandom(9 * 2**20)
    with fs.open("run/streamed.bin", "wb") as f:
        for i in range(0, len(big), 2**20):
            f.write(big[i : i + 2**20])
    fs.invalidate_cache()
    found = fs.find("run", detail=True)
    assert set(found) == {*blobs, "run/streamed.bin"}
    for path, data in blobs.items():
        assert found[path]["md5"] == hashlib.md5(data).hexdigest()
        assert found[path]["modified"] == 1_600_000_000_000 + len(data)
        assert fs.cat_file(path, 100, 200) == data[100:200]
    with fs.open("run/streamed.bin", "rb", block_size=2**20) as f:
        assert hashlib.md5(f.read()).digest() == hashlib.md5(big).digest()
    fs.mv("run/0", "moved")
    fs.cp_file("moved/blob-0.bin", "copied.bin")
    fs.rm("run/1", recursive=True)
    fs.makedirs("deep/er/still", exist_ok=True)
    fs.invalidate_cache()
    assert fs.cat_file("copied.bin") == blobs["run/0/blob-0.bin"]
    assert not fs.exists("run/1") and fs.isdir("deep/er/still")
    fired = sum(rule["fired"] for rule in emu.fault_rules)
    assert fired >= 10, f"only {fired} faults fired"


def test_permanent_503_is_one_clear_error(make_kfs: MakeFs, koofr_emulator: KoofrEmulator) -> None:
    fs = make_kfs(retries=3)
    fs.pipe_file("Photos/a.jpg", b"jpeg")
    koofr_emulator.add_fault(FaultRule(kind="status", status=503, rate=1.0, route="files/get"))
    started = time.monotonic()
    with pytest.raises(KoofrRetryError) as err:
        fs.cat_file("Photos/a.jpg")
    assert (
        str(err.value) == "Koofr GET /Photos/a.jpg failed after 3 attempts: 503 Service Unavailable"
    )
    assert isinstance(err.value, KoofrError) and err.value.path == "/Photos/a.jpg"
    assert time.monotonic() - started < 2  # Retry-After honoured but capped at backoff_max
    assert koofr_emulator.counters["files/get"] == 3


def test_dropped_reads_resume(make_kfs: MakeFs, koofr_emulator: KoofrEmulator) -> None:
    fs = make_kfs()
    data = os.urandom(2 * 2**20)
    fs.pipe_file("r.bin", data)
    koofr_emulator.reset_counters()
    koofr_emulator.add_fault(FaultRule(kind="drop", count=2, route="files/get"))
    assert fs.cat_file("r.bin") == data
    assert koofr_emulator.counters["files/get"] == 3
    koofr_emulator.add_fault(FaultRule(kind="drop", count=1, route="files/get"))
    out = Path(koofr_emulator.root) / ".." / "dl.bin"
    fs.get_file("r.bin", str(out))
    assert out.read_bytes() == data


def test_dropped_upload_leaves_nothing(make_kfs: MakeFs, koofr_emulator: KoofrEmulator) -> None:
    fs = make_kfs(retries=1)
    fs.makedirs("up")
    koofr_emulator.add_fault(FaultRule(kind="drop", count=1, route="files/put"))
    with pytest.raises(KoofrRetryError, match="POST /up/a.bin failed after 1 attempts"):
        fs.pipe_file("up/a.bin", os.urandom(3 * 2**20))
    assert not fs.exists("up/a.bin")
    fs.pipe_file("up/keep.bin", b"old")
    koofr_emulator.add_fault(FaultRule(kind="drop", count=1, route="files/put"))
    with pytest.raises(KoofrRetryError):
        fs.pipe_file("up/keep.bin", os.urandom(3 * 2**20))
    assert fs.cat_file("up/keep.bin") == b"old"  # the old version survives


def test_streamed_write_retries_from_spool(make_kfs: MakeFs, koofr_emulator: KoofrEmulator) -> None:
    fs = make_kfs()
    data = os.urandom(10 * 2**20)
    koofr_emulator.add_fault(FaultRule(kind="drop", count=1, route="files/put"))
    koofr_emulator.add_fault(
        FaultRule(kind="status", status=503, count=1, route="files/put", retry_after=0.01)
    )
    with fs.open("s/spooled.bin", "wb") as f:
        for i in range(0, len(data), 2**20):
            f.write(data[i : i + 2**20])
    assert fs.info("s/spooled.bin")["md5"] == hashlib.md5(data).hexdigest()
    assert koofr_emulator.counters["files/put"] == 3


def test_streamed_write_without_spool_fails_cleanly(
    make_kfs: MakeFs, koofr_emulator: KoofrEmulator
) -> None:
    fs = make_kfs()
    koofr_emulator.add_fault(FaultRule(kind="drop", count=1, route="files/put"))
    with (
        pytest.raises(KoofrUploadError, match="cannot be resent .*spool=False"),
        fs.open("s/nospool.bin", "wb", spool=False) as f,
    ):
        for _ in range(10):
            f.write(os.urandom(2**20))
    assert not fs.exists("s/nospool.bin")


def test_writer_aborts_on_exception(make_kfs: MakeFs, koofr_emulator: KoofrEmulator) -> None:
    fs = make_kfs()
    fs.pipe_file("w/file.bin", b"previous")
    with pytest.raises(RuntimeError, match="boom"), fs.open("w/file.bin", "wb") as f:
        f.write(os.urandom(6 * 2**20))  # a streamed request is already under way
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError, match="boom"), fs.open("w/new.bin", "wb") as f:
        f.write(b"small")
        raise RuntimeError("boom")
    assert fs.cat_file("w/file.bin") == b"previous"
    assert not fs.exists("w/new.bin")


def test_concurrency_limit_holds_against_server(
    make_kfs: MakeFs, koofr_emulator: KoofrEmulator
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    fs = make_kfs(max_concurrency=2)
    fs.pipe_file("c.txt", b"c")
    koofr_emulator.add_fault(FaultRule(kind="latency", seconds=0.1, rate=1.0, route="files/info"))
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: fs.info("c.txt", refresh=True), range(8)))
    assert time.monotonic() - started >= 0.38  # 8 requests, 2 at a time, 0.1 s each


def test_a_download_cut_short_but_well_framed_is_completed(
    koofr_emulator: KoofrEmulator, kfs: KoofrFileSystem
) -> None:
    """A proxy that sends half a file, framed as if it were all of it: nothing at the HTTP
    level is wrong, but the size Koofr reports tells, and the rest is asked for."""
    data = os.urandom(3 * 2**20 + 11)
    kfs.pipe_file("torn/a.bin", data)
    emu = koofr_emulator
    emu.add_fault(FaultRule(kind="truncate", count=3, route="files/get"))
    emu.reset_counters()
    assert kfs.cat_file("torn/a.bin") == data
    assert kfs.cat_file("torn/a.bin", 1000, 2_000_000) == data[1000:2_000_000]
    with kfs.open("torn/a.bin", "rb", block_size=2**20) as f:
        assert f.read() == data
    assert emu.fault_rules[0]["fired"] == 3
    assert emu.counters["files/get"] > 3  # each torn answer was followed by a request for the rest


def test_a_streamed_upload_whose_folder_vanished_is_sent_whole_again(
    koofr_emulator: KoofrEmulator, kfs: KoofrFileSystem
) -> None:
    """The folder is known to exist, but was deleted behind the filesystem's back: the first
    request meets a 404, the folder is made again and the spooled bytes are sent again."""
    kfs.makedirs("gone/sub")
    koofr_emulator.store.remove("/gone")  # not through kfs: its known-folders cache still says yes
    data = os.urandom(6 * 2**20 + 5)
    with kfs.open("gone/sub/big.bin", "wb", block_size=2**20) as f:
        for i in range(0, len(data), 2**20):
            f.write(data[i : i + 2**20])
    assert kfs.cat_file("gone/sub/big.bin") == data
