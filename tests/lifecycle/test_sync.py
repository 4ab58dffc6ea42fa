"""sync: snapshots restore from the destination, which grows only by the data it lacked."""

from __future__ import annotations

import os
import random
import shutil
import time
from pathlib import Path

import pytest
from lifecycle_helpers import (
    MB,
    PASS,
    RandomKiller,
    assert_check_ok,
    evolve,
    kloset,
    new_store,
    open_store,
    restore_to,
    snapshot_ids,
    spawn,
    store_bytes,
    time_locked_work,
    tree_digest,
)

from kloset.keys_change import create_linked
from kloset.locations import open_storage
from kloset.sync import sync_snapshots

SLACK = 256 * 1024  # snapshot headers, index files and pack headers


@pytest.fixture(scope="module")
def two_versions(corpus: Path, tmp_path_factory: pytest.TempPathFactory):
    """A source store with two snapshots of an evolving folder, and what each one added."""
    base = tmp_path_factory.mktemp("sync")
    store, src = base / "src-store", base / "src"
    new_store(store)
    shutil.copytree(corpus, src, symlinks=True)
    ids, added = [], []
    for step in range(2):
        if step:
            evolve(src, random.Random(3), step)
        shutil.copytree(src, base / f"v{step}", symlinks=True)
        before = store_bytes(store)
        ids += snapshot_ids(kloset("at", str(store), "backup", str(src)).stdout)
        added.append(store_bytes(store) - before)
    return store, [base / "v0", base / "v1"], ids, added


def sync_cli(src: Path, dst: Path, *snaps: str, create: bool = False) -> str:
    args = ["at", str(src), "sync", "--to", str(dst), *snaps] + (["--create"] if create else [])
    return kloset(*args, KLOSET_TO_PASSPHRASE=PASS).stdout


def test_same_keys_copies_sealed_blobs_and_keeps_ids(two_versions, tmp_path: Path) -> None:
    src, states, ids, added = two_versions
    dst = tmp_path / "dst"
    out = sync_cli(src, dst, ids[0][:12], create=True)  # --create: a store sharing the keys
    assert "sealed blobs copied as-is" in out
    first = store_bytes(dst)
    assert first <= added[0] + SLACK
    sync_cli(src, dst)
    second = store_bytes(dst) - first
    print(
        f"\nsync (same keys): source grew {added[0] / MB:.2f} + {added[1] / MB:.2f} MiB, "
        f"destination {first / MB:.2f} + {second / MB:.2f} MiB"
    )
    assert second <= added[1] + SLACK, (second, added[1])
    assert {h.hex for h in open_store(dst).list_snapshots()} == set(ids)
    assert "0 copied, 2 already there" in sync_cli(src, dst)
    assert store_bytes(dst) == first + second
    assert_check_ok(dst, read_data=True)
    for i in (0, 1):
        assert restore_to(dst, ids[i], tmp_path / f"r{i}") == tree_digest(states[i])


def test_different_keys_reencode_and_dedup_with_native_backups(
    two_versions, tmp_path: Path
) -> None:
    src, states, ids, added = two_versions
    dst = tmp_path / "dst"
    new_store(dst)  # its own keys and chunker seed
    native = tmp_path / "native-v0"
    shutil.copytree(states[0], native, symlinks=True)
    kloset("at", str(dst), "backup", str(native))
    base = store_bytes(dst)

    out = sync_cli(src, dst, ids[1][:12])
    assert "re-encoded" in out
    grown = store_bytes(dst) - base
    print(
        f"\nsync (different keys): v1 added {added[1] / MB:.2f} MiB to the source store, "
        f"{grown / MB:.2f} MiB to the destination that had v0 natively"
    )
    # v1's data that v0 lacked, and nothing else: the native v0 chunks were recognised.
    assert grown <= 1.05 * added[1] + SLACK, (grown, added[1])
    (synced,) = [h for h in open_store(dst).list_snapshots() if h.source != str(native)]
    assert synced.hex != ids[1] and synced.source == open_store(src).resolve_snapshot(ids[1]).source
    assert restore_to(dst, synced.hex, tmp_path / "r1") == tree_digest(states[1])

    before = store_bytes(dst)
    sync_cli(src, dst)  # v0 too: all its data is there already, only its header is new
    assert store_bytes(dst) - before < SLACK
    assert "0 copied, 2 already there" in sync_cli(src, dst)
    assert len(open_store(dst).list_snapshots()) == 3
    assert_check_ok(dst, read_data=True)
    v0 = [h for h in open_store(dst).list_snapshots() if h.hex not in (synced.hex,)]
    v0 = [h for h in v0 if h.source == synced.source]
    assert restore_to(dst, v0[0].hex, tmp_path / "r0") == tree_digest(states[0])


def test_linked_store_then_an_unencrypted_one(two_versions, tmp_path: Path) -> None:
    src, states, ids, _added = two_versions
    plain = create_linked(open_storage(str(tmp_path / "plain")), open_store(src), PASS)
    report = sync_snapshots(open_store(src), plain)
    assert report.same_keys and len(report.copied) == 2
    dst = new_store(tmp_path / "unencrypted", passphrase=None)
    report = sync_snapshots(open_store(tmp_path / "plain"), dst)
    assert not report.same_keys and len(report.copied) == 2
    assert_check_ok_plain(tmp_path / "unencrypted")
    header = [
        h
        for h in dst.list_snapshots()
        if h.time_ns == open_store(src).resolve_snapshot(ids[1]).time_ns
    ]
    from kloset.locations import open_destination
    from kloset.restore import run_restore

    run_restore(dst, header[0], "/", open_destination(str(tmp_path / "r")))
    assert tree_digest(tmp_path / "r") == tree_digest(states[1])


def assert_check_ok_plain(path: Path) -> None:
    from kloset.check import check_store

    report = check_store(open_store(path, None), read_data=True)
    assert report.ok, report.errors[:5]


def test_kill_sync_loop(two_versions, tmp_path: Path) -> None:
    """SIGKILL during a re-encoding sync: the destination always passes check, and the next
    sync adopts what the killed one uploaded instead of sending it again."""
    src, states, ids, added = two_versions
    reference = tmp_path / "reference"
    new_store(reference)
    proc = spawn("at", str(src), "sync", "--to", str(reference), KLOSET_TO_PASSPHRASE=PASS)
    killer = RandomKiller(11, time_locked_work(proc, reference))
    full = store_bytes(reference)
    rounds = 0
    while killer.kills < 4 and rounds < 30:
        rounds += 1
        dst = tmp_path / f"dst{rounds}"
        new_store(dst)
        proc = spawn("at", str(src), "sync", "--to", str(dst), KLOSET_TO_PASSPHRASE=PASS)
        killer.run(proc, dst)
        assert_check_ok(dst)
        sync_cli(src, dst)
        assert store_bytes(dst) <= 1.03 * full + SLACK, (store_bytes(dst), full)
        assert len(open_store(dst).list_snapshots()) == 2
        assert_check_ok(dst, read_data=True)
    assert killer.kills >= 4
    latest = max(open_store(dst).list_snapshots(), key=lambda h: h.time_ns)
    assert restore_to(dst, latest.hex, tmp_path / "r") == tree_digest(states[1])
    assert added[1] > MB


def test_sync_to_a_remote_style_store_then_prune_there(two_versions, tmp_path: Path) -> None:
    """memory:// goes through the same code as Koofr (no local paths, fsspec listings with
    mtimes, ranged cat_file, lock settle delay): sync into it, prune it, restore from it."""
    from kloset.check import check_store
    from kloset.config import ChunkerParams
    from kloset.crypto import KdfParams
    from kloset.locations import open_destination
    from kloset.prune import PruneOptions, prune
    from kloset.repository import Repository
    from kloset.restore import run_restore
    from kloset.retention import RetentionPolicy

    src, states, _ids, _added = two_versions
    location = f"memory://lifecycle-{os.getpid()}-{time.time_ns()}/store"
    dst = Repository.create(
        open_storage(location),
        PASS,
        kdf=KdfParams.fresh(memory_kib=1024, iterations=1),
        pack_size=1 << 20,
        chunker=ChunkerParams(min_size=64 * 1024, avg_size=64 * 1024),
    )
    assert not dst.storage.local
    report = sync_snapshots(open_store(src), dst)
    assert len(report.copied) == 2 and not report.same_keys
    remote = Repository.open(open_storage(location), PASS)
    result = prune(remote, PruneOptions(policy=RetentionPolicy(last=1), grace_minutes=0))
    assert len(result.removed) == 1 and result.packs_deleted + result.packs_repacked > 0
    remote = Repository.open(open_storage(location), PASS)
    assert check_store(remote, read_data=True).ok
    (latest,) = remote.list_snapshots()
    run_restore(remote, latest, "/", open_destination(str(tmp_path / "r")))
    assert tree_digest(tmp_path / "r") == tree_digest(states[1])
