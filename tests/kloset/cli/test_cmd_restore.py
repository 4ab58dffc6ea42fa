"""`kloset at STORE restore` options: --include/--exclude, --dry-run, --verify, --delete, --json."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from helpers import cli, tree_state, write_file
from kloset_samples import SampleStore

from kloset.cli import jsonstatus
from kloset.destination import LocalDestination


def _restore(sample: SampleStore, target: Path, *args: str, code: int = 0):  # type: ignore[no-untyped-def]
    res = cli("at", sample.store, "restore", "-to", target, "latest", *args, env=sample.env)
    assert res.code == code, res.err
    return res


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir()}


def test_include_and_exclude_pick_what_is_restored(
    sample_store: SampleStore, tmp_path: Path
) -> None:
    _restore(sample_store, tmp_path / "txt", "--include", "*.txt", "--include", "/bin")
    assert _files(tmp_path / "txt") == {"docs/notes.txt", "bin/run.sh"}
    docs = (tmp_path / "txt" / "docs").stat()
    assert docs.st_mtime_ns == (sample_store.source / "docs").stat().st_mtime_ns

    _restore(sample_store, tmp_path / "ex", "-x", "docs/", "-x", "*.mp4", "-x", "/times/old")
    got = _files(tmp_path / "ex")
    assert not any(p.startswith("docs/") for p in got) and "video.mp4" not in got
    assert "times/future" in got and "times/old" not in got and "link-to-notes" in got

    _restore(sample_store, tmp_path / "both", "--include", "/docs", "-x", "*.key")
    assert _files(tmp_path / "both") == {"docs/notes.txt", "docs/caf\u00e9 & space.md"}


def test_dry_run_changes_nothing_and_says_what_would_happen(
    sample_store: SampleStore, tmp_path: Path
) -> None:
    res = _restore(sample_store, tmp_path / "new", "--dry-run")
    assert not (tmp_path / "new").exists(), "a dry run must not even create the target"
    assert res.out.startswith("would restore 8 files") and "0 errors" in res.out

    target = tmp_path / "t"
    _restore(sample_store, target)
    write_file(target / "docs" / "notes.txt", b"changed locally\n")
    (target / "extra.txt").write_text("not in the snapshot")
    before = tree_state(target)
    res = _restore(sample_store, target, "--dry-run", code=7)
    assert "docs/notes.txt: exists and differs" in res.err
    assert res.out.startswith("would restore 0 files") and "7 identical files skipped" in res.out
    res = _restore(sample_store, target, "--dry-run", "--delete")
    assert "would delete /extra.txt" in res.out and "would restore 1 file " in res.out
    assert tree_state(target) == before


def test_delete_makes_the_target_equal_to_the_snapshot_and_never_leaves_it(
    sample_store: SampleStore, tmp_path: Path
) -> None:
    target, outside = tmp_path / "t", tmp_path / "outside"
    write_file(outside / "precious.txt", b"must survive\n")
    _restore(sample_store, target)
    write_file(target / "extra.txt", b"x")
    write_file(target / "junk" / "deep" / "er.txt", b"x")
    shutil.rmtree(target / "empty-dir")
    write_file(target / "empty-dir", b"a file where a folder belongs")
    (target / "docs" / "notes.txt").unlink()
    os.symlink(outside, target / "docs" / "notes.txt")  # a link where a file belongs
    os.symlink(outside, target / "escape")  # a link out of the target, not in the snapshot
    os.symlink(outside / "precious.txt", target / "bin" / "run.sh.bak")
    write_file(target / "times" / "old.log", b"left alone: excluded\n")

    res = _restore(sample_store, target, "--delete", "-x", "*.log")
    deleted = {line.split(" ", 1)[1] for line in res.out.splitlines() if line.startswith("delete ")}
    assert deleted == {
        "/extra.txt", "/junk/deep/er.txt", "/junk/deep/", "/junk/", "/empty-dir",
        "/docs/notes.txt", "/escape", "/bin/run.sh.bak",
    }  # fmt: skip
    assert (outside / "precious.txt").read_bytes() == b"must survive\n"
    assert (target / "times" / "old.log").exists()
    (target / "times" / "old.log").unlink()
    os.utime(
        target / "times",
        ns=((s := (sample_store.source / "times").stat()).st_atime_ns, s.st_mtime_ns),
    )
    want, got = tree_state(sample_store.source), tree_state(target)
    del want[b""], got[b""]
    assert got == want

    again = _restore(sample_store, target, "--delete")
    assert "0 paths deleted" in again.out and "8 identical files skipped" in again.out


def test_delete_refuses_what_it_cannot_do_safely(sample_store: SampleStore, tmp_path: Path) -> None:
    res = cli("at", sample_store.store, "restore", "-to", tmp_path, "latest:/docs/notes.txt",
              "--delete", env=sample_store.env)  # fmt: skip
    assert res.code == 1 and len(res.err_lines) == 1 and "is a file" in res.err
    res = cli("at", sample_store.store, "restore", "-to", "memory://x", "latest", "--delete",
              env=sample_store.env)  # fmt: skip
    assert res.code == 1 and len(res.err_lines) == 1 and "local folders only" in res.err


def test_verify_reads_back_what_was_written(
    sample_store: SampleStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    res = _restore(sample_store, tmp_path / "ok", "--verify")
    assert "verified 8 files" in res.out and "all match" in res.out

    real = LocalDestination.digest

    def rotten(self, relpath):  # type: ignore[no-untyped-def]
        size, md5 = real(self, relpath)
        return (size, "0" * 32) if relpath == "docs/notes.txt" else (size, md5)

    monkeypatch.setattr(LocalDestination, "digest", rotten)
    res = _restore(sample_store, tmp_path / "bad", "--verify", code=7)
    assert "/docs/notes.txt: content differs from what was written" in res.err
    assert "1 mismatch" in res.out


def test_json_prints_status_lines_then_a_summary(
    sample_store: SampleStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jsonstatus, "INTERVAL", 0.01)
    res = _restore(sample_store, tmp_path / "j", "--json")
    lines = [json.loads(line) for line in res.out.splitlines()]
    kinds = [line["message_type"] for line in lines]
    assert kinds[-1] == "summary" and set(kinds[:-1]) == {"status"} and len(kinds) >= 2
    status, summary = lines[-2], lines[-1]
    assert status["percent_done"] == 1.0 and status["files_restored"] == 8
    assert summary["files_restored"] == 8 and summary["total_files"] == 8
    assert summary["bytes_restored"] == summary["total_bytes"] > 6_000_000
    again = _restore(sample_store, tmp_path / "j", "--json")
    summary = json.loads(again.out.splitlines()[-1])
    assert summary["files_skipped"] == 8 and summary["files_restored"] == 0
    write_file(tmp_path / "j" / "docs" / "notes.txt", b"changed\n")
    bad = _restore(sample_store, tmp_path / "j", "--json", code=7)
    error = json.loads(bad.err.splitlines()[0])
    assert error["message_type"] == "error" and error["item"] == "/docs/notes.txt"
    assert error["during"] == "restore" and "differs" in error["error"]["message"]
