"""Compatibility with the real rclone 1.60 koofr backend (``provider = other``)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from koofr_emulator import FaultRule, KoofrEmulator

RCLONE = shutil.which("rclone") or "/usr/bin/rclone"
pytestmark = pytest.mark.skipif(
    not os.path.exists(RCLONE), reason="rclone is not installed (apt-get install rclone)"
)

MTIME_NS = 1614834367123456789  # rclone truncates to ms: 1614834367123
Rclone = Callable[..., subprocess.CompletedProcess[bytes]]


@pytest.fixture
def rclone(koofr_emulator: KoofrEmulator, tmp_path: Path) -> Rclone:
    """Run rclone against the emulator via a temp config (remote name ``emu``)."""
    obscured = (
        subprocess.run(
            [RCLONE, "obscure", koofr_emulator.password], check=True, capture_output=True
        )
        .stdout.decode()
        .strip()
    )
    conf = tmp_path / "rclone.conf"
    conf.write_text(
        f"[emu]\ntype = koofr\nprovider = other\nendpoint = {koofr_emulator.url}\n"
        f"user = {koofr_emulator.user}\npassword = {obscured}\n"
    )
    env = {**os.environ, "HOME": str(tmp_path), "RCLONE_CONFIG": str(conf)}

    def run(
        *args: str,
        input: bytes | None = None,  # noqa: A002 - mirrors subprocess
        check: bool = True,
    ) -> subprocess.CompletedProcess[bytes]:
        cmd = [RCLONE, "--config", str(conf), "--cache-dir", str(tmp_path / "cache"), *args]
        proc = subprocess.run(cmd, input=input, capture_output=True, env=env, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stderr.decode()}")
        return proc

    return run


def make_tree(root: Path) -> dict[str, bytes]:
    rnd = random.Random(7)
    files = {
        "a.txt": b"hello\n",
        "unicode \u00fcn\u00efc\u00f6d\u00e9 \u65e5\u672c\u8a9e.txt": "\u2603".encode() * 10,
        "space name.txt": b"spaces",
        "plus+sign.txt": b"plus",
        "amp&ersand.txt": b"amp",
        "percent%20.txt": b"percent",
        "nested/deep/er/file.bin": rnd.randbytes(10_000),
        "nested/deep/sibling.txt": b"sib",
        "empty-ish/only.txt": b"1",
        "empty.dat": b"",
        "big.bin": rnd.randbytes(3 * 1024 * 1024 + 123),
    }
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, ns=(MTIME_NS, MTIME_NS))
    return files


def test_rclone_end_to_end(koofr_emulator: KoofrEmulator, rclone: Rclone, tmp_path: Path) -> None:
    emu = koofr_emulator
    src = tmp_path / "src"
    files = make_tree(src)

    rclone("mkdir", "emu:backup/deep/er", "--retries", "1")
    assert emu.store.info("/backup/deep/er").is_dir

    emu.reset_counters()
    rclone("copy", str(src), "emu:backup", "--retries", "1", "--transfers", "8")
    assert emu.counters["files/put"] == len(files)

    listing = json.loads(rclone("lsjson", "-R", "--hash", "emu:backup").stdout)
    remote = {e["Path"]: e for e in listing if not e["IsDir"]}
    assert set(remote) == set(files)
    for rel, data in files.items():
        assert remote[rel]["Size"] == len(data)
        assert remote[rel]["Hashes"]["md5"] == hashlib.md5(data).hexdigest()
        assert remote[rel]["ModTime"].startswith("2021-03-04T05:06:07.123")
    rclone("check", str(src), "emu:backup")

    emu.reset_counters()
    rclone("copy", str(src), "emu:backup", "--retries", "1")
    assert emu.counters["files/put"] == 0
    assert emu.counters["files/list"] >= 1

    dst = tmp_path / "dst"
    rclone("copy", "emu:backup", str(dst), "--retries", "1", "--create-empty-src-dirs")
    for rel, data in files.items():
        assert (dst / rel).read_bytes() == data
        assert (dst / rel).stat().st_mtime_ns == 1614834367123 * 1_000_000
    assert (dst / "deep" / "er").is_dir()  # empty remote dirs come back too

    assert rclone("cat", "--offset", "2", "--count", "4", "emu:backup/a.txt").stdout == b"llo\n"

    emu.reset_counters()
    rclone("copyto", "emu:backup/a.txt", "emu:backup/a-copy.txt")
    assert emu.counters["files/copy"] == 1 and emu.counters["files/put"] == 0
    assert emu.store.info("/backup/a-copy.txt").modified == 1614834367123

    rclone("moveto", "emu:backup/space name.txt", "emu:backup/moved/renamed.txt")
    assert emu.store.info("/backup/moved/renamed.txt").size == len(b"spaces")
    rclone("move", "emu:backup/moved", "emu:backup/moved-dir")  # server-side DirMove
    assert emu.store.info("/backup/moved-dir/renamed.txt").size == len(b"spaces")

    rclone("rcat", "emu:stream/piped.bin", input=b"piped data")
    assert rclone("cat", "emu:stream/piped.bin").stdout == b"piped data"
    link = rclone("link", "emu:backup/a.txt").stdout.decode().strip()
    assert link.startswith(emu.url + "/content/links/")

    rclone("delete", "emu:backup/nested")
    left = rclone("lsf", "-R", "emu:backup/nested").stdout.decode().split()
    assert left and all(p.endswith("/") for p in left)  # only directories remain

    about = json.loads(rclone("about", "emu:", "--json").stdout)
    assert about["total"] == 10240 * 1024 * 1024
    assert about["used"] == 4 * 1024 * 1024  # ~3.04 MiB stored, rounded up
    assert about["free"] == about["total"] - about["used"]

    rclone("purge", "emu:backup")
    assert rclone("lsf", "emu:").stdout.decode().split() == ["stream/"]


def test_rclone_parallel_uploads_into_new_dirs(
    koofr_emulator: KoofrEmulator, rclone: Rclone, tmp_path: Path
) -> None:
    """``--transfers 8`` races files/folder for the same dir; 400 'exists' keeps it working."""
    src = tmp_path / "many"
    for i in range(24):
        (src / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 3}" / f"f{i}.txt").write_text(str(i))
    rclone("sync", str(src), "emu:race", "--transfers", "8", "--checkers", "8", "--retries", "1")
    rclone("check", str(src), "emu:race")


def test_rclone_recovers_from_dropped_connections(
    koofr_emulator: KoofrEmulator, rclone: Rclone, tmp_path: Path
) -> None:
    src = tmp_path / "s"
    files = make_tree(src)
    koofr_emulator.add_fault(FaultRule(kind="drop", count=1, route="files/put", path_regex="^/up$"))
    rclone("copy", str(src), "emu:up", "--retries", "1", "--low-level-retries", "3")
    assert [r["fired"] for r in koofr_emulator.fault_rules] == [1]
    koofr_emulator.clear_faults()
    assert not any((koofr_emulator.root / ".emulator" / "tmp").iterdir())
    rclone("check", str(src), "emu:up")

    koofr_emulator.add_fault(FaultRule(kind="drop", count=1, route="files/get", path_regex="big"))
    koofr_emulator.reset_counters()
    dst = tmp_path / "d"
    rclone("copy", "emu:up", str(dst), "--retries", "1", "--low-level-retries", "3")
    assert (dst / "big.bin").read_bytes() == files["big.bin"]
    assert koofr_emulator.counters["files/get"] == len(files) + 1  # one re-GET

    koofr_emulator.clear_faults()
    koofr_emulator.add_fault(FaultRule(kind="status", status=429, count=1, route="files/list"))
    proc = rclone("copy", str(src), "emu:up", "--retries", "3", "--retries-sleep", "0")
    assert [r["fired"] for r in koofr_emulator.fault_rules] == [1]
    assert b"429" in proc.stderr  # attempt 1 failed, the whole-command retry succeeded


def test_rclone_bad_password_fails_cleanly(
    koofr_emulator: KoofrEmulator, rclone: Rclone, tmp_path: Path
) -> None:
    koofr_emulator.auth.password = "changed"
    proc = rclone("lsf", "emu:", check=False)
    assert proc.returncode != 0
    assert b"401" in proc.stderr
