"""Damage and partial failure through the CLI: a flipped byte in any pack, unreadable files."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import (
    FAST_KDF,
    PASSPHRASE,
    cli,
    flip_byte,
    open_repo,
    pack_files,
    random_bytes,
    run_kloset,
    tree_state,
    write_file,
)

from kloset.pack import pack_name
from kloset.vfs import SnapshotView

ENV = {"KLOSET_PASSPHRASE": PASSPHRASE}


def _small_world(base: Path) -> tuple[Path, Path]:
    """A tree spread over many small packs (256 KiB pack size), so every pack can be hit."""
    src = base / "src"
    for i in range(120):
        write_file(src / f"d{i % 4}" / f"f{i:03d}.txt", f"small {i}\n".encode() * (i + 1))
    write_file(src / "big.bin", random_bytes(3 * 1024 * 1024, 7))
    write_file(src / "mid.bin", random_bytes(700 * 1024, 8))
    os.symlink("big.bin", src / "link")
    store = base / "store"
    assert cli("at", store, "create", *FAST_KDF, "--pack-size", "262144", env=ENV).code == 0
    assert cli("at", store, "backup", src, env=ENV).code == 0
    return src, store


@pytest.mark.slow
def test_flipping_a_byte_in_any_pack_is_named_and_spares_other_files(tmp_path: Path) -> None:
    src, store = _small_world(tmp_path)
    want = tree_state(src)
    packs = pack_files(store)
    assert len(packs) >= 4
    for n, pack in enumerate(packs):
        name = pack.relative_to(store).as_posix()
        size = pack.stat().st_size
        offset = flip_byte(pack, size // 2 if n % 2 == 0 else size - 1)  # blob or trailer
        try:
            res = cli("at", store, "check", "--read-data", "--json", env=ENV)
            assert res.code == 6, name
            assert any(line.startswith(f"kloset: {name}: ") for line in res.err_lines), res.err
            assert res.err_lines[-1].startswith("kloset: error: check failed")
            report = res.json()
            assert report["damaged_packs"] == [name]
            assert report["ok"] is False
            affected = {p for paths in report["affected"].values() for p in paths}

            target = tmp_path / f"restore{n}"
            restored = cli("at", store, "restore", "--to", target, "latest", env=ENV)
            assert restored.code == (7 if affected else 0), restored.err
            got = tree_state(target)
            for rel, state in want.items():
                path = "/" + os.fsdecode(rel)
                if rel == b"" or any(
                    path == a or path.startswith(a.rstrip("/") + "/") for a in affected
                ):
                    continue
                assert got.get(rel) == state, (name, path)
            for path in affected:  # every damaged file (or unreadable dir/) is reported
                prefix = f"kloset: {path.rstrip('/')}: "
                assert any(line.startswith(prefix) for line in restored.err_lines), restored.err
        finally:
            flip_byte(pack, offset)
    assert cli("at", store, "check", "--read-data", env=ENV).code == 0


def test_damaged_pack_stops_only_the_files_that_use_it(tmp_path: Path) -> None:
    src, store = _small_world(tmp_path)
    report = cli("at", store, "check", "--json", env=ENV).json()
    assert report["ok"] is True
    # Find the pack holding big.bin's first chunk and break it in the middle of that chunk.
    repo = open_repo(store)
    entry = SnapshotView(repo, repo.resolve_snapshot("latest")).stat("/big.bin")
    loc = repo.index.get(entry.chunks[0])
    flip_byte(store / pack_name(loc.pack_id), loc.offset + loc.length // 2)

    cat = run_kloset("at", store, "cat", "latest:/big.bin", env=ENV)
    assert cat.returncode == 4
    err = cat.stderr.decode().strip()
    assert "\n" not in err and pack_name(loc.pack_id) in err and "authentication failed" in err
    ok = run_kloset("at", store, "cat", "latest:/mid.bin", env=ENV)
    assert ok.returncode == 0 and ok.stdout == (src / "mid.bin").read_bytes()

    res = cli("at", store, "check", "--read-data", env=ENV)
    assert res.code == 6
    assert f"kloset: damaged in snapshot {repo.resolve_snapshot('latest').hex[:12]}: /big.bin" in (
        res.err_lines
    )
    restored = cli("at", store, "restore", "-to", tmp_path / "out", "latest", env=ENV)
    assert restored.code == 7
    assert [line.split(":")[1].strip() for line in restored.err_lines] == ["/big.bin"]
    assert (tmp_path / "out" / "mid.bin").read_bytes() == (src / "mid.bin").read_bytes()
    assert (tmp_path / "out" / "d3" / "f119.txt").read_bytes() == (
        src / "d3" / "f119.txt"
    ).read_bytes()


def _unprivileged(argv: list[str]) -> list[str] | None:
    """`argv` wrapped so that chmod 000 really stops it (tests often run as root), or None."""
    if os.geteuid() != 0:
        return argv
    capsh = shutil.which("capsh")
    if capsh is None:
        return None
    # capsh hands what follows `--` to a shell; without these two capabilities root obeys modes.
    return [capsh, "--drop=cap_dac_override,cap_dac_read_search", "--", "-c", shlex.join(argv)]


def test_unreadable_file_is_a_snapshot_error_and_the_backup_goes_on(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_file(src / "a.txt", b"readable\n")
    write_file(src / "secret.txt", b"nobody may read this\n", mode=0)
    write_file(src / "z" / "z.txt", b"after the bad file\n")
    probe = _unprivileged(["cat", str(src / "secret.txt")])
    if probe is None or subprocess.run(probe, capture_output=True).returncode == 0:
        pytest.skip("cannot make a file unreadable here (root without capsh)")
    store = tmp_path / "store"
    assert cli("at", store, "create", *FAST_KDF, env=ENV).code == 0
    cmd = _unprivileged(
        [sys.executable, "-m", "kloset.cli.main", "at", str(store), "backup", str(src)]
    )
    assert cmd is not None
    res = subprocess.run(cmd, env={**os.environ, **ENV}, capture_output=True, timeout=120)
    out, err = res.stdout.decode(), res.stderr.decode()
    assert res.returncode == 7, err
    assert err.strip().splitlines() == ["kloset: /secret.txt: cannot read: Permission denied"]
    last = out.strip().splitlines()[-1]
    assert last.startswith("snapshot ") and last.endswith(" created")
    assert "errors    1" in out
    info = cli("at", store, "info", "latest", "--json", env=ENV).json()
    assert info["errors"] == [{"path": "/secret.txt", "error": "cannot read: Permission denied"}]
    assert info["files"] == 2
    target = tmp_path / "out"
    assert cli("at", store, "restore", "-to", target, "latest", env=ENV).code == 0
    assert sorted(p.name for p in target.rglob("*")) == ["a.txt", "z", "z.txt"]
