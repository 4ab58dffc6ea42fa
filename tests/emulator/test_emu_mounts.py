"""A Business account's mounts: devices, shares out and in, read-only, connected, offline, trash."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from koofr_emulator import KoofrEmulator
from koofr_emulator.sample import write_file

MTIME = 1_614_834_367_123


@pytest.fixture
def business(tmp_path: Path) -> Iterator[KoofrEmulator]:
    with KoofrEmulator(tmp_path / "business", mounts="business") as emu:
        yield emu


@pytest.fixture
def http(business: KoofrEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=business.url, auth=(business.user, business.password)) as c:
        yield c


def files(mount: str, op: str) -> str:
    return f"/api/v2/mounts/{mount}/files/{op}"


def put(http: httpx.Client, mount: str, parent: str, name: str, data: bytes) -> httpx.Response:
    return http.post(
        f"/content/api/v2/mounts/{mount}/files/put",
        params={
            "path": parent,
            "filename": name,
            "info": "true",
            "overwrite": "true",
            "modified": str(MTIME),
        },
        files={"file": ("dummy", data)},
    )


def ids(emu: KoofrEmulator) -> dict[str, str]:
    return {v.spec.slug: v.id for v in emu.views}


def test_the_mounts_of_a_business_account(business: KoofrEmulator, http: httpx.Client) -> None:
    mounts = http.get("/api/v2/mounts").json()["mounts"]
    by_name = {m["name"]: m for m in mounts}
    assert list(by_name) == [
        "Koofr",
        "Acme Team",
        "Pictures",
        "Design",
        "Recipes",
        "Dropbox",
        "Google Drive",
        "OneDrive",
    ]
    assert [m["name"] for m in mounts if m["isPrimary"]] == ["Koofr"]
    assert by_name["Koofr"]["id"] == business.mount_id
    assert {m["name"]: m["type"] for m in mounts if m["type"] != "device"} == {
        "Pictures": "export",
        "Design": "import",
        "Recipes": "import",
    }
    assert by_name["Dropbox"]["origin"] == "dropbox" and by_name["Koofr"]["origin"] == "hosted"
    assert by_name["Recipes"]["permissions"]["WRITE"] is False
    assert by_name["Recipes"]["canWrite"] is False and by_name["Design"]["canWrite"] is True
    assert by_name["OneDrive"]["online"] is False
    assert all(m["isShared"] for m in mounts if m["type"] != "device")
    # A folder shared out is a mount inside the primary one; shares from others say whose.
    assert by_name["Pictures"]["root"] == {
        "id": by_name["Koofr"]["id"],
        "name": "Pictures",
        "path": "/Pictures",
    }
    assert by_name["Design"]["root"]["id"] == by_name["Acme Team"]["id"]
    assert by_name["Recipes"]["root"]["id"] not in {m["id"] for m in mounts}
    places = [m["name"] for m in http.get("/api/v2/places").json()["places"]]
    assert places == ["Koofr", "Acme Team", "Dropbox", "Google Drive", "OneDrive"]
    shared = http.get("/api/v2/shared").json()["files"]
    assert sorted(f["mount"]["name"] for f in shared) == ["Design", "Pictures", "Recipes"]


def test_a_shared_folder_is_the_same_files(business: KoofrEmulator, http: httpx.Client) -> None:
    m = ids(business)
    write_file(business.store, "/Pictures/2024/a.jpg", b"jpeg", MTIME)
    listed = http.get(files(m["pictures"], "list"), params={"path": "/2024"}).json()["files"]
    assert [(f["name"], f["modified"]) for f in listed] == [("a.jpg", MTIME)]
    assert http.get(files(m["pictures"], "info"), params={"path": "/"}).json()["name"] == ""
    assert put(http, m["pictures"], "/2024", "b.jpg", b"more").status_code == 200
    assert business.store.info("/Pictures/2024/b.jpg").size == 4  # written through the share
    write_file(business.device_store("team"), "/Projects/Design/logo.svg", b"<svg/>")
    got = http.get(f"/content/api/v2/mounts/{m['design']}/files/get", params={"path": "/logo.svg"})
    assert got.content == b"<svg/>"


def test_a_read_only_share_refuses_writes(business: KoofrEmulator, http: httpx.Client) -> None:
    m = ids(business)["recipes"]
    write_file(business.device_store("ana"), "/Recipes/soup.txt", b"water")
    assert http.get(files(m, "list"), params={"path": "/"}).status_code == 200
    refused = [
        put(http, m, "/", "x.txt", b"x"),
        http.post(files(m, "folder"), params={"path": "/"}, json={"name": "new"}),
        http.delete(files(m, "remove"), params={"path": "/soup.txt"}),
        http.put(
            files(m, "move"),
            params={"path": "/soup.txt"},
            json={"toMountId": m, "toPath": "/s.txt"},
        ),
        http.put(
            files(business.mount_id, "copy"),
            params={"path": "/"},
            json={"toMountId": m, "toPath": "/copied"},
        ),
    ]
    assert [r.status_code for r in refused] == [403] * 5
    assert refused[0].json()["error"]["code"] == "Forbidden"
    assert [e.name for e in business.device_store("ana").list("/Recipes")] == ["soup.txt"]


def test_an_offline_mount(business: KoofrEmulator, http: httpx.Client) -> None:
    m = ids(business)["onedrive"]
    resp = http.get(files(m, "list"), params={"path": "/"})
    assert resp.status_code == 503 and resp.json()["error"]["code"] == "DeviceOffline"
    assert http.get(f"/api/v2/mounts/{m}").json()["online"] is False  # the mount itself answers
    assert httpx.post(f"{business.url}/_emulator/mounts/OneDrive/online").status_code == 200
    assert http.get(files(m, "list"), params={"path": "/"}).status_code == 200
    assert http.get(f"/api/v2/mounts/{m}").json()["online"] is True


def test_a_connected_cloud_keeps_no_mtime_and_no_md5(
    business: KoofrEmulator, http: httpx.Client
) -> None:
    m = ids(business)
    before = int(time.time() * 1000)
    info = put(http, m["dropbox"], "/", "a.txt", b"dropbox").json()
    assert info["modified"] >= before and "hash" not in info  # the upload time, no MD5
    listed = http.get(files(m["dropbox"], "list"), params={"path": "/"}).json()["files"]
    assert "hash" not in listed[0] and listed[0]["modified"] >= before
    got = http.get(f"/content/api/v2/mounts/{m['dropbox']}/files/get", params={"path": "/a.txt"})
    assert '"hash"' not in got.headers["x-file-info"]
    gdrive = put(http, m["gdrive"], "/", "g.txt", b"drive").json()
    assert gdrive["modified"] >= before and len(gdrive["hash"]) == 32  # Google Drive has MD5


def test_copy_and_move_between_devices(business: KoofrEmulator, http: httpx.Client) -> None:
    m = ids(business)
    write_file(business.store, "/docs/a.txt", b"AAA", MTIME)
    copy = http.put(
        files(m["primary"], "copy"),
        params={"path": "/docs"},
        json={"toMountId": m["team"], "toPath": "/docs-copy", "modified": MTIME},
    )
    assert copy.status_code == 200
    team = business.device_store("team")
    assert team.info("/docs-copy/a.txt").md5 == business.store.info("/docs/a.txt").md5
    move = http.put(
        files(m["team"], "move"),
        params={"path": "/docs-copy/a.txt"},
        json={"toMountId": m["primary"], "toPath": "/moved.txt"},
    )
    assert move.status_code == 200 and move.json() == {"name": "moved.txt"}
    assert business.store.info("/moved.txt").modified == MTIME
    assert team.list("/docs-copy") == []


def test_deleted_files_wait_in_the_trash(business: KoofrEmulator, http: httpx.Client) -> None:
    m = ids(business)
    write_file(business.store, "/old/a.bin", b"x" * 2_000_000)
    used = http.get(f"/api/v2/mounts/{m['primary']}").json()["spaceUsed"]
    assert http.delete(files(m["primary"], "remove"), params={"path": "/old"}).status_code == 200
    trash: dict[str, Any] = http.get("/api/v2/trash").json()
    assert [(f["mountId"], f["path"], f["size"]) for f in trash["files"]] == [
        (m["primary"], "/old", 2_000_000)
    ]
    assert http.get(f"/api/v2/mounts/{m['primary']}").json()["spaceUsed"] == used
    assert httpx.post(f"{business.url}/_emulator/trash/empty").json() == {"freed": 2_000_000}
    assert http.get(f"/api/v2/mounts/{m['primary']}").json()["spaceUsed"] == 0
