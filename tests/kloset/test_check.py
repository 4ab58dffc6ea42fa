"""kloset.check: structure and data checks, damage tracing, subsets, verify_snapshot."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from helpers import MiB, flip_byte, new_repo, open_repo, pack_files, random_bytes, write_file

from kloset.backup import BackupOptions
from kloset.backup.pipeline import run_backup
from kloset.check import check_store, parse_subset, select_packs, verify_snapshot
from kloset.crypto import plain_hash
from kloset.errors import KlosetError, SnapshotNotFound
from kloset.pack import pack_name
from kloset.repository import Repository
from kloset.source import LocalSource
from kloset.vfs import SnapshotView


def backup(repo: Repository, src: Path) -> str:
    opts = BackupOptions(batch_files=4000, batch_bytes=64 * MiB)
    return run_backup(repo, LocalSource(str(src)), opts, workers=1).commit.snapshot_id


@pytest.fixture(params=[True, False], ids=["encrypted", "plain"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, Path, str]:
    src = tmp_path / "src"
    for i in range(40):
        write_file(src / f"d{i % 3}" / f"f{i}.txt", f"file {i}\n".encode() * 50)
    write_file(src / "big.bin", random_bytes(2 * MiB, 3))
    store = tmp_path / "store"
    repo = new_repo(store, encrypted=request.param, pack_size=300 * 1024)
    snap = backup(repo, src)
    return src, store, snap


def _pack_of(store: Path, snap: str, path: str) -> tuple[Path, int, int]:
    repo = open_repo(store)
    entry = SnapshotView(repo, repo.resolve_snapshot(snap)).stat(path)
    blob = entry.subtree if entry.is_dir else entry.chunks[0]
    loc = repo.index.get(blob)
    return store / pack_name(loc.pack_id), loc.offset, loc.length


def test_clean_store_passes_structure_and_data(world: tuple[Path, Path, str]) -> None:
    _src, store, _snap = world
    repo = open_repo(store)
    rep = check_store(repo)
    assert rep.ok and rep.errors == [] and rep.snapshots == 1
    assert rep.trees == 4 and rep.blobs == len(set(repo.index.ids())) - rep.trees
    assert rep.packs == len(pack_files(store)) and rep.packs_read == 0
    full = check_store(open_repo(store), read_data=True)
    assert full.ok and full.packs_read == full.packs
    assert full.bytes_read == sum(p.stat().st_size for p in pack_files(store))
    assert full.blobs_read == len(repo.index)


def test_flipped_byte_in_a_data_blob(world: tuple[Path, Path, str]) -> None:
    _src, store, snap = world
    pack, off, length = _pack_of(store, snap, "/big.bin")
    flip_byte(pack, off + length // 2)
    structure = check_store(open_repo(store))
    assert structure.ok  # the structure does not read data blobs
    rep = check_store(open_repo(store), read_data=True)
    name = pack.relative_to(store).as_posix()
    assert not rep.ok and rep.damaged_packs == [name]
    assert any(e.startswith(f"{name}: blob ") for e in rep.errors)
    assert f"{name}: content does not match its name (damaged)" in rep.errors
    assert rep.affected == {snap: ["/big.bin"]}


def test_flipped_byte_in_a_tree_is_found_without_reading_data(
    world: tuple[Path, Path, str],
) -> None:
    _src, store, snap = world
    pack, off, length = _pack_of(store, snap, "/d1")
    flip_byte(pack, off + length // 2)
    rep = check_store(open_repo(store))
    assert not rep.ok
    assert any("tree" in e or "blob" in e for e in rep.errors)
    assert rep.affected == {snap: ["/d1/"]}


def test_missing_and_truncated_and_unreferenced_packs(world: tuple[Path, Path, str]) -> None:
    _src, store, snap = world
    pack, _off, _len = _pack_of(store, snap, "/big.bin")
    name = pack.relative_to(store).as_posix()
    data = pack.read_bytes()
    pack.unlink()
    rep = check_store(open_repo(store))
    assert not rep.ok and f"{name}: pack is missing" in rep.errors
    assert rep.affected[snap] == ["/big.bin"]

    pack.write_bytes(data[:-10])
    rep = check_store(open_repo(store))
    assert any(e.startswith(f"{name}: size is {len(data) - 10} bytes") for e in rep.errors)

    pack.write_bytes(data)
    stray = b"left behind by a killed backup"
    stray_name = pack_name(plain_hash(stray))
    (store / stray_name).parent.mkdir(exist_ok=True)
    (store / stray_name).write_bytes(stray)
    (store / "packs" / "00").mkdir(exist_ok=True)
    (store / "packs" / "00" / "upload.tmp-1234").write_bytes(b"partial")
    rep = check_store(open_repo(store), read_data=True)
    assert rep.ok, rep.errors
    assert rep.unreferenced_packs == [stray_name]
    assert rep.warnings == [f"{stray_name}: not in the index (unreferenced; prune removes it)"]


def test_damaged_index_and_snapshot_files(world: tuple[Path, Path, str]) -> None:
    _src, store, snap = world
    index_files = sorted((store / "index").iterdir())
    victim = index_files[0]
    flip_byte(victim, victim.stat().st_size // 2)
    rep = check_store(open_repo(store))
    assert not rep.ok
    assert any(e.startswith(f"index/{victim.name}") for e in rep.errors)
    assert rep.index_files == len(index_files) - 1

    flip_byte(victim, victim.stat().st_size // 2)
    header = store / "snapshots" / snap
    flip_byte(header, 5)
    rep = check_store(open_repo(store))
    assert not rep.ok and rep.snapshots == 0
    assert any(e.startswith(f"snapshots/{snap}") for e in rep.errors)


def test_subsets_partition_and_sample() -> None:
    ids = [bytes([b]) * 32 for b in range(0, 256, 5)]
    groups = [select_packs(ids, f"{n}/3") for n in (1, 2, 3)]
    assert sorted(p for g in groups for p in g) == sorted(ids)
    assert all(p[0] % 3 == n for n, g in enumerate(groups) for p in g)
    sample = select_packs(ids, "10%")
    assert len(sample) == math.ceil(len(ids) * 0.1) and set(sample) <= set(ids)
    assert select_packs(ids, "100%") == sorted(ids)
    assert len(select_packs(ids[:3], "0.1%")) == 1
    assert parse_subset("2/5") == (2, 5)
    for bad in ("0/5", "6/5", "x", "0%", "101%", "1/0", "/", "1/257"):
        with pytest.raises(KlosetError, match="read-data-subset"):
            parse_subset(bad)


def test_subset_reads_only_its_packs(world: tuple[Path, Path, str]) -> None:
    _src, store, _snap = world
    repo = open_repo(store)
    total = 0
    for n in (1, 2):
        rep = check_store(open_repo(store), subset=f"{n}/2")
        assert rep.ok
        total += rep.packs_read
    assert total == len(repo.index.pack_sizes)


def test_check_selected_snapshots(world: tuple[Path, Path, str], tmp_path: Path) -> None:
    src, store, snap = world
    repo = open_repo(store)
    write_file(src / "later.txt", b"second snapshot\n")
    second = backup(repo, src)
    rep = check_store(open_repo(store), snapshots=[snap[:6], "latest", second])
    assert rep.ok and rep.snapshots == 2
    with pytest.raises(SnapshotNotFound):
        check_store(open_repo(store), snapshots=["ffffffff"])


def test_verify_snapshot(world: tuple[Path, Path, str]) -> None:
    _src, store, snap = world
    rep = verify_snapshot(open_repo(store), snap)
    assert rep.ok and rep.blobs_read == 0 and rep.snapshots == 1
    rep = verify_snapshot(open_repo(store), snap, read_data_fraction=1.0)
    assert rep.ok and rep.blobs_read == rep.blobs
    half = verify_snapshot(open_repo(store), snap, read_data_fraction=0.5)
    assert half.blobs_read == math.ceil(half.blobs * 0.5)

    pack, off, length = _pack_of(store, snap, "/d2/f2.txt")
    flip_byte(pack, off + length // 2)
    bad = verify_snapshot(open_repo(store), snap, read_data_fraction=1.0)
    assert not bad.ok
    assert bad.damaged_packs == [pack.relative_to(store).as_posix()]
    assert "/d2/f2.txt" in bad.affected[snap]


def test_paged_directory_damage_is_traced(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "wide").mkdir(parents=True)
    for i in range(4500):  # more than one tree page (4096 entries)
        (src / "wide" / f"n{i:05d}").write_bytes(f"{i}".encode())
    store = tmp_path / "store"
    snap = backup(new_repo(store), src)
    repo = open_repo(store)
    entry = SnapshotView(repo, repo.resolve_snapshot(snap)).stat("/wide/n04400")
    loc = repo.index.get(entry.chunks[0])
    flip_byte(store / pack_name(loc.pack_id), loc.offset + 1)
    rep = check_store(open_repo(store), read_data=True)
    assert not rep.ok
    assert "/wide/n04400" in rep.affected[snap]
    assert rep.affected_counts[snap] == len(rep.affected[snap])
