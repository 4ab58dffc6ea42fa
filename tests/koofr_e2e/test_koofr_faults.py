"""Flaky and failing Koofr: retries make runs succeed; permanent failure is one clear line.

Random faults come from the emulator's seeded RNG (``FAULT_SEED``), so a failure reproduces;
deterministic ``count`` rules make sure the interesting cases (a download cut mid-body, an
upload dropped half-way) happen in every run, whatever the dice say.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
from helpers import json_doc

from koofr_emulator import FaultRule
from koofr_emulator.sample import write_file

from .conftest import FAST_KDF, KoofrWorld, assert_same_files, needs_rclone, one_error_line

pytestmark = [needs_rclone, pytest.mark.slow]

MiB = 1024 * 1024
BASE_MS = 1_690_000_000_000


def seed_tree(world: KoofrWorld, top: str, count: int = 120) -> dict[str, tuple[bytes, int]]:
    """Small files in a few folders plus one multi-chunk file, written into the emulator."""
    rnd = random.Random(17)
    files = {f"d{i % 6}/f{i:03d}.bin": rnd.randbytes(rnd.randint(0, 30_000)) for i in range(count)}
    files["big/large.bin"] = rnd.randbytes(5 * MiB + 321)
    out = {}
    for i, (rel, data) in enumerate(sorted(files.items())):
        write_file(world.emu.store, f"/{top}/{rel}", data, BASE_MS + i * 1001)
        out[rel] = (data, BASE_MS + i * 1001)
    return out


def write_local(root: Path, files: dict[str, tuple[bytes, int]]) -> None:
    """The same files on local disk, mtimes included, to compare restores against."""
    for rel, (data, ms) in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, ns=(ms * 1_000_000, ms * 1_000_000))


def setup_remotes(world: KoofrWorld) -> None:
    world.add_rclone_remote("koofr")
    world.import_remote("source", "koofr")
    world.import_remote("destination", "koofr", via="dump")


def fired(world: KoofrWorld) -> list[int]:
    """How often each rule actually fired, in the order added (no test passes on a quiet run)."""
    return [int(rule["fired"]) for rule in world.emu.fault_rules]


def flaky(world: KoofrWorld) -> None:
    """~10% of requests get 429 or 503 (with Retry-After), ~3% lose their connection."""
    emu = world.emu
    emu.add_fault(FaultRule(kind="drop", count=1, route="files/get", path_regex="large"))
    emu.add_fault(FaultRule(kind="drop", count=1, route="files/put", path_regex="/big$"))
    emu.add_fault(FaultRule(kind="status", status=429, rate=0.05, retry_after=1))
    emu.add_fault(FaultRule(kind="status", status=503, rate=0.05, retry_after=1))
    emu.add_fault(FaultRule(kind="drop", rate=0.03))


def test_backup_and_restore_survive_flaky_koofr(world: KoofrWorld) -> None:
    files = seed_tree(world, "flaky")
    setup_remotes(world)
    world.ok("at", "store", "create", *FAST_KDF)

    flaky(world)
    summary = json_doc(world.ok("at", "store", "backup", "--json", "@koofr:/flaky"))
    assert summary["errors"] == [] and summary["files"] == len(files)
    out = world.ok("at", "store", "restore", "-to", "@koofr:/flaky-restored", "latest")
    assert f"restored {len(files)} files" in out and ", 0 errors" in out
    hits = fired(world)
    world.emu.clear_faults()
    # The big download was cut mid-body and its upload dropped half-way; both recovered.
    assert hits[:2] == [1, 1] and all(hits[2:]), hits

    before, after = world.lsjson("koofr:flaky"), world.lsjson("koofr:flaky-restored")
    assert sorted(after) == sorted(before) == sorted(files)
    for rel, entry in before.items():
        assert after[rel]["Hashes"] == entry["Hashes"] and after[rel]["ModTime"] == entry["ModTime"]
    world.rclone("check", "koofr:flaky", "koofr:flaky-restored")
    write_local(world.tmp / "expected", files)
    world.ok("at", "store", "restore", "-to", "local", "latest")
    assert_same_files(world.tmp / "expected", world.tmp / "local")


def test_permanent_failure_of_source_or_destination(world: KoofrWorld) -> None:
    files = seed_tree(world, "src", count=12)
    setup_remotes(world)
    world.ok("at", "store", "create", *FAST_KDF)
    good = json_doc(world.ok("at", "store", "backup", "--json", "@koofr:/src"))
    write_file(world.emu.store, "/src/d0/f000.bin", b"changed since", BASE_MS + 5)

    # Koofr answers 503 to everything about the source: nothing to back up, one line.
    rule = world.emu.add_fault(FaultRule(kind="status", status=503, rate=1.0, path_regex="^/src"))
    res = world.kloset("at", "store", "backup", "@koofr:/src")
    assert res.returncode != 0
    line = one_error_line(res.stderr)
    assert "@koofr:/src" in line and "503" in line and "after 8 attempts" in line, line

    # Only one file's download keeps failing: the others are saved, that path is named.
    world.emu.remove_fault(rule)
    world.emu.add_fault(
        FaultRule(kind="status", status=503, rate=1.0, route="files/get", path_regex="f000")
    )
    res = world.kloset("at", "store", "backup", "@koofr:/src")
    assert res.returncode == 7, res.stderr
    line = one_error_line(res.stderr)
    assert line.startswith("kloset: /d0/f000.bin: cannot read:") and "503" in line, line

    # Restore to a Koofr folder that answers 503 to everything: one line, nothing half-done.
    world.emu.clear_faults()
    world.emu.add_fault(FaultRule(kind="status", status=503, rate=1.0, path_regex="^/dst"))
    res = world.kloset("at", "store", "restore", "-to", "@koofr:/dst", good["snapshot"])
    assert res.returncode != 0
    line = one_error_line(res.stderr)
    assert "@koofr:/dst" in line and "503" in line, line

    world.emu.clear_faults()
    assert "no errors" in world.ok("at", "store", "check", "--read-data")
    world.ok("at", "store", "restore", "-to", "again", good["snapshot"])
    write_local(world.tmp / "expected", files)
    assert_same_files(world.tmp / "expected", world.tmp / "again")


def test_permanent_failure_of_store_on_koofr(world: KoofrWorld) -> None:
    store = "@koofr:/kloset"
    world.add_rclone_remote("koofr")
    world.import_remote("store", "koofr")
    data = world.tmp / "data"
    first = {"a.txt": (b"first version\n", BASE_MS), "b.bin": (random.randbytes(300_000), BASE_MS)}
    write_local(data, first)
    world.ok("at", store, "create", *FAST_KDF)
    good = json_doc(world.ok("at", store, "backup", "--json", "data"))

    # New data cannot be uploaded: packs fail permanently mid-run, after the lock was taken.
    (data / "c.bin").write_bytes(random.randbytes(200_000))
    world.emu.add_fault(
        FaultRule(kind="status", status=503, rate=1.0, route="files/put", path_regex="/packs/")
    )
    res = world.kloset("at", store, "backup", "data")
    assert res.returncode != 0
    line = one_error_line(res.stderr)
    assert "POST /kloset/packs/" in line and "503" in line and "after 8 attempts" in line, line

    # The index folder cannot be listed: that is the error, not "no index, data lost".
    world.emu.clear_faults()
    world.emu.add_fault(FaultRule(kind="status", status=503, rate=1.0, path_regex="^/kloset/index"))
    for verb in (("backup", "data"), ("check",), ("prune", "--grace", "0")):
        res = world.kloset("at", store, *verb)
        assert res.returncode != 0
        line = one_error_line(res.stderr)
        assert "GET /kloset/index failed after 8 attempts: 503" in line, (verb, line)

    # The whole store is unreachable: one line, whatever the verb.
    world.emu.clear_faults()
    world.emu.add_fault(FaultRule(kind="status", status=503, rate=1.0, path_regex="^/kloset"))
    for verb in (("ls",), ("check",), ("restore", "-to", "x", "latest")):
        res = world.kloset("at", store, *verb)
        assert res.returncode != 0
        assert "503" in one_error_line(res.stderr)

    # Afterwards: consistent, unlocked, the earlier snapshot is the latest and restores whole.
    world.emu.clear_faults()
    assert world.emu.store.list("/kloset/locks") == []
    assert "no errors" in world.ok("at", store, "check", "--read-data")
    snaps = json.loads(world.ok("at", store, "ls", "--json"))
    assert [s["id"] for s in snaps] == [good["snapshot"]]
    world.ok("at", store, "restore", "-to", "restored", "latest")
    write_local(world.tmp / "expected", first)
    assert_same_files(world.tmp / "expected", world.tmp / "restored")
    world.ok("at", store, "backup", "data")  # and the store takes new backups again
