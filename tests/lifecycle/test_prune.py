"""Prune: retention + real space reclaim (repack), grace period, crash safety, concurrency."""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from pathlib import Path

import pytest
from lifecycle_helpers import (
    MB,
    RandomKiller,
    assert_check_ok,
    evolve,
    kloset,
    new_store,
    open_store,
    pack_sizes,
    restore_to,
    snapshot_ids,
    spawn,
    store_bytes,
    time_locked_work,
    tree_digest,
    write_tree,
)

from kloset.backup.batch import back_up_batch
from kloset.backup.commit import commit_snapshot
from kloset.backup.plan import BackupOptions, enumerate_source, load_batches
from kloset.errors import KlosetError
from kloset.locations import open_source
from kloset.locks import read_locks, store_lock
from kloset.pack import BLOB_DATA, PackWriter
from kloset.prune import PruneOptions, prune
from kloset.retention import RetentionPolicy


def build_history(store: Path, src: Path, states: Path, versions: int = 4) -> list[str]:
    """Back up `versions` states of `src`; keep a copy of each state for comparisons."""
    rng = random.Random(77)
    ids = []
    for step in range(versions):
        if step:
            evolve(src, rng, step)
        shutil.copytree(src, states / f"v{step}", symlinks=True)
        ids += snapshot_ids(kloset("at", str(store), "backup", str(src)).stdout)
    return ids


def fresh_size(tmp: Path, states: list[Path]) -> int:
    """What a brand-new store holding exactly these states occupies."""
    fresh = tmp / "fresh"
    new_store(fresh)
    work = tmp / "fresh-src"
    for state in states:
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(state, work, symlinks=True)
        kloset("at", str(fresh), "backup", str(work))
    return store_bytes(fresh)


@pytest.fixture(scope="module")
def pristine_history(corpus: Path, tmp_path_factory: pytest.TempPathFactory):
    """Four backups of an evolving source, built once per module (tests work on copies)."""
    base = tmp_path_factory.mktemp("history")
    store, src = base / "store", base / "src"
    new_store(store)
    shutil.copytree(corpus, src, symlinks=True)
    ids = build_history(store, src, base / "states")
    return store, base / "states", ids


@pytest.fixture
def history(pristine_history, tmp_path: Path) -> tuple[Path, Path, list[str]]:
    store, states, ids = pristine_history
    work = tmp_path / "history-store"
    shutil.copytree(store, work)
    return work, states, ids


def test_prune_shrinks_to_a_fresh_backup_of_what_is_kept(history, tmp_path: Path) -> None:
    store, states, ids = history
    before = store_bytes(store)
    dry = json.loads(
        kloset(
            "at", str(store), "prune", "--keep-last", "2", "--grace", "0", "--dry-run", "--json"
        ).stdout
    )
    assert store_bytes(store) == before and len(open_store(store).list_snapshots()) == 4
    assert [s["id"] for s in dry["removed"]] == [ids[1], ids[0]]
    real = json.loads(
        kloset("at", str(store), "prune", "--keep-last", "2", "--grace", "0", "--json").stdout
    )
    assert (real["packs_deleted"], real["packs_repacked"]) == (
        dry["packs_deleted"],
        dry["packs_repacked"],
    )
    assert real["packs_repacked"] > 0  # partly used packs exist and are rewritten
    after = store_bytes(store)
    assert abs((before - after) - real["bytes_reclaimed"]) < 0.02 * before
    assert abs(dry["bytes_reclaimed"] - real["bytes_reclaimed"]) < 0.02 * before
    assert {h.hex for h in open_store(store).list_snapshots()} == set(ids[2:])
    assert_check_ok(store, read_data=True)
    for i in (2, 3):
        assert restore_to(store, ids[i], tmp_path / f"r{i}") == tree_digest(states / f"v{i}")
    fresh = fresh_size(tmp_path, [states / "v2", states / "v3"])
    ratio = after / fresh
    print(
        f"\nprune: store {before / MB:.1f} -> {after / MB:.1f} MiB; fresh {fresh / MB:.1f} MiB; "
        f"ratio {ratio:.3f}"
    )
    assert ratio <= 1.10
    # A second prune finds nothing left to do.
    again = prune(open_store(store), PruneOptions(grace_minutes=0))
    assert again.packs_deleted == again.packs_repacked == 0


def test_grace_period_and_leftovers(store: Path, source: Path) -> None:
    """Unreferenced packs, spool directories and partial writes go only once they are older
    than the grace period: younger ones may belong to a backup that is running right now."""
    kloset("at", str(store), "backup", str(source))
    repo = open_store(store)
    writer = PackWriter(repo.cipher, str(store / "tmp"), 3)
    writer.add(BLOB_DATA, b"\x01" * 32, os.urandom(100_000))  # nothing references this blob
    sealed = writer.seal()
    repo.storage.put_local_file(sealed.path, sealed.name, move=True)
    orphan = store / sealed.name
    garbage = store / "packs" / "ab" / ("ab" + "0" * 62)  # a pack name, but no pack inside
    garbage.parent.mkdir(exist_ok=True)
    garbage.write_bytes(b"half an upload")
    spool_dir = store / "tmp" / "run-1-dead"
    spool_dir.mkdir(parents=True)
    (spool_dir / "plan").write_bytes(b"x" * 1000)
    partial = store / "index" / "abc.tmp-1234"
    partial.write_bytes(b"partial")
    leftovers = (orphan, garbage, spool_dir, spool_dir / "plan", partial)

    young = prune(open_store(store), PruneOptions())
    assert all(p.exists() for p in leftovers)
    assert young.packs_deleted == 0 and young.packs_young == young.packs_before
    old = time.time() - 2 * 3600
    for path in leftovers:
        os.utime(path, (old, old))
    dry = prune(open_store(store), PruneOptions(dry_run=True))
    assert all(p.exists() for p in leftovers) and dry.packs_deleted == 2
    aged = prune(open_store(store), PruneOptions())
    assert not any(p.exists() for p in leftovers)
    assert aged.packs_deleted == 2 and aged.tmp_removed == 2
    assert_check_ok(store, read_data=True)


def test_duplicates_from_concurrent_runs_are_reclaimed_without_policy(
    store: Path, source: Path
) -> None:
    """Two runs interleaved batch by batch store the same chunks twice (neither saw the other's
    index in time); prune without --keep-* drops one copy and keeps both snapshots."""
    src = open_source(str(source))
    runs = []
    for _ in range(2):
        repo = open_store(store)
        plan = enumerate_source(repo, src, str(store / "tmp"), BackupOptions(batch_bytes=8 * MB))
        runs.append((repo, plan))
    for batch in range(runs[0][1].batches):
        for repo, plan in runs:
            back_up_batch(repo, src, plan.run, batch, load_batches(plan.run_dir)[batch])
    ids = [commit_snapshot(repo, plan.run_dir).snapshot_id for repo, plan in runs]
    before = store_bytes(store)
    report = prune(open_store(store), PruneOptions(grace_minutes=0))
    assert report.removed == [] and report.packs_deleted > 10
    after = store_bytes(store)
    assert after < 0.55 * before, (before, after)
    assert {h.hex for h in open_store(store).list_snapshots()} == set(ids)
    assert_check_ok(store, read_data=True)


def test_prune_refuses_when_used_data_is_missing(store: Path, source: Path) -> None:
    kloset("at", str(store), "backup", str(source))
    victim = sorted(pack_sizes(store))[0]
    os.unlink(store / victim)
    listing = sorted(p for p in store.rglob("*") if p.is_file())
    with pytest.raises(KlosetError, match="repair index"):
        prune(open_store(store), PruneOptions(grace_minutes=0, policy=RetentionPolicy(last=1)))
    assert sorted(p for p in store.rglob("*") if p.is_file()) == listing


def test_kill_prune_loop(history, tmp_path: Path) -> None:
    """SIGKILL at random points of a repacking prune: never a broken store, never a kept
    snapshot lost, and the next prune finishes the job."""
    store, states, ids = history
    pristine = tmp_path / "pristine"
    shutil.copytree(store, pristine)
    args = ("prune", "--keep-last", "2", "--grace", "0")
    calibration = tmp_path / "calibration"
    shutil.copytree(pristine, calibration)
    killer = RandomKiller(5, time_locked_work(spawn("at", str(calibration), *args), calibration))
    target = store_bytes(calibration)
    rounds = 0
    while killer.kills < 5 and rounds < 16:
        rounds += 1
        work = tmp_path / f"work{rounds}"
        shutil.copytree(pristine, work)
        killer.run(spawn("at", str(work), *args), work)
        assert_check_ok(work)
        present = {h.hex for h in open_store(work).list_snapshots()}
        assert set(ids[2:]) <= present
        kloset("at", str(work), *args)
        assert_check_ok(work, read_data=True)
        assert store_bytes(work) <= 1.02 * target
        shutil.rmtree(work)
    assert killer.kills >= 5
    assert restore_to(calibration, ids[3], tmp_path / "r") == tree_digest(states / "v3")


def test_concurrent_backups_and_a_waiting_prune(store: Path, source: Path, tmp_path: Path) -> None:
    """Three backups at once (two of the same folder, one of another sharing some data), and a
    prune started while they run: it waits for every shared lock, then reclaims the
    duplicates; nothing is corrupted and every snapshot restores."""
    other = tmp_path / "other"
    shutil.copytree(source / "d1", other / "d1")  # shared data with the first source
    write_tree(other / "own", random.Random(9), 8 * MB, prefix="o")
    # Our own shared lock stands for "a backup still running": the prune must wait for it.
    with store_lock(open_store(store), False, "test: slow backup") as ours:
        procs = [spawn("at", str(store), "backup", str(s)) for s in (source, source, other)]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(read_locks(open_store(store))) < 4:
            if any(p.poll() is not None for p in procs):
                break
            time.sleep(0.005)
        pruner = spawn(
            "at",
            str(store),
            "prune",
            "--grace",
            "0",
            "--keep-last",
            "5",
            "--lock-wait",
            "90",
            "--json",
        )
        outs = [p.communicate(timeout=120) for p in procs]
        assert all(p.returncode == 0 for p in procs), [e for _o, e in outs]
        time.sleep(0.3)
        assert pruner.poll() is None, "prune did not wait for a shared lock"
        assert ours is not None
    ids = [snapshot_ids(o)[0] for o, _e in outs]
    pout, perr = pruner.communicate(timeout=120)
    assert pruner.returncode == 0, perr
    seen = {s["id"] for s in json.loads(pout)["kept"]}
    assert set(ids) <= seen  # it ran after every backup had committed
    assert_check_ok(store, read_data=True)
    expected = {ids[0]: source, ids[1]: source, ids[2]: other}
    for n, (snap, src) in enumerate(expected.items()):
        assert restore_to(store, snap, tmp_path / f"r{n}") == tree_digest(src)


def test_small_packs_are_merged_once(store: Path, source: Path, tmp_path: Path) -> None:
    """Ten small incremental backups leave ten small tails; prune merges them into full packs,
    every snapshot still restores, and a second prune has nothing left to merge."""
    rng = random.Random(12)
    kloset("at", str(store), "backup", str(source))
    states, ids = {}, []
    for step in range(10):
        write_tree(source / f"day{step}", rng, 120_000, prefix=f"n{step}-")
        ids += snapshot_ids(kloset("at", str(store), "backup", str(source)).stdout)
        states[ids[-1]] = tree_digest(source)
    small = [n for n, size in pack_sizes(store).items() if size < MB // 4]
    assert len(small) >= 10
    kept = json.loads(
        kloset("at", str(store), "prune", "--grace", "0", "--no-repack-small", "--json").stdout
    )
    assert kept["packs_small"] == 0 and set(small) <= set(pack_sizes(store))
    report = json.loads(kloset("at", str(store), "prune", "--grace", "0", "--json").stdout)
    assert report["packs_small"] == len(small) and report["packs_deleted"] == 0
    after = [n for n, size in pack_sizes(store).items() if size < MB // 4]
    assert len(after) <= 1, after
    assert report["packs_written"] <= len(small) * MB // 4 // MB + 1
    assert_check_ok(store, read_data=True)
    for snap in (ids[0], ids[4], ids[-1]):
        assert restore_to(store, snap, tmp_path / snap[:8]) == states[snap]
    again = json.loads(kloset("at", str(store), "prune", "--grace", "0", "--json").stdout)
    assert again["packs_repacked"] == 0 and again["packs_written"] == 0
