"""koofrfs and an account with many mounts: listing them, choosing one, the whole-account view."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest

from koofr_emulator import KoofrEmulator
from koofr_emulator.sample import write_file
from koofrfs.errors import KoofrMountError, KoofrMountOffline
from koofrfs.filesystem import KoofrFileSystem

MTIME = 1_614_834_367_123


@pytest.fixture
def business(tmp_path: Path) -> Iterator[KoofrEmulator]:
    with KoofrEmulator(tmp_path / "business", mounts="business") as emu:
        write_file(emu.store, "/Pictures/cat.jpg", b"cat", MTIME)
        write_file(emu.store, "/notes.txt", b"notes", MTIME)
        write_file(emu.device_store("team"), "/Projects/Design/logo.svg", b"<svg/>", MTIME)
        write_file(emu.device_store("ana"), "/Recipes/soup.txt", b"water", MTIME)
        yield emu


@pytest.fixture
def open_fs(business: KoofrEmulator) -> Callable[..., KoofrFileSystem]:
    def make(**options: Any) -> KoofrFileSystem:
        opts = {**business.storage_options(), "skip_instance_cache": True, **options}
        fs = fsspec.filesystem("koofr", **opts)
        assert isinstance(fs, KoofrFileSystem)
        return fs

    return make


def test_mounts_are_listed_with_what_a_backup_needs(
    open_fs: Callable[..., KoofrFileSystem],
) -> None:
    rows = {m["name"]: m for m in open_fs().mounts()}
    assert rows["Koofr"]["primary"] and rows["Koofr"]["folder"] == "Koofr"
    assert rows["Pictures"]["inside"] == "Koofr:/Pictures" and rows["Pictures"]["folder"] is None
    assert rows["Design"]["inside"] == "Acme Team:/Projects/Design"
    assert rows["Recipes"]["inside"] is None and rows["Recipes"]["writable"] is False
    assert rows["Dropbox"]["keeps_mtime"] is False and rows["Koofr"]["keeps_mtime"] is True
    assert rows["OneDrive"]["online"] is False
    assert rows["Koofr"]["space_total"] == 10240 * 2**20


def test_a_mount_by_id_or_by_name(
    open_fs: Callable[..., KoofrFileSystem], business: KoofrEmulator
) -> None:
    team = business.mount("team").id
    assert open_fs(mountid=team).ls("", detail=False) == ["Projects"]
    assert open_fs(mount="acme team").find("") == ["Projects/Design/logo.svg"]
    assert open_fs(mount=team).mount_id == team
    with pytest.raises(KoofrMountError, match="mount 'Nope' not found .*mounts: Koofr \\("):
        open_fs(mount="Nope").ls("")
    with pytest.raises(ValueError, match="not both"):
        open_fs(mount="Dropbox", mountid=team)


def test_the_whole_account_as_one_folder_per_mount(
    open_fs: Callable[..., KoofrFileSystem],
) -> None:
    fs = open_fs(mount="*")
    # Pictures is Koofr:/Pictures and Design is Acme Team:/Projects/Design: shown there only.
    assert fs.ls("", detail=False) == [
        "Koofr",
        "Acme Team",
        "Recipes",
        "Dropbox",
        "Google Drive",
        "OneDrive",
    ]
    assert fs.info("Koofr")["type"] == "directory" and fs.info("")["type"] == "directory"
    assert fs.cat_file("Koofr/Pictures/cat.jpg") == b"cat"
    assert fs.cat_file("recipes/soup.txt") == b"water"  # mount folders are case-insensitive too
    fs.mv("Koofr/notes.txt", "Acme Team/notes.txt")  # across mounts, server-side
    assert fs.cat_file("Acme Team/notes.txt") == b"notes" and not fs.exists("Koofr/notes.txt")
    with pytest.raises(KoofrMountOffline, match="'OneDrive' .* is offline"):
        fs.ls("OneDrive")
    with pytest.raises(FileNotFoundError):
        fs.ls("Nope")
    with pytest.raises(PermissionError):
        fs.pipe_file("top-level.txt", b"x")
    with pytest.raises(PermissionError):
        fs.rm("Dropbox", recursive=True)


def test_a_read_only_share_and_a_connected_cloud(
    open_fs: Callable[..., KoofrFileSystem], business: KoofrEmulator
) -> None:
    recipes = open_fs(mount="Recipes")
    assert recipes.cat_file("soup.txt") == b"water"
    assert recipes.read_only() == (
        f"Koofr mount 'Recipes' ({business.mount('recipes').id}) is shared with you read-only"
    )
    business.reset_counters()
    with pytest.raises(PermissionError, match="'Recipes' .* is read-only"):
        recipes.pipe_file("new.txt", b"x")
    assert business.counters["files/put"] == 0  # refused before anything was sent
    dropbox = open_fs(mount="Dropbox")
    assert dropbox.keeps_mtime is False and open_fs().keeps_mtime is True
    before = int(time.time() * 1000)
    info = dropbox.pipe_file("a.txt", b"dropbox", modified=MTIME)
    assert info["modified"] >= before and info["md5"] is None  # upload time, no MD5 listed
    assert open_fs(mount="OneDrive").read_only() is not None
    assert open_fs(mount="*").read_only() is not None  # some mount below it refuses
    assert open_fs().quota()["total"] == 10240 * 2**20
    assert open_fs(mount="*").quota("Dropbox/x")["total"] == 2048 * 2**20
