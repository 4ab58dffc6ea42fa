"""Torn reads: a download whose bytes disagree with Koofr's listing is read again, then refused.

The emulator's ``corrupt`` fault answers a download completely and well-framed but with altered
bytes (what a file rewritten while it is read looks like); ``truncate`` sends half the body and
frames it as the whole (what a misbehaving proxy does). Neither is visible at the HTTP level, so
only the MD5 and size Koofr listed can tell.
"""

from __future__ import annotations

import json
import random

import pytest
from helpers import json_doc

from koofr_emulator import FaultRule
from koofr_emulator.sample import write_file

from .conftest import FAST_KDF, KoofrWorld, needs_rclone, one_error_line

pytestmark = [needs_rclone, pytest.mark.slow]

MiB = 1024 * 1024
BASE_MS = 1_690_000_000_000


def seed(world: KoofrWorld) -> dict[str, bytes]:
    rnd = random.Random(5)
    files = {
        "small-a.txt": rnd.randbytes(20_000),
        "small-b.txt": rnd.randbytes(30_000),
        "large.bin": rnd.randbytes(9 * MiB + 17),  # streamed, not prefetched, several chunks
    }
    for i, (name, data) in enumerate(sorted(files.items())):
        write_file(world.emu.store, f"/src/{name}", data, BASE_MS + i)
    world.add_rclone_remote("koofr")
    world.import_remote("source", "koofr")
    world.ok("at", "store", "create", *FAST_KDF)
    return files


def restored(world: KoofrWorld, snapshot: str, target: str) -> dict[str, bytes]:
    world.ok("at", "store", "restore", "-to", target, snapshot)
    return {p.name: p.read_bytes() for p in (world.tmp / target).iterdir()}


def test_a_torn_read_is_read_again(world: KoofrWorld) -> None:
    files = seed(world)
    emu = world.emu
    emu.add_fault(FaultRule(kind="corrupt", count=1, path_regex="small-a"))
    emu.add_fault(FaultRule(kind="corrupt", count=1, path_regex="large"))
    emu.add_fault(FaultRule(kind="truncate", count=1, path_regex="small-b"))
    summary = json_doc(world.ok("at", "store", "backup", "--json", "@koofr:/src"))
    assert [r["fired"] for r in emu.fault_rules] == [1, 1, 1]
    assert summary["errors"] == [] and summary["files"] == 3
    assert restored(world, summary["snapshot"], "out") == files


def test_a_file_torn_twice_is_a_snapshot_error(world: KoofrWorld) -> None:
    files = seed(world)
    world.emu.add_fault(FaultRule(kind="corrupt", rate=1.0, path_regex="large"))
    world.downloads.clear()
    res = world.kloset("at", "store", "backup", "--json", "@koofr:/src")
    assert res.returncode == 7, res.stderr
    error = json.loads(one_error_line(res.stderr))  # --json: restic's error lines on stderr
    line = error["error"]["message"]
    assert error["item"] == "/large.bin", error
    assert line.startswith("cannot read: @koofr:/src/large.bin: read "), line
    assert "but the listing says 9437201 bytes with MD5" in line and "read twice" in line, line
    # Read exactly twice (each a stream of ranged GETs from byte 0), then given up.
    gets = world.downloads.entries
    starts = [d for d in gets if "large" in d.path and (d.range or "").startswith("bytes=0-")]
    assert len(starts) == 2, gets
    summary = json_doc(res.stdout)
    assert summary["errors"] == [{"path": "/large.bin", "error": line}]
    # The snapshot holds the good files and no torn copy of the bad one.
    world.emu.clear_faults()
    got = restored(world, summary["snapshot"], "out")
    assert got == {k: v for k, v in files.items() if k != "large.bin"}
