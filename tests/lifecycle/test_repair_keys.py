"""repair index (rebuild from pack headers, lost data reported file by file) and passphrase
change (rewrap only)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from lifecycle_helpers import (
    PASS,
    assert_check_ok,
    kloset,
    open_store,
    pack_sizes,
    restore_to,
    snapshot_ids,
    tree_digest,
)

from kloset.errors import CorruptObject, WrongPassphrase
from kloset.repair import find_damage, rebuild_index
from kloset.vfs import SnapshotView


def test_rebuild_lost_and_damaged_index(store: Path, source: Path, tmp_path: Path) -> None:
    (snap,) = snapshot_ids(kloset("at", str(store), "backup", str(source)).stdout)
    index_files = sorted((store / "index").iterdir())
    index_files[0].write_bytes(b"\0" * 100)  # damaged
    for extra in index_files[1:]:
        extra.unlink()  # lost
    with pytest.raises(CorruptObject):
        open_store(store).index  # noqa: B018
    out = kloset("at", str(store), "repair", "index")
    assert "indexed" in out.stdout
    assert sorted(p.name for p in (store / "index").iterdir()) != [index_files[0].name]
    assert_check_ok(store, read_data=True)
    assert restore_to(store, snap, tmp_path / "r") == tree_digest(source)


def test_lost_pack_is_reported_file_by_file(store: Path, source: Path) -> None:
    (snap,) = snapshot_ids(kloset("at", str(store), "backup", str(source)).stdout)
    repo = open_store(store)
    view = SnapshotView(repo, repo.resolve_snapshot(snap))
    victim = sorted(pack_sizes(store), key=lambda n: -pack_sizes(store)[n])[0]
    pid = bytes.fromhex(victim.rsplit("/", 1)[1])
    expected = {
        path
        for path, entry in view.walk("/")
        if entry.is_file and any(repo.index.get(c).pack_id == pid for c in entry.chunks)
    }
    assert expected
    os.unlink(store / victim)
    dry = rebuild_index(open_store(store), dry_run=True)
    assert {d.path for d in dry.damage} == expected
    proc = kloset("at", str(store), "repair", "index", check=False)
    assert proc.returncode == 6  # CheckFailed: the store is consistent again, data is lost
    lines = [line for line in proc.stderr.splitlines() if "lost in snapshot" in line]
    reported = {re.search(r"lost in snapshot [0-9a-f]{12}: (.*?): ", line)[1] for line in lines}
    assert reported == expected
    assert {d.path for d in find_damage(open_store(store))} == expected


def test_passphrase_change_rewraps_only(store: Path, source: Path, tmp_path: Path) -> None:
    (snap,) = snapshot_ids(kloset("at", str(store), "backup", str(source)).stdout)
    packs = pack_sizes(store)
    new_file = tmp_path / "new-pass"
    new_file.write_text("a much better passphrase\n")
    out = kloset("at", str(store), "passphrase", "change", "--new-passphrase-file", str(new_file))
    assert "passphrase changed" in out.stdout
    assert pack_sizes(store) == packs and not (store / "CONFIG.new").exists()
    with pytest.raises(WrongPassphrase):
        open_store(store, PASS)
    repo = open_store(store, "a much better passphrase")
    assert repo.resolve_snapshot(snap).hex == snap
    failed = kloset("at", str(store), "ls", check=False)
    assert failed.returncode == 3 and "wrong passphrase" in failed.stderr
    env = {"KLOSET_PASSPHRASE": "a much better passphrase"}
    assert snap[:8] in kloset("at", str(store), "ls", **env).stdout
