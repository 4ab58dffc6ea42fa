"""Koofr as source and destination, end to end through the CLI (issue 3, "Done when" 2 and 3).

rclone puts a tree into the emulated Koofr; kloset backs it up from ``@remote`` into a local
store and restores it to local disk and to another Koofr folder; rclone then judges the result.
"""

from __future__ import annotations

import os
import random
import time
import unicodedata
from pathlib import Path

import pytest
from helpers import json_doc

from kloset.locations import open_storage
from kloset.repository import Repository
from kloset.vfs import SnapshotView
from koofr_emulator.sample import write_file

from .conftest import (
    FAST_KDF,
    PASSPHRASE,
    KoofrWorld,
    assert_same_files,
    md5_hex,
    needs_rclone,
)

pytestmark = [needs_rclone, pytest.mark.slow]

MiB = 1024 * 1024
BASE_NS = 1_600_000_000_123_456_789  # 2020-09-13, odd sub-millisecond digits on purpose

NO_TREE = {"KLOSET_KOOFR_TREE": "0"}  # list a source one folder at a time
NFC = unicodedata.normalize("NFC", "café")
NFD = unicodedata.normalize("NFD", "café")


def build_tree(root: Path) -> dict[str, bytes]:
    """Names Koofr and URLs find awkward, nesting, empty files and a multi-chunk binary."""
    rnd = random.Random(3)
    files = {
        f"unicode/{NFC}.txt": b"composed\n",
        f"unicode/{NFD}.txt": b"decomposed\n",
        "unicode/日本語 ファイル.txt": "こんにちは\n".encode(),
        "unicode/emoji 😀.txt": b"grin\n",
        "odd/100% done.txt": b"percent\n",
        "odd/#hash#.txt": b"hash\n",
        "odd/what?.txt": b"question\n",
        "odd/a+b=c&d.txt": b"plus\n",
        "odd/it's.txt": b"single quote\n",
        'odd/say "hi".txt': b"double quote\n",
        "odd/with  two spaces.txt": b"spaces\n",
        "odd/%2F not a slash.txt": b"escaped-looking\n",
        "deep/er/est/leaf.bin": rnd.randbytes(70_000),
        "deep/er/sibling.txt": b"sibling\n",
        "empty.dat": b"",
        "deep/empty too": b"",
        "big/random.bin": rnd.randbytes(5 * MiB + 12_345),  # > one 4 MiB upload block
    }
    for i, (rel, data) in enumerate(sorted(files.items())):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        ns = BASE_NS + i * 1_000_000_007
        os.utime(path, ns=(ns, ns))
    (root / "empty dir").mkdir()
    return files


def local_dirs(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_dir()}


@pytest.fixture
def tree_on_koofr(world: KoofrWorld) -> tuple[Path, dict[str, bytes]]:
    """The tree on local disk and, uploaded by rclone, in Koofr at ``/tree``."""
    orig = world.tmp / "orig"
    files = build_tree(orig)
    world.rclone("copy", "--create-empty-src-dirs", str(orig), "koofr-up:tree")
    return orig, files


@pytest.fixture
def koofr_remote(world: KoofrWorld) -> None:
    world.add_rclone_remote("koofr-up")
    world.add_rclone_remote("other", password="unused")  # a second remote to pick from


def test_backup_from_koofr_restore_local_and_to_koofr(
    world: KoofrWorld, koofr_remote: None, tree_on_koofr: tuple[Path, dict[str, bytes]]
) -> None:
    orig, files = tree_on_koofr
    assert NFC != NFD and {f"{NFC}.txt", f"{NFD}.txt"} <= set(os.listdir(orig / "unicode"))
    world.rclone("check", str(orig), "koofr-up:tree")  # rclone itself agrees the upload is whole

    world.import_remote("source", "koofr-up", via="show", alias="koofr")
    world.import_remote("destination", "koofr-up", via="dump", alias="kdest")
    world.ok("at", "store", "create", *FAST_KDF)
    summary = json_doc(world.ok("at", "store", "backup", "--json", "@koofr:/tree"))
    assert summary["files"] == len(files) and summary["errors"] == []
    assert summary["source"] == "@koofr:/tree"

    # To local disk: same names (NFC and NFD kept apart), bytes, mtimes to the ms, empty dirs.
    world.ok("at", "store", "restore", "-to", "restored", "latest")
    assert_same_files(orig, world.tmp / "restored")
    assert local_dirs(world.tmp / "restored") == local_dirs(orig)

    # To another Koofr folder: rclone sees no difference, MD5s and mtimes included.
    out = world.ok("at", "store", "restore", "-to", "@kdest:/restored", "latest")
    assert f"restored {len(files)} files" in out
    world.rclone("check", str(orig), "koofr-up:restored")
    world.rclone("check", "koofr-up:tree", "koofr-up:restored")
    before, after = world.lsjson("koofr-up:tree"), world.lsjson("koofr-up:restored")
    assert sorted(after) == sorted(before) == sorted(files)
    for rel, entry in before.items():
        assert after[rel]["Hashes"]["md5"] == entry["Hashes"]["md5"] == md5_hex(files[rel])
        assert after[rel]["ModTime"] == entry["ModTime"], rel
        assert after[rel]["Size"] == entry["Size"]

    # A rerun resumes: everything already there with the same size and MD5 is skipped.
    world.emu.reset_counters()
    out = world.ok("at", "store", "restore", "-to", "@kdest:/restored", "latest")
    assert world.emu.counters["files/put"] == 0 and world.emu.counters["files/get"] == 0
    assert f"{len(files)} identical files skipped" in out

    # An interrupted restore (one file missing, one cut short) is completed, nothing else sent.
    world.rclone("deletefile", "koofr-up:restored/odd/what?.txt")
    write_file(world.emu.store, "/restored/deep/er/est/leaf.bin", b"cut short", 1)
    world.emu.reset_counters()
    res = world.kloset("at", "store", "restore", "-to", "@kdest:/restored", "latest")
    assert res.returncode == 7  # the truncated file differs: never overwritten silently
    assert "deep/er/est/leaf.bin: exists and differs (use --overwrite" in res.stderr
    assert world.emu.counters["files/put"] == 1
    world.ok("at", "store", "restore", "--overwrite", "-to", "@kdest:/restored", "latest")
    world.rclone("check", str(orig), "koofr-up:restored")


def seed_many(world: KoofrWorld, count: int) -> dict[str, bytes]:
    """``count`` small files in 20 folders, written straight into the emulator's store."""
    rnd = random.Random(11)
    files: dict[str, bytes] = {}
    for i in range(count):
        rel = f"d{i % 20:02d}/file {i:04d}.txt"
        files[rel] = rnd.randbytes(rnd.randint(1, 4096))
        write_file(world.emu.store, f"/many/{rel}", files[rel], 1_700_000_000_000 + i)
    return files


def snapshot_md5s(world: KoofrWorld) -> dict[str, str | None]:
    repo = Repository.open(open_storage(str(world.tmp / "store")), PASSPHRASE)
    view = SnapshotView(repo, repo.resolve_snapshot("latest"))
    return {p.lstrip("/"): e.extra.get("md5") for p, e in view.walk("/") if e.is_file}


def test_incremental_backup_downloads_nothing(world: KoofrWorld) -> None:
    files = seed_many(world, 2000)
    world.add_rclone_remote("koofr")
    world.import_remote("source", "koofr")
    world.ok("at", "store", "create", *FAST_KDF)

    started = time.perf_counter()
    first = json_doc(world.ok("at", "store", "backup", "--json", "@koofr:/many"))
    first_s = time.perf_counter() - started
    assert (first["files"], first["files_read"]) == (2000, 2000)
    assert world.emu.counters["files/get"] == 2000  # one streamed GET per file, no temp copies
    md5s = snapshot_md5s(world)
    assert md5s == {rel: md5_hex(data) for rel, data in files.items()}  # Koofr's, kept

    world.emu.reset_counters()
    started = time.perf_counter()
    second = json_doc(world.ok("at", "store", "backup", "--json", "@koofr:/many"))
    second_s = time.perf_counter() - started
    counters = world.emu.counters
    assert counters["files/get"] == 0
    assert (second["files_read"], second["files_unchanged"]) == (0, 2000)
    assert second["parent"] == first["snapshot"]
    # Listings, not stats: the whole source in one files/tree request.
    assert counters["files/tree"] == 1 and counters.get("files/list", 0) == 0
    assert counters["files/info"] <= 3
    assert snapshot_md5s(world) == md5s
    world.emu.reset_counters()  # without the tree listing: one files/list per folder
    again = json_doc(world.ok("at", "store", "backup", "--json", "@koofr:/many", **NO_TREE))
    assert (again["files_read"], world.emu.counters["files/list"]) == (0, 21)

    # Same size and same mtime but new content: only Koofr's MD5 can tell, and it does.
    changed = "d07/file 0007.txt"
    new = bytes(b ^ 0xFF for b in files[changed])
    write_file(world.emu.store, f"/many/{changed}", new, 1_700_000_000_000 + 7)
    world.emu.reset_counters()
    third = json_doc(world.ok("at", "store", "backup", "--json", "@koofr:/many"))
    assert world.emu.counters["files/get"] == 1 and third["files_read"] == 1
    assert snapshot_md5s(world)[changed] == md5_hex(new)
    print(f"\n2000-file Koofr tree: first backup {first_s:.1f} s, unchanged {second_s:.1f} s")


def test_names_koofr_cannot_hold_are_refused_one_by_one(world: KoofrWorld) -> None:
    """A case-sensitive disk's snapshot restored to Koofr: every name Koofr cannot hold is one
    error line, the rest is restored, and nothing is silently overwritten."""
    src = world.tmp / "case-sensitive"
    (src / "back\\slash dir").mkdir(parents=True)
    (src / "back\\slash dir" / "inside.txt").write_bytes(b"never reached\n")
    (src / "README.md").write_bytes(b"upper\n")
    (src / "readme.md").write_bytes(b"lower, and longer\n")
    (src / "bell\x07.txt").write_bytes(b"control character\n")
    (src / "other.txt").write_bytes(b"unrelated\n")
    world.add_rclone_remote("koofr")
    world.import_remote("destination", "koofr")
    world.ok("at", "store", "create", *FAST_KDF)
    world.ok("at", "store", "backup", "case-sensitive")

    for extra in ((), ("--overwrite",)):  # a rerun, even overwriting, must not flip the winner
        res = world.kloset("at", "store", "restore", *extra, "-to", "@koofr:/case", "latest")
        assert res.returncode == 7 and "Traceback" not in res.stderr
        lines = sorted(line for line in res.stderr.splitlines() if line.strip())
        assert len(lines) == 3, lines
        assert "/back\\slash dir: cannot create directory: invalid Koofr name" in lines[0]
        assert r"/bell\x07.txt: invalid Koofr name" in lines[1]  # shown escaped
        assert "case-insensitive names" in lines[2] and "README.md" in lines[2], lines[2]
    kept = {e.name: e for e in world.emu.store.list("/case")}
    assert sorted(kept) in (["README.md", "other.txt"], ["other.txt", "readme.md"])
    winner = next(n for n in kept if n.lower() == "readme.md")
    assert kept[winner].md5 == md5_hex((src / winner).read_bytes())
