"""`kloset.storetree`: restic's layout over the snapshots, entries as stored."""

from __future__ import annotations

import stat
import time

import pytest
from helpers import NORMAL_NS, OLD_NS, Y2100_NS
from kloset_samples import SampleStore

from kloset.catalog import SnapshotCatalog
from kloset.errors import PathNotFound
from kloset.storetree import StoreTree, snapshot_dir_name, tag_dir_name


def test_layout_names_every_snapshot_by_time_id_and_tag(sample_store: SampleStore) -> None:
    tree = StoreTree(sample_store.repo)
    first, second = sample_store.first, sample_store.second
    names = [snapshot_dir_name(h) for h in (first, second)]
    stamp = time.strftime("%Y-%m-%dT%H.%M.%S", time.localtime(second.time_ns // 10**9))
    assert names[1] == f"{stamp}-{second.hex[:8]}"
    assert [n for n, _ in tree.listdir("/")] == ["ids", "latest", "snapshots", "tags"]
    assert [n for n, _ in tree.listdir("/snapshots")] == names
    assert [n for n, _ in tree.listdir("/ids")] == sorted([first.hex, second.hex])
    assert [n for n, _ in tree.listdir("/tags")] == ["daily", "weird_tag"]
    assert [n for n, _ in tree.listdir("/tags/daily")] == names
    assert [n for n, _ in tree.listdir("/tags/weird_tag")] == names[1:]
    for path in (f"/snapshots/{names[1]}", f"/ids/{second.hex}", "/latest"):
        assert tree.stat(path + "/docs/notes.txt").size == len(b"second notes, longer\n")
    assert tree.stat(f"/snapshots/{names[0]}/docs/notes.txt").size == len(b"first notes\n")
    assert tree.stat("/latest").mtime_ns == second.time_ns
    assert not tree.stat("/latest/video.mp4").immutable
    assert tree.stat(f"/ids/{second.hex}/video.mp4").immutable
    for missing in ("/nope", "/snapshots/nope", "/ids/abcd", "/tags/nope", "/latest/nope"):
        with pytest.raises(PathNotFound):
            tree.stat(missing)


def test_entries_show_modes_times_and_links_as_stored(sample_store: SampleStore) -> None:
    tree = StoreTree(sample_store.repo)
    assert tree.stat("/latest/docs/private.key").mode == stat.S_IFREG | 0o600
    assert tree.stat("/latest/bin/run.sh").mode == stat.S_IFREG | 0o755
    assert tree.stat("/latest/times/old").mtime_ns == OLD_NS
    assert tree.stat("/latest/times/future").mtime_ns == Y2100_NS
    link = tree.stat("/latest/link-to-notes")
    assert stat.S_ISLNK(link.mode) and link.mtime_ns == NORMAL_NS + 6
    assert tree.readlink("/latest/dangling") == "/nowhere/at/all"
    assert tree.stat("/latest/empty-dir").is_dir and tree.listdir("/latest/empty-dir") == []
    assert tree.open("/latest/docs/notes.txt").read() == b"second notes, longer\n"
    with pytest.raises(PathNotFound):
        tree.open("/latest/docs")


def test_new_and_removed_snapshots_show_up(sample_store: SampleStore) -> None:
    repo = sample_store.repo
    tree = StoreTree(repo, SnapshotCatalog(repo, refresh_seconds=0))
    assert len(tree.listdir("/snapshots")) == 2
    header = repo.load_snapshot(sample_store.first.id)
    header.tags = ["extra"]
    header.time_ns += 1
    new_id = repo.save_snapshot(header)
    try:
        assert len(tree.listdir("/snapshots")) == 3
        assert [n for n, _ in tree.listdir("/tags/extra")] == [snapshot_dir_name(header)]
    finally:
        repo.delete_snapshot(new_id)
    assert len(tree.listdir("/snapshots")) == 2 and "extra" not in dict(tree.listdir("/tags"))


def test_tag_names_become_folder_names() -> None:
    assert tag_dir_name("a/b") == "a_b"
    assert tag_dir_name("..") == "_.."
    assert tag_dir_name("daily") == "daily"
