"""A Business account's mounts through the real CLI and Debian's rclone.

rclone reaches a mount other than the primary one through ``mountid`` (the only way it has);
kloset through the same imported remote, or by naming the mount: ``@koofr/Acme Team:/path``,
every mount at once as ``@koofr/*``. The emulator's ``business`` layout has a team mount, a
folder shared out (which is also a folder of the primary mount), a share from a team folder, a
read-only share from another user and connected clouds, one of them offline.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import json_doc

from kloset.locations import open_storage
from kloset.repository import Repository
from kloset.tree import Entry
from kloset.vfs import SnapshotView
from koofr_emulator.http_types import Request, Response
from koofr_emulator.sample import write_file

from .conftest import (
    FAST_KDF,
    PASSPHRASE,
    KoofrWorld,
    assert_same_files,
    make_world,
    needs_rclone,
    one_error_line,
)

pytestmark = [needs_rclone, pytest.mark.slow]

BASE_MS = 1_690_000_000_123


@pytest.fixture
def business(tmp_path: Path) -> Iterator[KoofrWorld]:
    with make_world(tmp_path, mounts="business") as w:
        emu = w.emu
        write_file(emu.store, "/Pictures/2024/cat.jpg", b"cat" * 1000, BASE_MS)
        write_file(emu.store, "/Documents/cv.txt", b"cv", BASE_MS + 1)
        write_file(emu.device_store("team"), "/Projects/Design/logo.svg", b"<svg/>", BASE_MS + 2)
        write_file(emu.device_store("team"), "/Finance/q1.csv", b"1,2,3\n", BASE_MS + 3)
        write_file(emu.device_store("ana"), "/Recipes/soup.txt", b"water", BASE_MS + 4)
        write_file(emu.device_store("dropbox"), "/Camera/img.heic", b"heic", None)
        w.add_rclone_remote("koofr")
        w.import_remote("source", "koofr")
        w.ok("at", "store", "create", *FAST_KDF)
        yield w


def local_tree(root: Path) -> dict[str, bytes]:
    rnd = random.Random(3)
    files = {"a.txt": b"alpha\n", "deep/er/b.bin": rnd.randbytes(70_000), "c d.txt": b"space"}
    for i, (rel, data) in enumerate(files.items()):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, ns=((BASE_MS + i) * 1_000_000,) * 2)
    return files


def snapshot_files(world: KoofrWorld, snap: str) -> dict[str, Entry]:
    """Every file of a snapshot, read with the engine: path -> entry (size, mtime, MD5)."""
    repo = Repository.open(open_storage(str(world.tmp / "store")), PASSPHRASE)
    view = SnapshotView(repo, repo.resolve_snapshot(snap))
    return {path.lstrip("/"): e for path, e in view.walk() if e.is_file}


def test_mounts_are_listed(business: KoofrWorld) -> None:
    out = business.ok("source", "mounts", "@koofr")
    lines = {line.split()[0]: line for line in out.splitlines()[1:] if line.strip()}
    assert "inside Koofr:/Pictures" in lines["Pictures"]
    assert "inside Acme Team:/Projects/Design" in lines["Design"]
    assert "read-only" in lines["Recipes"] and "offline" in lines["OneDrive"]
    assert "no mtimes" in lines["Dropbox"] and "primary" in lines["Koofr"]
    rows = json.loads(business.ok("source", "mounts", "@koofr", "--json"))
    assert [r["name"] for r in rows if r["folder"]] == [
        "Koofr",
        "Acme Team",
        "Recipes",
        "Dropbox",
        "Google Drive",
        "OneDrive",
    ]
    res = business.kloset("source", "mounts", "@nope")
    assert res.returncode == 2 and "unknown remote @nope" in one_error_line(res.stderr)


def test_rclone_and_kloset_on_the_team_mount(business: KoofrWorld) -> None:
    """rclone with ``mountid`` works on the second mount; kloset backs it up and restores it
    exactly, to disk and back into the mount."""
    world, emu = business, business.emu
    world.add_rclone_remote("team", mountid=emu.mount("team").id)
    src = world.tmp / "src"
    files = local_tree(src)
    world.rclone("mkdir", "team:incoming/empty")
    world.rclone("copy", str(src), "team:incoming")
    world.rclone("check", str(src), "team:incoming")
    listed = world.lsjson("team:")
    assert sorted(listed) == sorted(
        ["Finance/q1.csv", "Projects/Design/logo.svg", *(f"incoming/{r}" for r in files)]
    )
    world.import_remote("source", "team")  # the imported remote carries the mountid
    summary = json_doc(world.ok("at", "store", "backup", "--json", "@team"))
    assert summary["errors"] == [] and summary["files"] == 5
    world.ok("at", "store", "restore", "-to", "out", "latest:/incoming")
    assert_same_files(src, world.tmp / "out")
    by_name = json_doc(world.ok("at", "store", "backup", "--json", "@koofr/Acme Team"))
    assert by_name["files"] == 5  # the same mount, named instead of imported with its id
    world.ok("at", "store", "restore", "-to", "@koofr/acme team:/restored", "latest")
    world.rclone("check", "team:incoming", "team:restored/incoming")
    again = world.lsjson("team:restored")
    for rel, entry in listed.items():
        assert again[rel]["ModTime"] == entry["ModTime"], rel
        assert again[rel]["Hashes"] == entry["Hashes"], rel


def test_read_only_offline_and_missing_mounts(business: KoofrWorld) -> None:
    world, emu = business, business.emu
    snap = json_doc(world.ok("at", "store", "backup", "--json", "@koofr/Recipes"))["snapshot"]
    assert set(snapshot_files(world, snap)) == {"soup.txt"}  # a read-only share backs up
    emu.reset_counters()
    res = world.kloset("at", "store", "restore", "-to", "@koofr/Recipes:/back", snap)
    assert res.returncode == 2, res.stderr
    line = one_error_line(res.stderr)
    assert "cannot restore to @koofr/Recipes:/back: Koofr mount 'Recipes'" in line, line
    assert "read-only; nothing was written" in line
    assert emu.counters["files/put"] == emu.counters["files/folder"] == 0
    res = world.kloset("at", "store", "backup", "@koofr/OneDrive")
    assert res.returncode == 2
    line = one_error_line(res.stderr)
    assert "cannot reach source @koofr/OneDrive: Koofr mount 'OneDrive'" in line, line
    assert "is offline" in line
    res = world.kloset("at", "store", "restore", "-to", "@koofr/OneDrive:/x", snap)
    assert res.returncode == 2 and "is offline" in one_error_line(res.stderr)
    res = world.kloset("at", "store", "backup", "@koofr/Nope:/x")
    assert res.returncode == 2 and "mount 'Nope' not found" in one_error_line(res.stderr)


def test_all_mounts_back_up_once_and_say_what_they_skip(business: KoofrWorld) -> None:
    world = business
    res = world.kloset("at", "store", "backup", "--json", "@koofr/*")
    assert res.returncode == 7, res.stderr  # the offline mount is an error, not a silent gap
    error = json.loads(one_error_line(res.stderr))  # --json: restic's error lines on stderr
    message = error["error"]["message"]
    assert error["item"] == "/OneDrive" and error["during"] == "backup"
    assert message.startswith("cannot list directory:") and "offline" in message
    summary = json_doc(res.stdout)
    files = snapshot_files(world, summary["snapshot"])
    # The shared-out folder and the team folder shared again are backed up once, inside the
    # mounts that hold them; the read-only share and the connected cloud are there too.
    assert sorted(files) == [
        "Acme Team/Finance/q1.csv",
        "Acme Team/Projects/Design/logo.svg",
        "Dropbox/Camera/img.heic",
        "Koofr/Documents/cv.txt",
        "Koofr/Pictures/2024/cat.jpg",
        "Recipes/soup.txt",
    ]
    assert files["Koofr/Pictures/2024/cat.jpg"].mtime_ns == BASE_MS * 1_000_000


def test_a_connected_cloud_keeps_listing_mtimes_and_is_not_told_any(business: KoofrWorld) -> None:
    world, emu = business, business.emu
    sent: list[str | None] = []
    original = emu.api.handle

    def spy(req: Request) -> Response:
        if req.route == "files/put":
            sent.append(req.query.get("modified"))
        return original(req)

    emu.api.handle = spy  # type: ignore[method-assign]
    src = world.tmp / "src"
    local_tree(src)
    world.ok("at", "store", "backup", "src")
    world.ok("at", "store", "restore", "-to", "@koofr/Dropbox:/restored", "latest")
    assert len(sent) == 3 and sent == [None] * 3  # no mtime claimed that Dropbox would drop
    world.add_rclone_remote("dropbox", mountid=emu.mount("dropbox").id, setmtime="false")
    check = world.rclone("check", str(src), "dropbox:restored")
    assert "0 differences found" in check.stderr and "3 hashes could not be checked" in check.stderr
    # A backup of the connected cloud keeps the times Koofr lists (its own, not the originals).
    listed_ms = emu.device_store("dropbox").info("/Camera/img.heic").modified
    snap = json_doc(world.ok("at", "store", "backup", "--json", "@koofr/Dropbox:/Camera"))
    assert snapshot_files(world, snap["snapshot"])["img.heic"].mtime_ns == listed_ms * 1_000_000
    restored = emu.device_store("dropbox").list("/restored")
    assert all(e.modified // 1000 != BASE_MS // 1000 for e in restored if not e.is_dir)
