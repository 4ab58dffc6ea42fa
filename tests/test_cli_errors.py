"""Bad inputs: each gives exactly one line on stderr, no traceback, and a non-zero exit."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import FAST_KDF, PASSPHRASE, Result, cli, pack_files, run_kloset, write_file

ENV = {"KLOSET_PASSPHRASE": PASSPHRASE}


def one_line(res: Result, code: int, *needles: str) -> str:
    """The single stderr line of a failed run, after checking the exit code and the text."""
    assert res.code == code, (res.code, res.err)
    assert len(res.err_lines) == 1, res.err
    line = res.err_lines[0]
    assert line.startswith("kloset: error: ")
    assert "Traceback" not in res.err
    for needle in needles:
        assert needle in line, line
    return line


@pytest.fixture
def store(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    write_file(src / "a.txt", b"alpha\n")
    write_file(src / "sub" / "b.txt", b"beta\n")
    path = tmp_path / "store"
    assert cli("at", path, "create", *FAST_KDF, env=ENV).code == 0
    assert cli("at", path, "backup", src, env=ENV).code == 0
    return path


def test_wrong_passphrase_says_so(store: Path) -> None:
    res = cli("at", store, "ls", env={"KLOSET_PASSPHRASE": "not it"})
    one_line(res, 3, "wrong passphrase")


def test_wrong_passphrase_from_file(store: Path, tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("also wrong\n")
    res = cli("at", "--passphrase-file", pw, store, "ls")
    one_line(res, 3, "wrong passphrase")
    pw.write_text(PASSPHRASE + "\n")  # the trailing newline is not part of the passphrase
    assert cli("at", "--passphrase-file", pw, store, "ls").code == 0
    one_line(cli("at", "--passphrase-file", tmp_path / "none", store, "ls"), 1, "cannot read")


def test_no_passphrase_and_no_terminal(store: Path) -> None:
    proc = run_kloset("at", store, "ls", env={"KLOSET_PASSPHRASE": ""}, input=b"")
    assert proc.returncode == 3
    assert proc.stderr.decode().count("\n") == 1
    assert "KLOSET_PASSPHRASE" in proc.stderr.decode()


def test_missing_store(tmp_path: Path) -> None:
    where = tmp_path / "nothing"
    one_line(cli("at", where, "ls", env=ENV), 2, "no kloset store", f"kloset at {where} create")


def test_create_on_existing_store(store: Path) -> None:
    one_line(cli("at", store, "create", *FAST_KDF, env=ENV), 2, "already exists")
    one_line(cli("at", store, "create", "--no-encryption"), 2, "already exists")


def test_unknown_and_ambiguous_snapshots(store: Path) -> None:
    one_line(cli("at", store, "ls", "ffffffff", env=ENV), 2, "no snapshot matches 'ffffffff'")
    one_line(cli("at", store, "ls", "xyz", env=ENV), 2, "not a snapshot id")
    one_line(cli("at", store, "ls", "abc", env=ENV), 2, "4+ hex digits")
    real = next((store / "snapshots").iterdir()).name
    # A second snapshot name sharing the first 5 hex digits makes that prefix ambiguous.
    (store / "snapshots" / (real[:5] + "0" * 59)).write_bytes(b"")
    one_line(cli("at", store, "ls", real[:5], env=ENV), 2, "matches 2 snapshots")
    assert cli("at", store, "ls", real[:6] if real[5] != "0" else real, env=ENV).code == 0


def test_missing_path(store: Path, tmp_path: Path) -> None:
    one_line(cli("at", store, "ls", "latest:/nope", env=ENV), 2, "/nope not found")
    one_line(cli("at", store, "cat", "latest:/sub/nope.txt", env=ENV), 2, "/sub/nope.txt")
    one_line(cli("at", store, "cat", "latest:/sub", env=ENV), 2, "not a regular file")
    one_line(cli("at", store, "cat", "latest", env=ENV), 2, "SNAP:/path")
    res = cli("at", store, "restore", "-to", tmp_path / "t", "latest:/nope", env=ENV)
    one_line(res, 2, "not found")
    one_line(cli("at", store, "diff", "latest:/a.txt", "latest:/nope", env=ENV), 2, "/nope")


def test_missing_source_and_bad_destination(store: Path, tmp_path: Path) -> None:
    one_line(cli("at", store, "backup", tmp_path / "nope", env=ENV), 2, "does not exist")
    afile = tmp_path / "afile"
    afile.write_text("x")
    one_line(cli("at", store, "backup", afile, env=ENV), 2, "not a directory")
    res = cli("at", store, "restore", "-to", afile, "latest", env=ENV)
    one_line(res, 2, "not a directory")
    one_line(cli("at", store, "backup", "nosuchproto://x", env=ENV), 2)


def test_corrupt_pack_names_it(store: Path) -> None:
    for pack in pack_files(store):
        data = bytearray(pack.read_bytes())
        data[len(data) // 3] ^= 1
        pack.write_bytes(bytes(data))
    res = cli("at", store, "cat", "latest:/a.txt", env=ENV)
    line = one_line(res, 4, "packs/", "authentication failed")
    assert line.split(": ")[2].startswith("packs/")


def test_damaged_config_and_snapshot(store: Path) -> None:
    snap = next((store / "snapshots").iterdir())
    snap.write_bytes(b"\x00" * 64)
    res = cli("at", store, "ls", env=ENV)
    assert res.code == 0  # the list still works, the damaged header is one warning line
    assert len(res.err_lines) == 1 and "warning" in res.err_lines[0]
    one_line(cli("at", store, "ls", snap.name[:8], env=ENV), 4, "authentication failed")
    chk = cli("at", store, "check", env=ENV)
    assert chk.code == 6 and f"snapshots/{snap.name}" in chk.err
    (store / "CONFIG").write_text("{not json")
    one_line(cli("at", store, "ls", env=ENV), 4, "CONFIG")


def test_usage_errors_are_one_line(store: Path) -> None:
    one_line(cli("at", store, "backup", env=ENV), 2, "Missing parameter: src")
    one_line(cli("at", store, "ls", "--bogus", env=ENV), 2, "--bogus")
    one_line(cli("at", store, "restore", "latest", env=ENV), 2, "Missing parameter: to")
    one_line(cli("at", store, "check", "--read-data-subset", "0/3", env=ENV), 1, "subset")
    one_line(cli("at", store, "check", "--read-data-subset", "150%", env=ENV), 1, "subset")
    one_line(cli("at", store, "find", "a", "b", "c", env=ENV), 2, "at most")


def test_errors_are_one_line_in_a_real_process(store: Path, tmp_path: Path) -> None:
    """The same contract through a fresh interpreter (stderr, exit codes, no traceback)."""
    cases = [
        (["at", store, "ls"], {"KLOSET_PASSPHRASE": "wrong"}, 3),
        (["at", tmp_path / "void", "info"], ENV, 2),
        (["at", store, "create", *FAST_KDF], ENV, 2),
        (["at", store, "cat", "deadbeef:/x"], ENV, 2),
    ]
    for argv, env, code in cases:
        proc = run_kloset(*argv, env=env)
        err = proc.stderr.decode()
        assert proc.returncode == code, (argv, err)
        assert err.count("\n") == 1 and err.startswith("kloset: error: "), err
