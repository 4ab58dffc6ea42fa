"""Engine-level round trips across storages: local and memory stores, fsspec sources and targets."""

from __future__ import annotations

import io
import os
from pathlib import Path

import fsspec
import pytest
from helpers import PASSPHRASE, MiB, random_bytes, tree_state, write_file

from kloset.backup import BackupOptions
from kloset.backup.pipeline import run_backup
from kloset.check import check_store
from kloset.crypto import KdfParams
from kloset.locations import open_destination, open_source, open_storage
from kloset.repository import Repository
from kloset.restore import run_restore
from kloset.vfs import SnapshotView


def _source_tree(root: Path) -> None:
    write_file(root / "a" / "one.txt", b"one\n")
    write_file(root / "a" / "b" / "two.bin", random_bytes(3 * MiB + 123, 5))
    write_file(root / "empty", b"")
    (root / "void").mkdir()
    os.symlink("a/one.txt", root / "ln")


@pytest.mark.parametrize("encrypted", [True, False], ids=["encrypted", "plain"])
def test_memory_store_round_trip(tmp_path: Path, encrypted: bool) -> None:
    src = tmp_path / "src"
    _source_tree(src)
    url = f"memory://{tmp_path.name}/store"  # memory filesystems live as long as the process
    storage = open_storage(url)
    repo = Repository.create(
        storage,
        PASSPHRASE if encrypted else None,
        encrypted=encrypted,
        kdf=KdfParams.fresh(memory_kib=64, iterations=1),
    )
    report = run_backup(repo, open_source(str(src)))
    assert report.commit.errors == []
    reopened = Repository.open(open_storage(url), PASSPHRASE if encrypted else None)
    header = reopened.resolve_snapshot(report.commit.snapshot_id[:8])
    out = tmp_path / "out"
    rep = run_restore(reopened, header, "/", open_destination(str(out)))
    assert rep.errors == []
    got, want = tree_state(out), tree_state(src)
    del got[b""], want[b""]
    assert got == want
    assert check_store(reopened, read_data=True).ok


def test_fsspec_source_and_destination(tmp_path: Path) -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe_file(f"/{tmp_path.name}-src/docs/a.txt", b"alpha")
    fs.pipe_file(f"/{tmp_path.name}-src/docs/deep/b.bin", random_bytes(2 * MiB, 9))
    fs.pipe_file(f"/{tmp_path.name}-src/top.txt", b"top")
    repo = Repository.create(open_storage(str(tmp_path / "store")), None, encrypted=False)
    source = open_source(f"memory://{tmp_path.name}-src")
    first = run_backup(repo, source, BackupOptions(tags=["mem"]))
    assert first.commit.stats["files"] == 3 and first.plan.files_to_read == 3
    second = run_backup(repo, open_source(f"memory://{tmp_path.name}-src"))
    assert second.plan.parent == first.commit.snapshot_id
    assert second.plan.files_to_read == 0  # same size and mtime: nothing is read again

    header = repo.resolve_snapshot("latest")
    rep = run_restore(repo, header, "/docs", open_destination(f"memory://{tmp_path.name}-out/x"))
    assert rep.errors == [] and rep.files_written == 2
    assert fs.cat_file(f"/{tmp_path.name}-out/x/a.txt") == b"alpha"
    assert fs.cat_file(f"/{tmp_path.name}-out/x/deep/b.bin") == fs.cat_file(
        f"/{tmp_path.name}-src/docs/deep/b.bin"
    )
    # A memory filesystem keeps no MD5 or mtime, so an existing file cannot be proven identical:
    # the restore refuses to replace it unless asked to.
    again = run_restore(repo, header, "/docs", open_destination(f"memory://{tmp_path.name}-out/x"))
    assert again.files_written == 0
    assert sorted(again.errors) == [
        ("/a.txt", "exists and differs (use --overwrite to replace)"),
        ("/deep/b.bin", "exists and differs (use --overwrite to replace)"),
    ]
    forced = run_restore(
        repo, header, "/docs", open_destination(f"memory://{tmp_path.name}-out/x"), overwrite=True
    )
    assert forced.files_written == 2 and forced.errors == []


def test_seekable_reader_reads_any_range(tmp_path: Path) -> None:
    src = tmp_path / "src"
    data = random_bytes(5 * MiB + 77, 11)
    write_file(src / "f.bin", data)
    repo = Repository.create(open_storage(str(tmp_path / "store")), None, encrypted=False)
    run_backup(repo, open_source(str(src)))
    reader = SnapshotView(repo, repo.resolve_snapshot("latest")).open("/f.bin")
    assert reader.size == len(data) and len(reader.chunks) > 1
    buffered = io.BufferedReader(reader)  # raw reads stop at chunk ends; buffered ones do not
    for start, length in [(0, 10), (1_000_000, 3_000_000), (len(data) - 5, 100), (len(data), 5)]:
        buffered.seek(start)
        assert buffered.read(length) == data[start : start + length]
    buffered.seek(-7, io.SEEK_END)
    assert buffered.read() == data[-7:]
