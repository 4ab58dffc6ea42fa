"""Issue 2's "done when", end to end through the real `kloset` command.

One awkward tree (unicode NFC/NFD, 255-byte and odd names, empty files and dirs, 40 levels,
symlinks of every kind, 1901/1970/2100 mtimes with ns, 3000 small files, two 24 MiB
near-identical binaries) is backed up once; the tests below restore it, check it, measure what
was stored, and then back up a barely changed version of it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    FAST_KDF,
    PASSPHRASE,
    MiB,
    build_odd_tree,
    cli,
    open_repo,
    run_kloset,
    tree_state,
)

from kloset.vfs import SnapshotView, iter_tree

pytestmark = pytest.mark.slow
ENV = {"KLOSET_PASSPHRASE": PASSPHRASE}


@dataclass
class World:
    base: Path
    src: Path
    store: Path
    snap: str
    state: dict[bytes, tuple[Any, ...]]
    facts: dict[str, Any]
    backup_out: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    base = tmp_path_factory.mktemp("roundtrip")
    src = base / "src"
    facts = build_odd_tree(src)
    state = tree_state(src)
    store = base / "store"
    created = run_kloset("at", store, "create", *FAST_KDF, env=ENV)
    assert created.returncode == 0, created.stderr
    done = run_kloset("at", store, "backup", src, "--tag", "first", env=ENV)
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode()
    match = re.fullmatch(r"snapshot ([0-9a-f]{64}) created", out.strip().splitlines()[-1])
    assert match, out
    return World(base, src, store, match.group(1), state, facts, out)


def _tree_ids(repo: Any, root: bytes) -> set[bytes]:
    seen, todo = set(), [root]
    while todo:
        tid = todo.pop()
        if tid not in seen:
            seen.add(tid)
            todo += [e.subtree for e in iter_tree(repo, tid) if e.is_dir and e.subtree]
    return seen


def test_backup_summary_and_last_line(world: World) -> None:
    assert "errors    0" in world.backup_out
    files = sum(1 for v in world.state.values() if v[0] == "file")
    # every file but the empty one is read: there is no parent snapshot yet
    assert re.search(rf"^files\s+{files} \({files - 1} read\)$", world.backup_out, re.M)


def test_restore_round_trips_exactly(world: World) -> None:
    target = world.base / "restored"
    res = run_kloset("at", world.store, "restore", "-to", target, world.snap[:8], env=ENV)
    assert res.returncode == 0, res.stderr
    assert res.stderr == b""
    got = tree_state(target)
    want = dict(world.state)
    # A snapshot records no metadata for its root directory; everything below must be exact.
    del want[b""], got[b""]
    assert got.keys() == want.keys()
    assert got == want


def test_check_read_data_passes(world: World) -> None:
    res = run_kloset("at", world.store, "check", "--read-data", env=ENV)
    assert res.returncode == 0, res.stderr
    assert b"no errors" in res.stdout
    assert b"packs read" in res.stdout


def test_near_identical_binaries_are_stored_once_plus_a_few_chunks(world: World) -> None:
    repo = open_repo(world.store)
    view = SnapshotView(repo, repo.resolve_snapshot(world.snap))
    one = view.stat("/big/one.bin").chunks
    two = view.stat("/big/two.bin").chunks
    extra = [c for c in two if c not in set(one)]
    assert 1 <= len(extra) <= 2  # the 5 changed bytes touch one chunk (two if on a boundary)
    assert len(two) == len(one)
    index = repo.index
    big = world.facts["big"]
    extra_stored = sum(index.get(c).length for c in extra)
    stored = sum(index.pack_sizes.values())
    # Random data does not compress: the first copy costs its size, the second only its chunks.
    assert big < stored < big + extra_stored + 1 * MiB
    info = cli("at", world.store, "info", "--json", env=ENV)
    assert info.code == 0
    doc = info.json()
    assert doc["pack_bytes"] == stored
    logical = sum(v[3] for v in world.state.values() if v[0] == "file")
    assert doc["logical_bytes"] == logical
    assert doc["dedup_ratio"] == round(logical / stored, 2)
    assert doc["dedup_ratio"] > 1.4  # two copies of 24 MiB in well under 2 x 24 MiB


def test_browse_the_odd_tree(world: World) -> None:
    ls = cli("at", world.store, "ls", f"{world.snap[:6]}:/names", "--json", env=ENV)
    assert ls.code == 0, ls.err
    names = {e["name"] for e in ls.json()}
    for name in world.facts["odd"]:
        assert name in names
    assert "latin1-\\xe9\\xff" in names  # shown escaped, not lost
    cat = run_kloset("at", world.store, "cat", "latest:/names/what?", env=ENV)
    assert cat.returncode == 0
    assert cat.stdout == (world.src / "names" / "what?").read_bytes()
    cat_big = run_kloset("at", world.store, "cat", "latest:/big/two.bin", env=ENV)
    assert cat_big.stdout == (world.src / "big" / "two.bin").read_bytes()
    deep = cli("at", world.store, "find", "bottom.txt", env=ENV)
    assert (
        deep.out.strip()
        == f"{world.snap[:12]}:/deep/"
        + "/".join(f"level{i:02d}" for i in range(40))
        + "/bottom.txt"
    )


def test_second_backup_adds_only_changed_chunks(world: World) -> None:
    """Runs last: it changes the source."""
    small = world.src / "many" / "f00010.txt"
    small.write_bytes(b"changed small file\n")
    two = world.src / "big" / "two.bin"
    with open(two, "r+b") as fh:
        fh.seek(world.facts["big"] * 3 // 4)
        fh.write(b"\x00\x01\x02")
    res = cli("at", world.store, "backup", world.src, "--json", env=ENV)
    assert res.code == 0, res.err
    doc = res.json()
    assert doc["files_read"] == 2  # only the two changed files were read again
    assert doc["bytes_read"] == small.stat().st_size + world.facts["big"]
    assert doc["parent"] == world.snap

    repo = open_repo(world.store)
    old = SnapshotView(repo, repo.resolve_snapshot(world.snap)).stat("/big/two.bin").chunks
    new = SnapshotView(repo, repo.resolve_snapshot(doc["snapshot"])).stat("/big/two.bin").chunks
    fresh = [c for c in new if c not in set(old)]
    assert 1 <= len(fresh) <= 2
    h1, h2 = repo.resolve_snapshot(world.snap), repo.resolve_snapshot(doc["snapshot"])
    new_trees = _tree_ids(repo, h2.root) - _tree_ids(repo, h1.root)
    assert len(new_trees) == 3  # /, /big and /many changed; every other tree is reused
    small_chunks = SnapshotView(repo, h2).stat("/many/f00010.txt").chunks
    expected = sum(repo.index.get(b).length for b in [*fresh, *small_chunks, *new_trees])
    # Added = the changed chunk(s) + the small file + the changed trees + pack headers.
    assert expected <= doc["bytes_added"] < expected + 8 * 1024
    assert doc["bytes_added"] < world.facts["big"] // 3

    diff = cli("at", world.store, "diff", world.snap[:8], "latest", "--json", env=ENV)
    changed = [(e["path"], tuple(e["reasons"])) for e in diff.json()["changed"]]
    assert sorted(changed) == [
        ("/big/two.bin", ("content", "mtime")),
        ("/many/f00010.txt", ("size", "content", "mtime")),
    ]
    assert diff.json()["added"] == [] and diff.json()["removed"] == []

    again = cli("at", world.store, "backup", world.src, "--json", env=ENV).json()
    assert again["files_read"] == 0 and again["bytes_read"] == 0
    forced = cli("at", world.store, "backup", world.src, "--force-read", "--json", env=ENV).json()
    assert forced["files_read"] == forced["files"] - 1  # all but the empty file
    assert forced["bytes_added"] < 64 * 1024  # read again, but nothing new to store
    snaps = json.loads(cli("at", world.store, "ls", "--json", env=ENV).raw)
    assert [s["tags"] for s in snaps] == [["first"], [], [], []]
