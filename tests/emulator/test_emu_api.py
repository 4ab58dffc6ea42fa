"""Status codes and JSON shapes of every metadata route, over real HTTP (httpx)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from koofr_emulator import KoofrEmulator

JSON = "application/json; charset=utf-8"


def _error(resp: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == JSON
    doc = resp.json()
    assert set(doc) == {"error", "requestId"} and doc["requestId"]
    if code is not None:
        assert doc["error"]["code"] == code
    assert isinstance(doc["error"]["message"], str)
    return doc


# -- authentication --------------------------------------------------------------------------


def test_basic_auth_required_everywhere(koofr_emulator: KoofrEmulator) -> None:
    m = koofr_emulator.mount_id
    urls = [
        "/api/v2/mounts",
        f"/api/v2/mounts/{m}",
        "/api/v2/user",
        "/api/v2/places",
        f"/api/v2/mounts/{m}/files/info?path=/",
        f"/api/v2/mounts/{m}/files/list?path=/",
        f"/content/api/v2/mounts/{m}/files/get?path=/x",
    ]
    with httpx.Client(base_url=koofr_emulator.url) as c:
        for url in urls:
            for auth in (
                None,
                (koofr_emulator.user, "wrong"),
                ("other@example.com", koofr_emulator.password),
            ):
                resp = c.get(url, auth=auth)
                assert resp.status_code == 401, url
                assert resp.content == b""
        resp = c.get("/api/v2/mounts", headers={"Authorization": "Basic !!notbase64"})
        assert resp.status_code == 401
        resp = c.get("/api/v2/mounts", auth=(koofr_emulator.user.upper(), koofr_emulator.password))
        assert resp.status_code == 200


def test_token_schemes(koofr_emulator: KoofrEmulator) -> None:
    with httpx.Client(base_url=koofr_emulator.url) as c:
        bad = c.post("/token", json={"email": koofr_emulator.user, "password": "nope"})
        assert bad.status_code == 401 and bad.content == b""
        resp = c.post(
            "/token", json={"email": koofr_emulator.user, "password": koofr_emulator.password}
        )
        assert resp.status_code == 200
        assert resp.headers["x-user-id"] == koofr_emulator.user_id
        token = resp.json()["token"]
        for header in (f"Token token={token}", f'Token token="{token}"', f"Token {token}"):
            assert c.get("/api/v2/mounts", headers={"Authorization": header}).status_code == 200
        assert (
            c.get("/api/v2/mounts", headers={"Authorization": "Token token=forged"}).status_code
            == 401
        )
        legacy = c.get(
            "/token",
            headers={
                "X-Koofr-Email": koofr_emulator.user,
                "X-Koofr-Password": koofr_emulator.password,
            },
        )
        assert legacy.status_code == 200
        hdr = {"Authorization": f"Token {legacy.headers['x-koofr-token']}"}
        assert c.get("/api/v2/user", headers=hdr).status_code == 200


# -- account ---------------------------------------------------------------------------------


def test_mounts_user_places(api: Any, koofr_emulator: KoofrEmulator) -> None:
    mounts = api.http.get("/api/v2/mounts")
    assert mounts.status_code == 200 and mounts.headers["content-type"] == JSON
    listed = mounts.json()["mounts"]
    assert [m["isPrimary"] for m in listed].count(True) == 1
    primary = listed[0]
    assert primary["id"] == koofr_emulator.mount_id
    assert (primary["spaceTotal"], primary["spaceUsed"]) == (10240, 0)
    assert primary["name"] == "Koofr" and primary["origin"] == "hosted"
    assert api.http.get(f"/api/v2/mounts/{api.mount}").json()["id"] == api.mount
    _error(api.http.get("/api/v2/mounts/not-a-mount"), 404, "NotFound")
    _error(api.http.get("/api/v2/mounts/not-a-mount/files/info", params={"path": "/"}), 404)
    user = api.http.get("/api/v2/user").json()
    assert user["email"] == koofr_emulator.user and user["id"] == koofr_emulator.user_id
    assert {"firstName", "lastName"} <= set(user)
    assert api.http.get("/api/v2/places").json()["places"][0]["id"] == api.mount


def test_space_used_tracks_stored_bytes(api: Any) -> None:
    assert api.put("/", "a.bin", b"x" * (3 * 1024 * 1024 + 1)).status_code == 200
    assert api.http.get(f"/api/v2/mounts/{api.mount}").json()["spaceUsed"] == 4
    assert api.copy("/a.bin", "/b.bin").status_code == 200
    assert api.http.get("/api/v2/mounts").json()["mounts"][0]["spaceUsed"] == 7
    assert api.remove("/a.bin").status_code == 200
    assert api.remove("/b.bin").status_code == 200
    # Deleted files wait in Koofr's trash, and (a guess, see behaviour.py) still count.
    assert api.http.get("/api/v2/mounts").json()["mounts"][0]["spaceUsed"] == 7
    trash = api.http.get("/api/v2/trash").json()
    assert [(f["path"], f["size"]) for f in trash["files"]] == [("/a.bin", 3 * 2**20 + 1)] * 1 + [
        ("/b.bin", 3 * 2**20 + 1)
    ]
    assert trash["retentionDays"] == 30 and trash["files"][0]["mountId"] == api.mount
    assert api.emu.empty_trash() == 2 * (3 * 2**20 + 1)
    assert api.http.get("/api/v2/mounts").json()["mounts"][0]["spaceUsed"] == 0


def test_quota_enforced(tmp_path: Any) -> None:
    with (
        KoofrEmulator(tmp_path / "q", space_total_mib=1) as emu,
        httpx.Client(base_url=emu.url, auth=(emu.user, emu.password)) as c,
    ):
        url = f"/content/api/v2/mounts/{emu.mount_id}/files/put"
        params = {"path": "/", "filename": "big", "info": "true"}
        resp = c.post(url, params=params, content=b"x" * (2 * 1024 * 1024))
        assert resp.status_code == 413 and resp.json()["error"]["code"] == "QuotaExceeded"
        assert c.get(f"/api/v2/mounts/{emu.mount_id}/files/list", params={"path": "/"}).json() == {
            "files": []
        }


# -- info / list / tree ----------------------------------------------------------------------


def test_info_and_list(api: Any) -> None:
    root = api.info("/")
    assert root.status_code == 200
    assert root.json()["name"] == "" and root.json()["type"] == "dir"
    _error(api.info("/missing"), 404, "NotFound")
    _error(api.list("/missing"), 404, "NotFound")
    assert api.list("/").json() == {"files": []}
    api.put("/", "file.TXT", b"hello")
    api.mkdir("/", "Sub")
    files = api.list("/").json()["files"]
    assert [f["name"] for f in files] == ["file.TXT", "Sub"]
    f, d = files
    assert f == {
        "name": "file.TXT",
        "type": "file",
        "modified": 1614834367123,
        "size": 5,
        "contentType": "text/plain",
        "hash": "5d41402abc4b2a76b9719d911017c592",
        "tags": {},
    }
    assert d["type"] == "dir" and d["size"] == 0 and d["contentType"] == "" and "hash" not in d
    assert api.info("/FILE.txt").json()["name"] == "file.TXT"  # case-insensitive, preserving
    assert api.info("/sub/").json()["name"] == "Sub"  # trailing slash normalised
    assert api.info("sub").json()["name"] == "Sub"  # missing leading slash
    assert api.info("//sub//").json()["name"] == "Sub"
    _error(api.list("/file.txt"), 400, "NotDir")
    _error(api.info("/file.txt/x"), 404)


def test_query_plus_means_space(api: Any) -> None:
    api.put("/", "sp ace & plus+%.txt", b"x")
    url = f"/api/v2/mounts/{api.mount}/files/info?path=%2Fsp+ace+%26+plus%2B%25.txt"
    resp = api.http.get(url)
    assert resp.status_code == 200 and resp.json()["name"] == "sp ace & plus+%.txt"


@pytest.mark.parametrize("path", ["/a/../b", "/./a", "/a\\b", ".."])
def test_invalid_paths_400(api: Any, path: str) -> None:
    _error(api.info(path), 400, "InvalidPath")


def test_missing_path_param_and_bad_utf8(api: Any) -> None:
    _error(api.http.get(f"/api/v2/mounts/{api.mount}/files/info"), 400)
    _error(api.http.get(f"/api/v2/mounts/{api.mount}/files/info?path=%FF"), 400)


def test_tree(api: Any) -> None:
    api.mkdir("/", "t")
    api.mkdir("/t", "empty")
    api.put("/t", "a.txt", b"a")
    tree = api.http.get(f"/api/v2/mounts/{api.mount}/files/tree", params={"path": "/t"}).json()
    assert tree["name"] == "t" and tree["type"] == "dir"
    assert [c["name"] for c in tree["children"]] == ["a.txt", "empty"]
    assert tree["children"][0]["type"] == "file"
    assert tree["children"][1]["name"] == "empty" and tree["children"][1]["children"] == []


def test_unknown_route_and_wrong_method(api: Any) -> None:
    _error(api.http.get("/api/v2/nope"), 404)
    resp = api.http.post(f"/api/v2/mounts/{api.mount}/files/info", params={"path": "/"})
    assert resp.status_code == 405 and "GET" in resp.headers["allow"]
    # uploads exist only under /content [C]
    resp = api.http.post(f"/api/v2/mounts/{api.mount}/files/put", params={"path": "/"})
    assert resp.status_code == 404


# -- folder ----------------------------------------------------------------------------------


def test_folder_create(api: Any) -> None:
    resp = api.mkdir("/", "New")
    assert resp.status_code == 200 and resp.content == b""
    _error(api.mkdir("/", "new"), 400, "AlreadyExists")  # v2: 400, case-insensitive
    _error(api.mkdir("/missing", "x"), 404, "NotFound")
    api.put("/", "f", b"")
    _error(api.mkdir("/", "F"), 400)  # a file holds the name
    _error(api.mkdir("/f", "x"), 400, "NotDir")
    for bad in ("", ".", "..", "a/b", "a\\b", "x\x01"):
        _error(api.mkdir("/", bad), 400)
    resp = api.http.post(
        f"/api/v2/mounts/{api.mount}/files/folder",
        params={"path": "/"},
        content=b"not json",
        headers={"Content-Type": "application/json"},
    )
    _error(resp, 400)
    assert api.names("/") == ["f", "New"]


def test_dir_modified_is_stable(api: Any) -> None:
    api.mkdir("/", "d")
    before = api.info("/d").json()["modified"]
    api.put("/d", "x", b"1")
    api.mkdir("/d", "sub")
    api.remove("/d/x")
    assert api.info("/d").json()["modified"] == before


# -- remove ----------------------------------------------------------------------------------


def test_remove(api: Any) -> None:
    _error(api.remove("/"), 400, "NotDir")
    _error(api.remove("/missing"), 404)
    api.mkdir("/", "d")
    api.mkdir("/d", "e")
    api.put("/d/e", "f.txt", b"abc")
    _error(api.remove("/d", removeIfEmpty=""), 409, "Conflict")
    _error(api.remove("/d/e/f.txt", removeIfSize="4"), 409)
    _error(api.remove("/d/e/f.txt", removeIfModified="1"), 409)
    _error(api.remove("/d/e/f.txt", removeIfHash="0" * 32), 409)
    _error(api.remove("/d/e/f.txt", removeIfSize="x"), 400)
    ok = api.remove(
        "/D/E/F.TXT",
        removeIfSize="3",
        removeIfModified="1614834367123",
        removeIfHash="900150983cd24fb0d6963f7d28e17f72",
    )
    assert ok.status_code == 200 and ok.content == b""
    assert api.remove("/d/e", removeIfEmpty="").status_code == 200
    api.put("/d", "g", b"g")
    assert api.remove("/d").status_code == 200  # recursive
    assert api.names("/") == []
    assert not any((api.emu.root / ".emulator" / "tmp").iterdir())


# -- copy / move -----------------------------------------------------------------------------


def test_copy(api: Any) -> None:
    api.mkdir("/", "src")
    api.mkdir("/src", "inner")
    api.put("/src/inner", "a.txt", b"aaa", modified="1000")
    api.mkdir("/", "dst")
    resp = api.copy("/src/inner/a.txt", "/dst/b.txt", modified=1614834367123)
    assert resp.status_code == 200 and resp.json() == {"name": "b.txt"}
    b = api.info("/dst/b.txt").json()
    assert (b["modified"], b["size"], b["hash"]) == (
        1614834367123,
        3,
        "47bce5c74f589f4867dbd57e9ca9f808",
    )
    assert api.copy("/src/inner/a.txt", "/dst/c.txt").status_code == 200
    assert api.info("/dst/c.txt").json()["modified"] == 1000  # source's time kept
    assert api.copy("/SRC", "/dst/tree").status_code == 200  # recursive, case-insensitive
    assert api.info("/dst/tree/inner/a.txt").json()["hash"] == b["hash"]
    _error(api.copy("/src/inner/a.txt", "/dst/B.TXT"), 409, "AlreadyExists")
    _error(api.copy("/src", "/src/inner/x"), 400, "CopyIntoSelf")
    _error(api.copy("/src", "/Src"), 400, "CopyIntoSelf")
    _error(api.copy("/", "/x"), 400, "CopyIntoSelf")
    _error(api.copy("/missing", "/x"), 404)
    _error(api.copy("/src", "/missing/x"), 404)
    _error(api.copy("/src", "/dst/a\\b"), 400)
    doc = {"toMountId": "other-mount", "toPath": "/x"}
    url = f"/api/v2/mounts/{api.mount}/files/copy"
    _error(api.http.put(url, params={"path": "/src"}, json=doc), 404)
    _error(api.http.put(url, params={"path": "/src"}, json={"toPath": "/x"}), 400)
    # the original is untouched
    assert api.info("/src/inner/a.txt").json()["modified"] == 1000


def test_move(api: Any) -> None:
    api.mkdir("/", "a")
    api.put("/a", "f.txt", b"data", modified="5000")
    api.mkdir("/", "b")
    resp = api.move("/a/f.txt", "/b/g.txt")
    assert resp.status_code == 200 and resp.json() == {"name": "g.txt"}
    assert api.info("/a/f.txt").status_code == 404
    g = api.info("/b/g.txt").json()
    assert (g["modified"], g["hash"]) == (5000, "8d777f385d3dfec8815d20f7496026dc")
    assert api.move("/b", "/a/b2").status_code == 200  # directories move too
    assert api.info("/a/b2/g.txt").status_code == 200
    assert api.move("/a/b2/g.txt", "/a/b2/G.TXT").status_code == 200  # case-only rename
    assert api.names("/a/b2") == ["G.TXT"]
    api.put("/a", "other", b"")
    _error(api.move("/a/other", "/a/B2"), 409, "AlreadyExists")
    _error(api.move("/a", "/a/b2/x"), 400, "MoveIntoSelf")
    _error(api.move("/a", "/a"), 400, "MoveIntoSelf")
    _error(api.move("/", "/x"), 400, "MoveIntoSelf")
    _error(api.move("/nope", "/x"), 404)
    _error(api.move("/a/other", "/a/b2/G.TXT/x"), 400, "NotDir")
    _error(api.move("/a/b2/G.TXT", "/a/h", ifSize=99), 409, "Conflict")
    assert api.move("/a/b2/G.TXT", "/a/h", ifSize=4, ifModified=5000).status_code == 200


def test_links(api: Any) -> None:
    api.put("/", "shared.txt", b"s")
    url = f"/api/v2/mounts/{api.mount}/links"
    resp = api.http.post(url, json={"path": "/shared.txt"})
    assert resp.status_code == 200
    link = resp.json()
    assert link["path"] == "/shared.txt" and link["url"].endswith(f"/links/{link['id']}")
    _error(api.http.post(url, json={"path": "/none"}), 404)
