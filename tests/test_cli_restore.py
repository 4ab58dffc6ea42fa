"""`restore`: skip/overwrite semantics, sub-paths, other destinations, and hostile snapshots."""

from __future__ import annotations

import os
from pathlib import Path

import fsspec
import pytest
from helpers import (
    FAST_KDF,
    PASSPHRASE,
    cli,
    craft_snapshot,
    open_repo,
    tree_state,
    write_file,
)

ENV = {"KLOSET_PASSPHRASE": PASSPHRASE}


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, Path]:
    src = tmp_path / "src"
    write_file(src / "a.txt", b"alpha\n", 1_600_000_000_123_456_789)
    write_file(src / "docs" / "b.txt", b"beta\n")
    write_file(src / "docs" / "deeper" / "c.txt", b"gamma\n")
    os.symlink("docs/b.txt", src / "link")
    store = tmp_path / "store"
    assert cli("at", store, "create", *FAST_KDF, env=ENV).code == 0
    assert cli("at", store, "backup", src, env=ENV).code == 0
    return src, store


def test_existing_identical_files_are_skipped_differing_ones_refused(
    world: tuple[Path, Path], tmp_path: Path
) -> None:
    src, store = world
    out = tmp_path / "out"
    first = cli("at", store, "restore", "-to", out, "latest", env=ENV)
    assert first.code == 0 and "restored 3 files" in first.out
    again = cli("at", store, "restore", "-to", out, "latest", env=ENV)
    assert again.code == 0 and "restored 0 files" in again.out
    assert "3 identical files skipped" in again.out

    (out / "a.txt").write_bytes(b"local edit\n")
    refused = cli("at", store, "restore", "-to", out, "latest", env=ENV)
    assert refused.code == 7
    assert refused.err_lines == ["kloset: /a.txt: exists and differs (use --overwrite to replace)"]
    assert (out / "a.txt").read_bytes() == b"local edit\n"  # untouched
    forced = cli("at", store, "restore", "--to", out, "latest", "--overwrite", env=ENV)
    assert forced.code == 0 and "restored 1 file (" in forced.out
    assert tree_state(out) | {b"": None} == tree_state(src) | {b"": None}


def test_restore_a_sub_path_or_a_single_file(world: tuple[Path, Path], tmp_path: Path) -> None:
    src, store = world
    sub = tmp_path / "sub"
    assert cli("at", store, "restore", "-to", sub, "latest:/docs", env=ENV).code == 0
    got, want = tree_state(sub), tree_state(src / "docs")
    assert got.keys() == want.keys()
    # Restoring /docs into DIR makes DIR equal to docs, including docs' own mode and mtime.
    assert got == want
    one = tmp_path / "one"
    assert cli("at", store, "restore", "-to", one, "latest:/docs/deeper/c.txt", env=ENV).code == 0
    assert [p.name for p in one.iterdir()] == ["c.txt"]
    assert (one / "c.txt").stat().st_mtime_ns == (src / "docs/deeper/c.txt").stat().st_mtime_ns


def test_restore_to_an_fsspec_url(world: tuple[Path, Path]) -> None:
    src, store = world
    res = cli("at", store, "restore", "-to", "memory://restored/here", "latest", env=ENV)
    assert res.code == 7  # object stores cannot hold the symlink: reported, not silent
    assert res.err_lines == [
        "kloset: /link: symlink not restored (destination cannot hold it, or a non-link is there)"
    ]
    fs = fsspec.filesystem("memory")
    assert fs.cat_file("/restored/here/docs/deeper/c.txt") == b"gamma\n"
    assert fs.cat_file("/restored/here/a.txt") == (src / "a.txt").read_bytes()


def test_hostile_names_never_write_outside_the_target(tmp_path: Path) -> None:
    store = tmp_path / "store"
    assert cli("at", store, "create", *FAST_KDF, env=ENV).code == 0
    repo = open_repo(store)
    outside = tmp_path / "outside"
    outside.mkdir()
    spec = [
        ("..", [("escaped.txt", b"via dot-dot dir\n")]),
        (".", [("dot.txt", b"via dot dir\n")]),
        ("../evil.txt", b"slash in a name\n"),
        ("/abs-evil.txt", b"absolute name\n"),
        ("sub/evil.txt", b"slash in a name\n"),
        ("", b"empty name\n"),
        ("x\x00y", b"nul in a name\n"),
        ("ok.txt", b"fine\n"),
        ("plain", [("inner.txt", b"fine too\n")]),
        ("trap", [("pwned.txt", b"through a symlink\n")]),
        ("trap", ("symlink", str(outside))),  # duplicate name: a dir and a link
        ("link-out", ("symlink", str(outside))),
    ]
    snap = craft_snapshot(repo, spec, tmp_path / "spool")
    parent = tmp_path / "restore-parent"
    target = parent / "target"
    target.mkdir(parents=True)
    before_tmp = sorted(os.listdir(tmp_path))
    res = cli("at", store, "restore", "-to", target, snap[:10], env=ENV)
    assert res.code == 7
    assert os.listdir(parent) == ["target"]
    assert os.listdir(outside) == []
    assert sorted(os.listdir(tmp_path)) == before_tmp
    assert sorted(os.listdir(target)) == ["link-out", "ok.txt", "plain", "trap"]
    assert (target / "trap").is_dir() and not (target / "trap").is_symlink()
    assert os.readlink(target / "link-out") == str(outside)  # links are stored, not followed
    unsafe = [line for line in res.err_lines if "unsafe name" in line]
    assert len(unsafe) == 7, res.err
    assert any("/trap: symlink not restored" in line for line in res.err_lines)


def test_a_symlink_already_in_the_target_is_not_written_through(
    world: tuple[Path, Path], tmp_path: Path
) -> None:
    _src, store = world
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "target"
    target.mkdir()
    os.symlink(outside, target / "docs")  # e.g. left by an earlier restore of another snapshot
    res = cli("at", store, "restore", "-to", target, "latest", "--overwrite", env=ENV)
    assert res.code == 7
    assert os.listdir(outside) == []
    assert res.err_lines[0].startswith("kloset: /docs: cannot create directory")
    assert len(res.err_lines) == 1  # nothing below /docs was even attempted
    assert (target / "a.txt").read_bytes() == b"alpha\n"


def test_restore_threads_option(world: tuple[Path, Path], tmp_path: Path) -> None:
    src, store = world
    out = tmp_path / "t1"
    assert cli("at", store, "restore", "-to", out, "latest", "--threads", "1", env=ENV).code == 0
    assert (out / "docs" / "deeper" / "c.txt").read_bytes() == b"gamma\n"


def test_directories_are_created_in_parallel_and_failures_prune_their_subtree(
    tmp_path: Path,
) -> None:
    """Directories are made a depth at a time, in parallel. A directory named twice (a crafted
    tree) is made once and both copies' files land in it. One that cannot be made loses
    exactly its own subtree: one error line, and its siblings are restored."""
    store = tmp_path / "store"
    assert cli("at", store, "create", *FAST_KDF, env=ENV).code == 0
    repo = open_repo(store)
    spec = [
        *[
            (f"d{i:03d}", [(f"e{j}", [("f.txt", f"{i}/{j}\n".encode())]) for j in range(3)])
            for i in range(60)
        ],
        ("twice", [("one.txt", b"first copy\n")]),
        ("twice", [("two.txt", b"second copy\n")]),
        ("blocked", [("deep", [("x.txt", b"never\n")]), ("y.txt", b"never either\n")]),
    ]
    snap = craft_snapshot(repo, spec, tmp_path / "spool")
    target = tmp_path / "target"
    target.mkdir()
    (target / "blocked").write_text("a file where the snapshot has a directory\n")
    res = cli("at", store, "restore", "-to", target, snap[:10], env=ENV)
    assert res.code == 7
    assert len(res.err_lines) == 1, res.err_lines  # nothing below /blocked is attempted
    assert res.err_lines[0].startswith("kloset: /blocked: cannot create directory")
    assert (target / "blocked").read_text().startswith("a file where")
    assert sorted(os.listdir(target / "twice")) == ["one.txt", "two.txt"]
    restored = sorted(str(p.relative_to(target)) for p in target.glob("d*/e*/f.txt"))
    assert len(restored) == 180
    assert (target / "d042" / "e2" / "f.txt").read_bytes() == b"42/2\n"
