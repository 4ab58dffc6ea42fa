"""Store lifecycle with Koofr in the loop: sync a local store off-site to Koofr, and several
writers sharing one store on Koofr (where locks cannot rely on an atomic rename)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import FAST_KDF, KoofrWorld, assert_same_files, needs_rclone

pytestmark = [needs_rclone, pytest.mark.slow]

MiB = 1024 * 1024
OTHER = {"KLOSET_TO_PASSPHRASE": "another passphrase"}


def koofr_bytes(world: KoofrWorld, folder: str) -> int:
    """Bytes stored under a Koofr folder, as the emulator holds them."""
    total = 0
    for entry in world.emu.store.list(folder):
        path = f"{folder}/{entry.name}"
        total += koofr_bytes(world, path) if entry.is_dir else entry.size
    return total


def write_tree(root: Path, seed: int, files: int, size: int) -> None:
    rnd = random.Random(seed)
    for i in range(files):
        path = root / f"d{i % 4}" / f"f{i:03d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rnd.randbytes(size))


def snapshot_ids(world: KoofrWorld, store: str) -> list[str]:
    return [s["id"] for s in json.loads(world.ok("at", store, "ls", "--json"))]


def test_sync_local_store_to_koofr(world: KoofrWorld) -> None:
    """The off-site copy: only missing data crosses, with the same keys or re-encrypted, and
    what lands in Koofr checks clean and restores."""
    world.add_rclone_remote("vault")
    world.import_remote("store", "vault")
    data = world.tmp / "data"
    write_tree(data, 1, 24, 200_000)
    world.ok("at", "local", "create", *FAST_KDF)
    world.ok("at", "local", "backup", "data")
    offsite = "@vault:/Offsite"
    out = world.ok("at", "local", "sync", "--to", offsite, "--create", **OTHER)
    assert "1 copied" in out and "sealed blobs copied as-is" in out
    first = koofr_bytes(world, "/Offsite")
    local_first = sum(p.stat().st_size for p in (world.tmp / "local").rglob("*") if p.is_file())
    assert first <= local_first + 64 * 1024, (first, local_first)

    (data / "d0" / "f000.bin").write_bytes(b"changed" * 1000)
    (data / "new.txt").write_text("new file\n")
    world.ok("at", "local", "backup", "data")
    out = world.ok("at", "local", "sync", "--to", offsite, **OTHER)
    assert "1 copied, 1 already there" in out
    grown = koofr_bytes(world, "/Offsite") - first
    assert grown < 256 * 1024, grown  # one small file and the trees, not the whole tree again
    ids = [s["id"] for s in json.loads(world.ok("at", offsite, "ls", "--json", **_as_dst()))]
    assert ids == snapshot_ids(world, "local")
    assert "no errors" in world.ok("at", offsite, "check", "--read-data", **_as_dst())
    world.ok("at", offsite, "restore", "-to", "from-koofr", "latest", **_as_dst())
    assert_same_files(data, world.tmp / "from-koofr")

    # A store on Koofr with keys of its own: blobs are re-encrypted, dedup still holds.
    world.ok("at", "@vault:/Other", "create", *FAST_KDF, **_as_dst())
    out = world.ok("at", "local", "sync", "--to", "@vault:/Other", **OTHER)
    assert "2 copied" in out and "re-encoded for the destination" in out
    assert koofr_bytes(world, "/Other") < 1.1 * koofr_bytes(world, "/Offsite")
    world.ok("at", "@vault:/Other", "restore", "-to", "other", "latest", **_as_dst())
    assert_same_files(data, world.tmp / "other")


def _as_dst() -> dict[str, str]:
    """Open a destination store with its own passphrase."""
    return {"KLOSET_PASSPHRASE": OTHER["KLOSET_TO_PASSPHRASE"]}


def test_concurrent_backups_and_a_waiting_prune_on_koofr(world: KoofrWorld) -> None:
    """Two backups into one store on Koofr at the same time, and a prune that waits for them:
    all succeed, both snapshots restore, and the store checks clean."""
    world.add_rclone_remote("vault")
    world.import_remote("store", "vault")
    store = "@vault:/Shared"
    world.ok("at", store, "create", *FAST_KDF)
    for name, seed in (("alpha", 2), ("beta", 3)):
        write_tree(world.tmp / name, seed, 16, 300_000)
    write_tree(world.tmp / "alpha" / "common", 9, 4, 300_000)  # shared by both sources
    write_tree(world.tmp / "beta" / "common", 9, 4, 300_000)

    def spawn(*argv: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "kloset.cli.main", *argv],
            env=world.env,
            cwd=world.tmp,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    backups = [spawn("at", store, "backup", name) for name in ("alpha", "beta")]
    deadline = time.monotonic() + 60
    while not world.emu.store.list("/Shared/locks") and time.monotonic() < deadline:
        time.sleep(0.01)  # prune starts once a backup holds its lock, so it has to wait
    prune = spawn("at", store, "prune", "--grace", "0", "--lock-wait", "120")
    for proc in [*backups, prune]:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, f"{proc.args} -> {proc.returncode}\n{err}"
        assert "Traceback" not in err
    assert len(snapshot_ids(world, store)) == 2
    assert "no errors" in world.ok("at", store, "check", "--read-data")
    for name in ("alpha", "beta"):
        snap = next(
            s["id"]
            for s in json.loads(world.ok("at", store, "ls", "--json"))
            if s["source"].endswith(name)
        )
        world.ok("at", store, "restore", "-to", f"restored-{name}", snap)
        assert_same_files(world.tmp / name, world.tmp / f"restored-{name}")
    assert world.emu.store.list("/Shared/locks") == []
