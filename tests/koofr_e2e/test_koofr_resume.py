"""A backup of a Koofr folder that dies is resumed without downloading again what it stored.

The killed run journaled its finished batches in the store (`runs/`); the next run finds the
run dead (its lock went with its process) and reuses those entries like a parent snapshot's.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

from kloset.backup.journal import list_runs, read_run
from kloset.locations import open_storage
from kloset.repository import Repository
from koofr_emulator.sample import write_file

from .conftest import FAST_KDF, PASSPHRASE, KoofrWorld, assert_same_files, needs_rclone

pytestmark = [needs_rclone]

MiB = 1024 * 1024
BASE_MS = 1_690_000_000_000


def test_a_killed_koofr_backup_resumes_without_downloading_stored_files(
    world: KoofrWorld,
) -> None:
    rnd = random.Random(5)
    local = world.tmp / "expected"
    for i in range(96):  # 96 MiB: two batches of the CLI's 64 MiB
        rel = f"d{i % 4}/f{i:03d}.bin"
        data = rnd.randbytes(MiB)
        write_file(world.emu.store, f"/src/{rel}", data, BASE_MS + i * 1000)
        (local / rel).parent.mkdir(parents=True, exist_ok=True)
        (local / rel).write_bytes(data)
        ns = (BASE_MS + i * 1000) * 1_000_000
        os.utime(local / rel, ns=(ns, ns))
    world.add_rclone_remote("koofr")
    world.import_remote("source", "koofr")
    store = world.tmp / "store"
    world.ok("at", store, "create", *FAST_KDF)

    proc = subprocess.Popen(
        [sys.executable, "-m", "kloset.cli.main", "at", str(store), "backup", "@koofr:/src"],
        env=world.env,
        cwd=world.tmp,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not any((store / "runs").glob("*/journal-?????")):  # a batch stored and journaled
        assert proc.poll() is None and time.monotonic() < deadline, "no batch was stored"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)

    repo = Repository.open(open_storage(str(store)), PASSPHRASE)
    (run,) = list_runs(repo)
    stored = {row[1] for doc in read_run(repo, run).values() for row in doc["files"]}
    assert 0 < len(stored) < 96

    world.downloads.clear()
    world.ok("at", store, "backup", "@koofr:/src")
    fetched = {d.path.removeprefix("/src/") for d in world.downloads.entries}
    assert fetched, "the resumed run downloaded nothing at all?"
    assert not fetched & stored, f"downloaded again: {sorted(fetched & stored)[:5]}"
    assert len(fetched) <= 96 - len(stored)
    world.ok("at", store, "restore", "--to", "out", "latest")
    assert_same_files(local, world.tmp / "out")
    assert "no errors" in world.ok("at", store, "check")
    assert not (store / "runs").exists() or not any((store / "runs").iterdir())
    left = subprocess.run(["pgrep", "-af", str(store)], capture_output=True, text=True).stdout
    assert [line for line in left.splitlines() if "pgrep" not in line] == []
