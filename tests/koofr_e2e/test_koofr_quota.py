"""Koofr's quota: a restore or sync that cannot fit is refused before anything is written, and
prune says that what it deletes waits in Koofr's trash (which the emulator counts against it)."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import json_doc

from koofr_emulator.sample import write_file

from .conftest import FAST_KDF, PASSPHRASE, KoofrWorld, make_world, needs_rclone, one_error_line

pytestmark = [needs_rclone, pytest.mark.slow]

MiB = 2**20


@pytest.fixture
def small(tmp_path: Path) -> Iterator[KoofrWorld]:
    """A Koofr account with 5 MiB of space, imported for every role."""
    with make_world(tmp_path, space_total_mib=5) as w:
        w.add_rclone_remote("koofr")
        w.import_remote("source", "koofr")
        yield w


def test_restore_and_sync_that_cannot_fit_write_nothing(small: KoofrWorld) -> None:
    world, emu = small, small.emu
    src = world.tmp / "src"
    src.mkdir()
    rnd = random.Random(1)
    for i in range(3):
        (src / f"f{i}.bin").write_bytes(rnd.randbytes(MiB + 1000))
    world.ok("at", "store", "create", *FAST_KDF)
    world.ok("at", "store", "backup", "src")
    # 2.5 MiB deleted earlier: gone from the folder, still in Koofr's trash and its quota.
    write_file(emu.store, "/old.bin", b"x" * (5 * MiB // 2))
    emu.store.remove("/old.bin")
    emu.reset_counters()
    res = world.kloset("at", "store", "restore", "-to", "@koofr:/restored", "latest")
    assert res.returncode == 2, res.stderr
    line = one_error_line(res.stderr)
    assert line == (
        "kloset: error: not enough space on @koofr:/restored: the restore adds 3.0 MiB but "
        "Koofr reports 2.0 MiB free (1.0 MiB missing); another 2.5 MiB of deleted files wait "
        "in Koofr's trash, counted against the quota until it is emptied (in the Koofr web "
        "app); nothing was written"
    ), line
    assert emu.counters["files/put"] == emu.counters["files/folder"] == 0
    assert emu.store.list("/") == []

    res = world.kloset(
        "at", "store", "sync", "--to", "@koofr:/copy", "--create", KLOSET_TO_PASSPHRASE=PASSPHRASE
    )
    assert res.returncode == 2, res.stderr
    created, line = res.stderr.splitlines()  # --create made the (empty) store first
    assert created.startswith("kloset: created store ") and "Traceback" not in res.stderr
    assert "not enough space on koofr://copy: the sync sends 3.0 MiB but" in line, line
    assert "nothing was written" in line
    assert [e.name for e in emu.store.list("/copy/packs")] == []

    emu.empty_trash()  # what the user does in the Koofr web app; then it fits
    out = world.ok("at", "store", "restore", "-to", "@koofr:/restored", "latest")
    assert "restored 3 files" in out


def test_prune_on_a_koofr_store_points_at_the_trash(small: KoofrWorld) -> None:
    world, emu = small, small.emu
    store = "@koofr:/vault"
    data = world.tmp / "data"
    data.mkdir()
    (data / "big.bin").write_bytes(os.urandom(MiB))
    world.ok("at", store, "create", *FAST_KDF)
    first = json_doc(world.ok("at", store, "backup", "--json", "data"))["snapshot"]
    (data / "big.bin").write_bytes(os.urandom(MiB))
    world.ok("at", store, "backup", "data")
    world.ok("at", store, "rm", first)
    res = world.kloset("at", store, "prune", "--grace", "0")
    assert res.returncode == 0, res.stderr
    line = one_error_line(res.stderr)
    assert line.startswith(
        "kloset: note: Koofr keeps deleted files in its trash for 30 days, and they may count "
        "against the quota until then: "
    ), line
    assert line.endswith(
        " MiB of this mount's deleted files are there now (empty the trash in the Koofr web "
        "app to free the space at once)"
    ), line
    assert sum(i["size"] for i in emu.store.trash_items()) >= MiB  # the emulator agrees
