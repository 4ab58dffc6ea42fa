"""repair index (rebuild from pack headers, lost data reported file by file) and passphrase
change (rewrap only)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from lifecycle_helpers import (
    PASS,
    RandomKiller,
    assert_check_ok,
    kloset,
    new_store,
    open_store,
    pack_sizes,
    restore_to,
    snapshot_ids,
    spawn,
    time_locked_work,
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


def _opens_with(store: Path, passphrase: str) -> bool:
    try:
        open_store(store, passphrase)
    except WrongPassphrase:
        return False
    return True


def test_half_written_config_falls_back_to_the_staged_one(store: Path, tmp_path: Path) -> None:
    """A backend without atomic uploads may keep half of CONFIG if the change dies there:
    the staged CONFIG.new, proved to unwrap to the same keys, opens the store."""
    new_file = tmp_path / "new-pass"
    new_file.write_text("new words\n")
    kloset("at", str(store), "passphrase", "change", "--new-passphrase-file", str(new_file))
    config = (store / "CONFIG").read_bytes()
    (store / "CONFIG.new").write_bytes(config)
    (store / "CONFIG").write_bytes(config[: len(config) // 2])
    repo = open_store(store, "new words")
    assert repo.config.store_id == open_store(store, "new words").config.store_id
    failed = kloset("at", str(store), "ls", check=False)  # the old passphrase: one clear line
    assert failed.returncode != 0 and "Traceback" not in failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1
    # Changing again from the staged config mends CONFIG and removes CONFIG.new.
    again = tmp_path / "again"
    again.write_text("third words\n")
    kloset(
        "at", str(store), "passphrase", "change", "--new-passphrase-file", str(again),
        KLOSET_PASSPHRASE="new words",
    )  # fmt: skip
    assert not (store / "CONFIG.new").exists()
    assert _opens_with(store, "third words") and not _opens_with(store, "new words")
    kloset("at", str(store), "check", "--read-data", KLOSET_PASSPHRASE="third words")


def test_staged_config_of_another_store_is_ignored(store: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    new_store(other, "other words")
    (store / "CONFIG.new").write_bytes((other / "CONFIG").read_bytes())
    with pytest.raises(WrongPassphrase):
        open_store(store, "other words")


def test_kill_passphrase_change_loop(store: Path, source: Path, tmp_path: Path) -> None:
    """SIGKILL at random points of `passphrase change`, 20 times in a row: the store always
    opens with the old or the new passphrase, always passes check, and never loses a snapshot."""
    (snap,) = snapshot_ids(kloset("at", str(store), "backup", str(source)).stdout)

    def change(rounds: int, current: str) -> tuple[str, subprocess.Popen[str]]:
        secret = tmp_path / f"pass-{rounds}"
        secret.write_text(f"words {rounds}")
        args = ("at", str(store), "passphrase", "change", "--new-passphrase-file", str(secret))
        return f"words {rounds}", spawn(*args, KLOSET_PASSPHRASE=current)

    current, proc = change(0, PASS)
    killer = RandomKiller(6, time_locked_work(proc, store))
    rounds = 0
    while killer.kills < 20 and rounds < 60:
        rounds += 1
        new, proc = change(rounds, current)
        killer.run(proc, store)
        opens = [p for p in (new, current) if _opens_with(store, p)]
        assert opens, f"round {rounds}: neither passphrase opens the store"
        current = opens[0]
        assert open_store(store, current).resolve_snapshot(snap).hex == snap
        kloset("at", str(store), "unlock", KLOSET_PASSPHRASE=current)
    assert killer.kills >= 20
    kloset("at", str(store), "check", KLOSET_PASSPHRASE=current)
