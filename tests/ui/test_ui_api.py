"""The viewer's JSON API, driven in-process with Starlette's TestClient."""

from __future__ import annotations

import io
import os
import tarfile
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ui_helpers import MANY, UiStore, folder_contents, wait_for_job

from kloset.ui import create_app
from kloset.ui.preview import HEX_LIMIT, TEXT_LIMIT

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette nags about httpx2 at import time
    from starlette.testclient import TestClient


@pytest.fixture(scope="module")
def restore_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("api-restore")


@pytest.fixture(scope="module")
def client(ui_store: UiStore, token: str, restore_root: Path) -> Iterator[TestClient]:
    app = create_app(ui_store.repo, token=token, restore_targets=[str(restore_root)])
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as c:
        yield c


@pytest.fixture(scope="module")
def anon(ui_store: UiStore, token: str) -> Iterator[TestClient]:
    with TestClient(create_app(ui_store.repo, token=token)) as c:
        yield c


def snap_url(store: UiStore, what: str, **params: Any) -> str:
    from urllib.parse import urlencode

    return f"/api/snapshots/{store.second.hex}/{what}?" + urlencode(params)


# -- access -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    ["/", "/static/app.js", "/api/info", "/api/snapshots", "/api/snapshots/latest",
     "/api/snapshots/latest/tree?path=/", "/api/snapshots/latest/raw?path=/docs/notes.txt",
     "/api/snapshots/latest/archive?path=/docs", "/api/search?pattern=*", "/api/jobs"],
)  # fmt: skip
def test_every_route_needs_the_token(anon: TestClient, url: str) -> None:
    assert anon.get(url).status_code == 401
    assert anon.get(url, headers={"Authorization": "Bearer not-the-token"}).status_code == 401
    sep = "&" if "?" in url else "?"
    assert anon.get(url + sep + "token=wrong-token-wrong-token").status_code == 401


def test_unauthorised_answers_say_what_to_do(anon: TestClient) -> None:
    page = anon.get("/")
    assert "token" in page.text and page.headers["content-type"].startswith("text/html")
    api = anon.get("/api/info")
    assert api.json() == {"error": "missing or wrong access token"}
    assert anon.post("/api/restore", json={}).status_code == 401


def test_url_token_becomes_a_cookie(anon: TestClient, token: str) -> None:
    first = anon.get(f"/?token={token}&x=1", follow_redirects=False)
    assert first.status_code == 303
    assert first.headers["location"] == "/?x=1"  # the token leaves the address bar
    cookie = first.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    page = anon.get("/")
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert anon.get("/api/info").status_code == 200
    # A cookie alone may not change anything: other sites could make a browser send it.
    assert anon.post("/api/restore", json={"snapshot": "latest", "target": "t0"}).status_code == 403
    anon.cookies.clear()
    assert anon.get("/api/info").status_code == 401


# -- snapshots --------------------------------------------------------------------------------
def test_snapshot_list_sorts_filters_and_pages(client: TestClient, ui_store: UiStore) -> None:
    ids = lambda r: [s["id"] for s in r.json()["items"]]  # noqa: E731
    s1, s2, bad = ui_store.first.hex, ui_store.second.hex, ui_store.damaged.hex
    assert ids(client.get("/api/snapshots")) == [s2, s1, bad]
    assert ids(client.get("/api/snapshots?sort=time&order=asc")) == [bad, s1, s2]
    page = client.get("/api/snapshots?limit=1&offset=1").json()
    assert page["total"] == 3 and [s["id"] for s in page["items"]] == [s1]
    assert ids(client.get("/api/snapshots?q=nightly")) == [s2]
    assert ids(client.get("/api/snapshots?sort=errors&order=desc"))[0] == bad
    doc = client.get("/api/snapshots?limit=1").json()["items"][0]
    assert doc["tags"] == ["nightly", "second"] and doc["files"] == ui_store.second.stats["files"]
    assert client.get("/api/snapshots?sort=nope").status_code == 400
    assert client.get("/api/snapshots?limit=0").status_code == 400


def test_snapshot_by_prefix_latest_and_unknown(client: TestClient, ui_store: UiStore) -> None:
    assert client.get("/api/snapshots/latest").json()["id"] == ui_store.second.hex
    assert client.get(f"/api/snapshots/{ui_store.first.hex[:8]}").json()["id"] == ui_store.first.hex
    assert client.get("/api/snapshots/ffffffff").status_code == 404
    assert client.get("/api/snapshots/..%2F..%2Fetc/tree?path=/").status_code == 404


def test_errors_view(client: TestClient, ui_store: UiStore) -> None:
    doc = client.get(f"/api/snapshots/{ui_store.damaged.hex}/errors").json()
    assert doc["total"] == 2
    assert doc["items"][0] == {"path": "/docs/locked.txt", "error": "permission denied"}
    assert client.get(f"/api/snapshots/{ui_store.second.hex}/errors").json()["items"] == []


# -- tree and preview -------------------------------------------------------------------------
def test_tree_lists_a_folder(client: TestClient, ui_store: UiStore) -> None:
    doc = client.get(snap_url(ui_store, "tree", path="/")).json()
    names = [e["name"] for e in doc["entries"]]
    assert names == sorted(os.listdir(ui_store.source))
    link = next(e for e in doc["entries"] if e["name"] == "link-to-readme")
    assert link["type"] == "symlink" and link["target"] == "docs/readme.md"
    notes = client.get(snap_url(ui_store, "tree", path="/docs/notes.txt")).json()
    assert notes["entry"]["size"] == (ui_store.source / "docs/notes.txt").stat().st_size
    assert "entries" not in notes


def test_big_folder_comes_in_windows(client: TestClient, ui_store: UiStore) -> None:
    window = client.get(snap_url(ui_store, "tree", path="/many", offset=4090, limit=20)).json()
    assert window["total"] == MANY
    # The window crosses the boundary between two tree pages.
    assert [e["name"] for e in window["entries"]] == [f"f{i:05d}.txt" for i in range(4090, 4110)]
    seen: list[str] = []
    while len(seen) < MANY:
        part = client.get(
            snap_url(ui_store, "tree", path="/many", offset=len(seen), limit=1000)
        ).json()
        assert part["entries"], "a window came back empty before the end"
        seen += [e["name"] for e in part["entries"]]
    assert seen == sorted(os.listdir(ui_store.source / "many"))
    assert client.get(snap_url(ui_store, "tree", path="/many", limit=5000)).status_code == 400


def test_preview_of_each_kind(client: TestClient, ui_store: UiStore) -> None:
    src = ui_store.source
    code = client.get(snap_url(ui_store, "preview", path="/src/app.py")).json()
    assert code["kind"] == "text" and code["language"] == "python"
    assert code["text"] == (src / "src/app.py").read_text() and not code["truncated"]
    big = client.get(snap_url(ui_store, "preview", path="/data/big.txt")).json()
    assert big["truncated"] and big["text"] == (src / "data/big.txt").read_text()[:TEXT_LIMIT]
    blob = client.get(snap_url(ui_store, "preview", path="/data/blob.bin")).json()
    raw = (src / "data/blob.bin").read_bytes()
    assert blob["kind"] == "binary" and len(blob["hex"]) == HEX_LIMIT // 16
    assert blob["hex"][1].startswith("00000010  " + " ".join(f"{b:02x}" for b in raw[16:24]))
    image = client.get(snap_url(ui_store, "preview", path="/images/logo.png")).json()
    assert (image["kind"], image["mime"]) == ("image", "image/png")
    html = client.get(snap_url(ui_store, "preview", path="/src/page.html")).json()
    assert html["kind"] == "text" and html["language"] == "markup"
    assert client.get(snap_url(ui_store, "preview", path="/empty/.keep")).json()["kind"] == "empty"
    assert client.get(snap_url(ui_store, "preview", path="/docs")).status_code == 400


# -- downloads --------------------------------------------------------------------------------
def test_file_download_is_byte_exact(client: TestClient, ui_store: UiStore) -> None:
    for rel in ("data/blob.bin", "images/logo.png", "docs/résumé ü.txt", "empty/.keep"):
        r = client.get(snap_url(ui_store, "raw", path="/" + rel, download=1))
        assert r.status_code == 200
        assert r.content == (ui_store.source / rel).read_bytes()
        assert r.headers["content-disposition"].startswith("attachment;")
    unicode_name = client.get(snap_url(ui_store, "raw", path="/docs/résumé ü.txt", download=1))
    assert (
        "filename*=UTF-8''r%C3%A9sum%C3%A9%20%C3%BC.txt"
        in unicode_name.headers["content-disposition"]
    )


def test_inline_types_never_run_script(client: TestClient, ui_store: UiStore) -> None:
    html = client.get(snap_url(ui_store, "raw", path="/src/page.html"))
    assert html.headers["content-type"].startswith("text/plain")
    assert "sandbox" in html.headers["content-security-policy"]
    assert html.headers["x-content-type-options"] == "nosniff"
    png = client.get(snap_url(ui_store, "raw", path="/images/logo.png"))
    assert png.headers["content-type"] == "image/png"
    assert png.headers["content-disposition"].startswith("inline;")
    blob = client.get(snap_url(ui_store, "raw", path="/data/blob.bin"))
    assert blob.headers["content-type"] == "application/octet-stream"
    assert blob.headers["content-disposition"].startswith("attachment;")


def test_ranges_span_chunks(client: TestClient, ui_store: UiStore) -> None:
    data = (ui_store.source / "data/blob.bin").read_bytes()
    url = snap_url(ui_store, "raw", path="/data/blob.bin")
    for header, want in [
        ("bytes=1000-299999", data[1000:300000]),
        ("bytes=-100", data[-100:]),
        ("bytes=700000-", data[700000:]),
        ("bytes=0-0", data[:1]),
    ]:
        r = client.get(url, headers={"Range": header})
        assert r.status_code == 206, header
        assert r.content == want, header
        assert r.headers["content-range"].endswith(f"/{len(data)}")
    assert client.get(url, headers={"Range": f"bytes={len(data)}-"}).status_code == 416
    head = client.head(url)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(data))


def _expected(root: Path) -> dict[str, bytes | str]:
    return {k: v for k, v in folder_contents(root).items()}


def test_tar_of_a_folder_matches_the_source(client: TestClient, ui_store: UiStore) -> None:
    r = client.get(snap_url(ui_store, "archive", path="/", format="tar"))
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-tar"
    got: dict[str, bytes | str] = {}
    with tarfile.open(fileobj=io.BytesIO(r.content)) as tar:
        for m in tar:
            top, _, rel = m.name.partition("/")
            assert top == f"snapshot-{ui_store.second.hex[:8]}"
            if not rel:
                continue
            if m.issym():
                got[rel] = "-> " + m.linkname
            elif m.isdir():
                got[rel] = "<dir>"
            else:
                got[rel] = tar.extractfile(m).read()  # type: ignore[union-attr]
    assert got == _expected(ui_store.source)


def test_zip_of_a_folder_matches_the_source(client: TestClient, ui_store: UiStore) -> None:
    r = client.get(snap_url(ui_store, "archive", path="/docs", format="zip"))
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert 'filename="docs.zip"' in r.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        assert zf.testzip() is None
        got: dict[str, bytes | str] = {}
        for info in zf.infolist():
            assert info.filename.startswith("docs/")
            rel = info.filename[len("docs/") :].rstrip("/")
            if rel:
                got[rel] = "<dir>" if info.is_dir() else zf.read(info)
    assert got == _expected(ui_store.source / "docs")
    assert client.get(snap_url(ui_store, "archive", path="/docs", format="rar")).status_code == 400
    assert client.get(snap_url(ui_store, "archive", path="/docs/notes.txt")).status_code == 400


# -- search and diff --------------------------------------------------------------------------
def test_search_by_name_and_by_path(client: TestClient, ui_store: UiStore) -> None:
    js = client.get("/api/search?pattern=*.js").json()
    # util.js was deleted before the second snapshot.
    assert {m["snapshot"] for m in js["items"]} == {ui_store.first.hex, ui_store.damaged.hex}
    assert {m["path"] for m in js["items"]} == {"/src/util.js"}
    deep = client.get(
        f"/api/search?pattern=docs/**/*.txt&snapshot={ui_store.second.hex[:10]}"
    ).json()
    assert {m["path"] for m in deep["items"]} == {
        "/docs/notes.txt",
        "/docs/résumé ü.txt",
        "/docs/sub/deep.txt",
    }
    assert client.get("/api/search?pattern=README.MD&snapshot=latest").json()["items"] == []
    icase = client.get("/api/search?pattern=README.MD&snapshot=latest&icase=1").json()["items"]
    assert [m["path"] for m in icase] == ["/docs/readme.md"]
    assert client.get("/api/search?pattern=*.py&path=/docs").json()["items"] == []
    capped = client.get("/api/search?pattern=*.txt&limit=5").json()
    assert len(capped["items"]) == 5 and capped["truncated"]
    assert client.get("/api/search?pattern=").status_code == 400


def test_diff_of_two_snapshots(client: TestClient, ui_store: UiStore) -> None:
    d = client.get(f"/api/diff?a={ui_store.first.hex}&b={ui_store.second.hex}").json()
    assert {e["path"] for e in d["added"]} == {"/added", "/added/new.txt"}
    assert [e["path"] for e in d["removed"]] == ["/src/util.js"]
    notes = next(e for e in d["changed"] if e["path"] == "/docs/notes.txt")
    assert "content" in notes["reasons"] and notes["old_size"] == len(ui_store.first_notes)
    assert d["trees_skipped"] > 0  # unchanged folders were not read again
    docs = client.get(f"/api/diff?a={ui_store.first.hex}&b={ui_store.second.hex}&path=/docs").json()
    assert d["counts"]["removed"] == 1 and [e["path"] for e in docs["changed"]] == [
        "/docs/notes.txt"
    ]
    same = client.get(f"/api/diff?a={ui_store.first.hex}&b={ui_store.damaged.hex}").json()
    assert same["counts"] == {"added": 0, "removed": 0, "changed": 0}
    assert client.get("/api/diff?a=latest").status_code == 400


# -- restore ----------------------------------------------------------------------------------
def _restore(client: TestClient, **body: Any) -> Any:
    return client.post("/api/restore", json={"snapshot": "latest", "target": "t0", **body})


def _job(client: TestClient, job_id: str) -> dict[str, Any]:
    return client.get(f"/api/jobs/{job_id}").json()  # type: ignore[no-any-return]


def test_restore_a_folder_as_a_job(
    client: TestClient, ui_store: UiStore, restore_root: Path
) -> None:
    started = _restore(client, path="/docs", subdir="api/run1")
    assert started.status_code == 202, started.text
    job = wait_for_job(lambda: _job(client, started.json()["id"]))
    assert job["state"] == "done", job
    assert job["files_total"] == job["files_done"] == 4 and job["bytes_done"] == job["bytes_total"]
    assert folder_contents(restore_root / "api/run1") == folder_contents(ui_store.source / "docs")
    assert any(j["id"] == job["id"] for j in client.get("/api/jobs").json()["items"])
    # A second run finds everything in place.
    second = _restore(client, path="/docs", subdir="api/run1").json()["id"]
    again = wait_for_job(lambda: _job(client, second))
    assert again["files_skipped"] == 4 and again["files_written"] == 0


def test_restore_a_single_file(client: TestClient, ui_store: UiStore, restore_root: Path) -> None:
    started = _restore(client, path="/data/blob.bin", subdir="/one/")
    job = wait_for_job(lambda: _job(client, started.json()["id"]))
    assert job["state"] == "done", job
    assert (restore_root / "one/blob.bin").read_bytes() == (
        ui_store.source / "data/blob.bin"
    ).read_bytes()


def test_restore_cannot_leave_its_target(
    client: TestClient, restore_root: Path, tmp_path: Path, ui_store: UiStore, token: str
) -> None:
    for subdir in ("../escape", "a/../../escape", "..", "a/..\\..\\escape"):
        r = _restore(client, path="/docs", subdir=subdir)
        assert r.status_code == 400, subdir
    assert not (restore_root.parent / "escape").exists()
    assert _restore(client, path="/docs", target="t9").status_code == 400
    assert _restore(client, path="/docs", target=str(tmp_path)).status_code == 400
    # A symlink planted inside the target must not redirect the restore elsewhere.
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, restore_root / "planted")
    assert _restore(client, path="/docs", subdir="planted/x").status_code == 400
    assert list(outside.iterdir()) == []
    # Snapshot paths are normalised inside the snapshot: this names /etc there, which is absent.
    assert _restore(client, path="/../../etc").status_code == 404
    # Without configured targets there is nowhere to restore to.
    with TestClient(
        create_app(ui_store.repo, token=token), headers={"Authorization": f"Bearer {token}"}
    ) as c:
        assert (
            c.post("/api/restore", json={"snapshot": "latest", "target": "t0"}).status_code == 400
        )


def test_reads_cannot_leave_the_snapshot(client: TestClient, ui_store: UiStore) -> None:
    for path in (
        "../../../../etc/passwd",
        "/../../etc/passwd",
        "..\\..\\etc\\passwd",
        "/docs/../../../etc",
    ):
        for what in ("tree", "preview", "raw", "archive"):
            r = client.get(snap_url(ui_store, what, path=path))
            assert r.status_code in (400, 404), (what, path, r.status_code)
            assert b"root:" not in r.content
    assert (
        client.get(snap_url(ui_store, "raw", path="/docs/../docs/notes.txt")).content
        == (ui_store.source / "docs/notes.txt").read_bytes()
    )
    assert client.get(snap_url(ui_store, "tree", path="/docs\x00")).status_code == 400
