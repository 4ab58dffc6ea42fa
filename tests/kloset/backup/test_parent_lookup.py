"""ParentLookup answers from the parent snapshot and holds only the folders on the current
path (a million-file parent held whole was ~500 MiB of Python objects)."""

from __future__ import annotations

from pathlib import Path

from helpers import PASSPHRASE, cli, new_repo, open_repo, write_file

from kloset.backup.plan import ParentLookup
from kloset.excludes import Excluder
from kloset.source import LocalSource
from kloset.tree import FILE, PAGE_SIZE


def test_lookup_in_scan_order_keeps_only_the_current_path(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for a in ("a", "b"):
        for b in ("x", "y"):
            write_file(src / a / b / "deep" / "f.txt", f"{a}{b}".encode())
            write_file(src / a / f"{b}.txt", b"side")
    big = src / "big"  # more names than one tree page holds: a paged tree
    big.mkdir()
    for i in range(PAGE_SIZE + 5):
        (big / f"n{i:05d}").touch()
    store = tmp_path / "store"
    new_repo(store)
    assert cli("at", store, "backup", src, env={"KLOSET_PASSPHRASE": PASSPHRASE}).code == 0
    repo = open_repo(store)
    lookup = ParentLookup(repo, repo.list_snapshots()[-1])

    seen = deepest = 0
    for item in LocalSource(str(src)).scan(Excluder([])):
        if item.type != FILE:
            continue
        old = lookup.lookup(item.relpath)
        assert old is not None and old.is_file, item.relpath
        assert (old.size, old.mtime_ns) == (item.size, item.mtime_ns)
        seen += 1
        deepest = max(deepest, len(lookup._dirs))
        assert all(item.relpath.startswith(d + "/") for d in lookup._dirs if d)
    assert seen == 8 + PAGE_SIZE + 5
    assert deepest <= 5  # root, a, a/x, a/x/deep at most: never every folder
    assert lookup.lookup("a/x/deep/none.txt") is None
    assert lookup.lookup("nowhere/f.txt") is None
    assert lookup.lookup("a/x/deep/f.txt") is not None  # a folder left behind loads again
