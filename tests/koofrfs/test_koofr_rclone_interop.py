"""Interop with Debian's rclone through the emulator: what one writes, the other reads."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from koofr_emulator import KoofrEmulator
from koofrfs.filesystem import KoofrFileSystem
from koofrfs.rclone import obscure

RCLONE = shutil.which("rclone")
pytestmark = pytest.mark.skipif(RCLONE is None, reason="rclone binary not installed")
MTIME = 1614834367123


def rclone(emu: KoofrEmulator, tmp_path: Path, *args: str) -> bytes:
    assert RCLONE is not None
    env = {
        **os.environ,
        "TZ": "UTC",
        "RCLONE_CONFIG": str(tmp_path / "none.conf"),
        "RCLONE_CONFIG_EMU_TYPE": "koofr",
        "RCLONE_CONFIG_EMU_PROVIDER": "other",
        "RCLONE_CONFIG_EMU_ENDPOINT": emu.url,
        "RCLONE_CONFIG_EMU_USER": emu.user,
        "RCLONE_CONFIG_EMU_PASSWORD": obscure(emu.password),  # our obscure, rclone's reveal
    }
    done = subprocess.run(
        [RCLONE, "--low-level-retries", "1", "--retries", "1", *args],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout


def test_rclone_reads_what_koofrfs_wrote(
    kfs: KoofrFileSystem, koofr_emulator: KoofrEmulator, tmp_path: Path
) -> None:
    data = os.urandom(300_000)
    kfs.pipe_file("x/odd name+%.bin", data, modified=MTIME)
    listing = json.loads(rclone(koofr_emulator, tmp_path, "lsjson", "--hash", "emu:x"))
    assert [(e["Name"], e["Size"]) for e in listing] == [("odd name+%.bin", len(data))]
    assert listing[0]["ModTime"].startswith("2021-03-04T05:06:07.123")
    assert listing[0]["Hashes"]["md5"] == kfs.info("x/odd name+%.bin")["md5"]
    ranged = rclone(
        koofr_emulator, tmp_path, "cat", "--offset", "10", "--count", "20", "emu:x/odd name+%.bin"
    )
    assert ranged == data[10:30]
    rclone(koofr_emulator, tmp_path, "copyto", "emu:x/odd name+%.bin", str(tmp_path / "o.bin"))
    assert (tmp_path / "o.bin").read_bytes() == data


def test_koofrfs_reads_what_rclone_wrote(
    kfs: KoofrFileSystem, koofr_emulator: KoofrEmulator, tmp_path: Path
) -> None:
    local = tmp_path / "src"
    (local / "sub").mkdir(parents=True)
    (local / "sub" / "b.bin").write_bytes(b"b" * 5000)
    os.utime(local / "sub" / "b.bin", ns=(MTIME * 1_000_000 + 999, MTIME * 1_000_000 + 999))
    rclone(koofr_emulator, tmp_path, "copy", str(local), "emu:backup")
    info = kfs.info("backup/sub/b.bin")
    assert info["size"] == 5000 and info["modified"] == MTIME
    assert kfs.cat_file("backup/sub/b.bin", 4990) == b"b" * 10
