"""A Kloset store kept on (emulated) Koofr: every verb works and packs are read by range."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
from helpers import json_doc

from .conftest import FAST_KDF, KoofrWorld, assert_same_files, needs_rclone

pytestmark = [needs_rclone, pytest.mark.slow]

MiB = 1024 * 1024
STORE = "@vault:/Backups/kloset"


def make_data(root: Path) -> dict[str, bytes]:
    rnd = random.Random(5)
    files = {
        "notes.txt": b"the small file cat must fetch by range\n",
        "photos/big.raw": rnd.randbytes(3 * MiB),  # several chunks, so packs hold real data
        "photos/thumb.jpg": rnd.randbytes(20_000),
        "docs/readme.md": b"# hello\n" * 50,
        "docs/empty": b"",
    }
    for i, (rel, data) in enumerate(sorted(files.items())):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        ns = 1_650_000_000_000_000_000 + i * 987_654_321
        os.utime(path, ns=(ns, ns))
    return files


def test_store_on_koofr_every_verb(world: KoofrWorld) -> None:
    world.add_rclone_remote("vault")
    res = world.kloset(
        "store", "import", "--rclone-config", world.rclone_conf, "--name", "vault", "--check"
    )
    assert res.returncode == 0 and "store @vault" in res.stdout, res.stderr

    data = world.tmp / "data"
    make_data(data)
    assert "created encrypted store" in world.ok("at", STORE, "create", *FAST_KDF)
    layout = {e.name for e in world.emu.store.list("/Backups/kloset")}
    assert {"CONFIG", "packs", "index", "snapshots"} <= layout
    again = world.kloset("at", STORE, "create", *FAST_KDF)
    assert again.returncode == 2 and "already" in again.stderr  # never clobbers a store

    first = json_doc(world.ok("at", STORE, "backup", "--json", "--tag", "one", "data"))
    (data / "docs" / "readme.md").write_bytes(b"# changed\n")
    (data / "new.txt").write_bytes(b"added later\n")
    second = json_doc(world.ok("at", STORE, "backup", "--json", "data"))
    assert second["parent"] == first["snapshot"] and second["files_read"] == 2

    snaps = json.loads(world.ok("at", STORE, "ls", "--json"))
    assert [s["id"] for s in snaps] == [first["snapshot"], second["snapshot"]]
    assert snaps[0]["tags"] == ["one"]
    listing = json.loads(world.ok("at", STORE, "ls", "--json", "latest:/photos"))
    assert sorted(e["name"] for e in listing) == ["big.raw", "thumb.jpg"]
    assert "photos/thumb.jpg" in world.ok("at", STORE, "find", "*.jpg")
    diff = world.ok("at", STORE, "diff", first["snapshot"][:12], second["snapshot"][:12])
    assert "+ /new.txt" in diff and "M /docs/readme.md" in diff
    assert "snapshots     2" in world.ok("at", STORE, "info")

    # cat of one small file: every pack read is a small ranged GET, never a whole pack.
    packs = {
        e.name: e.size
        for d in world.emu.store.list("/Backups/kloset/packs")
        for e in world.emu.store.list(f"/Backups/kloset/packs/{d.name}")
    }
    assert max(packs.values()) > 2 * MiB
    world.downloads.clear()
    res = world.kloset("at", STORE, "cat", "latest:/notes.txt")
    assert res.returncode == 0 and res.stdout == (data / "notes.txt").read_text()
    pack_reads = [d for d in world.downloads.entries if "/packs/" in d.path]
    assert pack_reads, "cat read no pack at all?"
    for d in pack_reads:
        assert d.range is not None and d.status == 206, d
        assert d.length < packs[d.path.rsplit("/", 1)[1]], d
    # notes.txt shares a pack with big.raw's chunks: its bytes came out of a > 2 MiB pack.
    assert any(d.length < 4096 and packs[d.path.rsplit("/", 1)[1]] > 2 * MiB for d in pack_reads)
    assert sum(d.length for d in pack_reads) < 64 * 1024

    world.ok("at", STORE, "restore", "-to", "restored", "latest")
    assert_same_files(data, world.tmp / "restored")
    world.ok("at", STORE, "restore", "-to", "first", f"{first['snapshot'][:8]}:/docs")
    assert (world.tmp / "first" / "readme.md").read_bytes() == b"# hello\n" * 50

    checked = world.ok("at", STORE, "check", "--read-data")
    assert "2 snapshots" in checked and "no errors" in checked

    # Forget the first snapshot and reclaim its space; the store stays whole.
    world.ok("at", STORE, "rm", first["snapshot"][:12])
    world.ok("at", STORE, "prune", "--grace", "0")
    assert "no errors" in world.ok("at", STORE, "check", "--read-data")
    world.ok("at", STORE, "restore", "-to", "after-prune", "latest")
    assert_same_files(data, world.tmp / "after-prune")
    assert world.emu.store.list("/Backups/kloset/locks") == []  # every verb released its lock
