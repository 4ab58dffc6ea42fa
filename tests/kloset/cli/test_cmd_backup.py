"""`kloset at STORE backup` options: what the scan skips (--exclude-larger-than, --files-from,
--exclude-file, --one-file-system), checked in the snapshot the backup really made, and
--skip-if-unchanged, --dry-run and --json."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import fsspec
import pytest
from helpers import PASSPHRASE, cli, json_doc, make_store, open_repo, random_bytes, write_file

from kloset.cli import jsonstatus
from kloset.vfs import SnapshotView


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.setenv("KLOSET_PASSPHRASE", PASSPHRASE)
    src = tmp_path / "src"
    write_file(src / "small.txt", b"s" * 10)
    write_file(src / "big.iso", b"b" * 5000)
    write_file(src / "docs" / "a.txt", b"a")
    write_file(src / "docs" / "deep" / "huge.bin", b"h" * 9000)
    write_file(src / "photos" / "2019" / "x.jpg", b"x")
    write_file(src / "photos" / "2020" / "y.jpg", b"y")
    store = tmp_path / "store"
    return src, make_store(store)


def _backup(store: Path, src: Path | str, *args: str | Path, code: int = 0):  # type: ignore[no-untyped-def]
    res = cli("at", store, "backup", src, *args)
    assert res.code == code, res.err
    return res


def _paths(store: Path) -> set[str]:
    repo = open_repo(store)
    view = SnapshotView(repo, repo.resolve_snapshot("latest"))
    return {p for p, _e in view.walk()} - {"/"}


def test_exclude_larger_than_skips_big_files_only(world: tuple[Path, Path]) -> None:
    src, store = world
    _backup(store, src, "--exclude-larger-than", "4k")
    got = _paths(store)
    assert "/big.iso" not in got and "/docs/deep/huge.bin" not in got
    assert {"/small.txt", "/docs/a.txt", "/docs/deep", "/photos/2019/x.jpg"} <= got


@pytest.mark.parametrize("size", ["10x", "12 parsecs", "k"])
def test_an_unknown_size_is_one_line_and_exit_1(world: tuple[Path, Path], size: str) -> None:
    src, store = world
    res = _backup(store, src, "--exclude-larger-than", size, code=1)
    assert len(res.err_lines) == 1 and "--exclude-larger-than" in res.err, res.err
    assert not open_repo(store).list_snapshots()


def test_files_from_backs_up_only_the_listed_paths(
    world: tuple[Path, Path], tmp_path: Path
) -> None:
    src, store = world
    listing = tmp_path / "list.txt"
    listing.write_text(f"# what to keep\n\n{src}/docs/deep\nphotos/2019/x.jpg\n")
    excludes = tmp_path / "excludes.txt"
    excludes.write_text("# no binaries\n*.bin\n")
    _backup(store, src, "--files-from", listing, "--exclude-file", excludes)
    assert _paths(store) == {"/docs", "/docs/deep", "/photos", "/photos/2019", "/photos/2019/x.jpg"}


def test_a_listed_path_that_is_missing_is_reported(
    world: tuple[Path, Path], tmp_path: Path
) -> None:
    src, store = world
    listing = tmp_path / "list.txt"
    listing.write_text("docs/a.txt\nno/such/file\n")
    res = _backup(store, src, "--files-from", listing, code=7)
    assert res.err_lines == ["kloset: /no/such/file: in --files-from but not found"]
    assert _paths(store) == {"/docs", "/docs/a.txt"}


def test_bad_lists_are_one_line(world: tuple[Path, Path], tmp_path: Path) -> None:
    src, store = world
    (tmp_path / "outside.txt").write_text("/etc/passwd\n")
    (tmp_path / "climb.txt").write_text("docs/../../x\n")
    (tmp_path / "empty.txt").write_text("# nothing\n")
    for name, message in (
        ("outside.txt", "is not inside"),
        ("climb.txt", "climbs out of the source"),
        ("empty.txt", "lists no paths"),
        ("missing.txt", "cannot read --files-from file"),
    ):
        res = _backup(store, src, "--files-from", tmp_path / name, code=1)
        assert len(res.err_lines) == 1 and message in res.err, (name, res.err)
    assert not open_repo(store).list_snapshots()


def test_one_file_system_leaves_other_file_systems_out(
    world: tuple[Path, Path], tmpfs_inside: Path
) -> None:
    _src, store = world
    root = tmpfs_inside.parent  # the test's tmp_path: src, store and the tmpfs at mnt/
    _backup(store, root, "--one-file-system", "-x", "/store")
    got = _paths(store)
    assert "/mnt" in got and "/src/small.txt" in got and "/mnt/other-fs.txt" not in got
    _backup(store, root, "-x", "/store")
    assert "/mnt/other-fs.txt" in _paths(store)


def test_one_file_system_on_a_remote_source_is_refused(world: tuple[Path, Path]) -> None:
    _src, store = world
    fsspec.filesystem("memory").pipe("/ofs-src/a.txt", b"a")
    res = _backup(store, "memory://ofs-src", "--one-file-system", code=2)
    assert res.err_lines == [
        "kloset: error: --one-file-system is for local folders; memory://ofs-src is not"
    ]


def test_json_prints_status_lines_then_a_summary(
    world: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    src, store = world
    monkeypatch.setattr(jsonstatus, "INTERVAL", 0.01)
    first = [json.loads(line) for line in _backup(store, src, "--json").out.splitlines()]
    kinds = [line["message_type"] for line in first]
    assert kinds[-1] == "summary" and set(kinds[:-1]) == {"status"} and len(kinds) >= 2
    status, summary = first[-2], first[-1]
    assert status["percent_done"] == 1.0 and status["files_done"] == status["total_files"] == 6
    assert status["bytes_done"] == status["total_bytes"] == 14_013 and status["error_count"] == 0
    assert summary["files"] == summary["total_files_processed"] == 6
    assert summary["snapshot_id"] == summary["snapshot"] and summary["dry_run"] is False
    assert summary["skipped"] is False and summary["files_unmodified"] == 0
    write_file(src / "new.txt", b"new")
    listing = src.parent / "list.txt"
    listing.write_text("\n".join([*(p.name for p in src.iterdir()), "nope"]))
    second = _backup(store, src, "--json", "--files-from", listing, code=7)
    status = json.loads(second.out.splitlines()[-2])
    # Unchanged files count as done, as in restic's status lines.
    assert status["total_files"] == 7 and status["files_done"] == 7 and status["error_count"] == 1
    error = json.loads(second.err)  # restic's error lines, on stderr
    assert error == {
        "message_type": "error",
        "error": {"message": "in --files-from but not found"},
        "during": "backup",
        "item": "/nope",
    }
    assert json_doc(second.out)["files_unmodified"] == 6


def test_skip_if_unchanged_makes_no_snapshot_when_nothing_changed(
    world: tuple[Path, Path],
) -> None:
    src, store = world
    first = json_doc(_backup(store, src, "--json").out)["snapshot"]
    res = _backup(store, src, "--skip-if-unchanged")
    assert res.out.splitlines()[-1] == (f"nothing changed since snapshot {first}: no new snapshot")
    doc = json_doc(_backup(store, src, "--skip-if-unchanged", "--json", "--force-read").out)
    assert doc["skipped"] is True and doc["snapshot"] == first
    assert len(open_repo(store).list_snapshots()) == 1
    assert not [p for p in (store / "runs").rglob("*") if p.is_file()], "a run left journals"
    # Another tag, a changed mtime or a new file each make a new snapshot.
    tagged = json_doc(_backup(store, src, "--skip-if-unchanged", "--json", "-t", "x").out)
    assert tagged["skipped"] is False and tagged["snapshot"] != first
    os.utime(src / "small.txt", ns=(1, 1))
    touched = json_doc(_backup(store, src, "--skip-if-unchanged", "-t", "x", "--json").out)
    assert touched["skipped"] is False
    assert len(open_repo(store).list_snapshots()) == 3


def test_files_from_on_a_remote_source_is_relative_to_it(
    world: tuple[Path, Path], tmp_path: Path
) -> None:
    _src, store = world
    mem = fsspec.filesystem("memory")
    for name in ("keep/a.txt", "keep/b.txt", "drop/c.txt"):
        mem.pipe(f"/ff-src/{name}", b"x")
    (tmp_path / "list.txt").write_text("/keep/a.txt\n")
    _backup(store, "memory://ff-src", "--files-from", tmp_path / "list.txt")
    assert _paths(store) == {"/keep", "/keep/a.txt"}


def _store_state(store: Path) -> dict[str, str]:
    """Every file of the store with a hash of its bytes, and every folder: what a dry run must
    leave exactly as it was (no pack, index, snapshot, journal or lock, not even a folder)."""
    state = {}
    for path in sorted(store.rglob("*")):
        rel = str(path.relative_to(store))
        state[rel] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return state


def test_dry_run_reads_and_chunks_everything_and_writes_nothing(world: tuple[Path, Path]) -> None:
    src, store = world
    _backup(store, src, "-x", "*.iso")
    write_file(src / "new.bin", random_bytes(300_000, 3))  # incompressible: added at its size
    before = _store_state(store)
    res = _backup(store, src, "--dry-run")
    assert res.out.splitlines()[-1] == f"dry run: no snapshot, nothing was written to {store}"
    assert "would add" in res.out and " 7 (2 read)" in res.out
    dry = json_doc(_backup(store, src, "--dry-run", "--json").out)
    assert _store_state(store) == before
    assert dry["dry_run"] is True and dry["snapshot"] is None and dry["files_read"] == 2
    assert dry["bytes_read"] == 305_000 and dry["data_added"] == 305_000
    # What the real run then adds is what the dry run said it would.
    real = json_doc(_backup(store, src, "--json").out)
    assert real["files_read"] == 2 and real["data_added"] == dry["data_added"]
    assert real["data_blobs"] == dry["data_blobs"] > 0
