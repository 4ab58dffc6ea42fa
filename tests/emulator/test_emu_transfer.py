"""files/get (ranges, headers) and files/put (multipart/raw, conflicts, atomicity)."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from koofr_emulator import KoofrEmulator

DATA = bytes(range(256)) * 40  # 10240 bytes


def _staging_empty(emu: KoofrEmulator) -> bool:
    return not any((emu.root / ".emulator" / "tmp").iterdir())


# -- downloads -------------------------------------------------------------------------------


def test_get_full_and_headers(api: Any) -> None:
    api.put("/", "Photo Ü.JPG", DATA)
    resp = api.get("/photo ü.jpg")
    assert resp.status_code == 200 and resp.content == DATA
    assert resp.headers["content-length"] == str(len(DATA))
    assert resp.headers["accept-ranges"] == "bytes"
    assert resp.headers["content-type"] == "image/jpeg"
    info = json.loads(resp.headers["x-file-info"])
    assert info["name"] == "Photo Ü.JPG" and info["hash"] == hashlib.md5(DATA).hexdigest()
    # OpenDAL downloads without the /content prefix [C]
    plain = api.http.get(f"/api/v2/mounts/{api.mount}/files/get", params={"path": "/Photo Ü.JPG"})
    assert plain.content == DATA


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=2-5", 2, 5),
        ("bytes=100-", 100, len(DATA) - 1),
        ("bytes=-10", len(DATA) - 10, len(DATA) - 1),
        ("bytes=0-999999", 0, len(DATA) - 1),
        ("bytes=-99999", 0, len(DATA) - 1),
    ],
)
def test_get_single_range(api: Any, header: str, start: int, end: int) -> None:
    api.put("/", "d.bin", DATA)
    resp = api.get("/d.bin", headers={"Range": header})
    assert resp.status_code == 206
    assert resp.headers["content-range"] == f"bytes {start}-{end}/{len(DATA)}"
    assert resp.content == DATA[start : end + 1]


@pytest.mark.parametrize(
    "header",
    [
        "bytes=0-1,4-5",
        f"bytes={len(DATA)}-",
        "bytes=5-2",
        "bytes=abc",
        "items=0-1",
        "bytes=-0",
        "bytes=-",
    ],
)
def test_get_bad_range_416(api: Any, header: str) -> None:
    api.put("/", "d.bin", DATA)
    resp = api.get("/d.bin", headers={"Range": header})
    assert resp.status_code == 416
    assert resp.headers["content-range"] == f"bytes */{len(DATA)}"
    assert resp.json()["error"]["code"]


def test_get_errors_and_empty_file(api: Any) -> None:
    assert api.get("/none").status_code == 404
    api.mkdir("/", "dir")
    resp = api.get("/dir")
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "NotFile"
    api.put("/", "empty", b"")
    resp = api.get("/empty")
    assert resp.status_code == 200 and resp.content == b""
    assert resp.headers["content-type"] == "application/octet-stream"
    assert api.get("/empty", headers={"Range": "bytes=0-"}).status_code == 416
    head = api.http.head(f"/content/api/v2/mounts/{api.mount}/files/get", params={"path": "/empty"})
    assert head.status_code == 200


def test_download_streams_large_file(api: Any) -> None:
    big = (b"0123456789abcdef" * 65536) * 3  # 3 MiB
    assert api.put("/", "big.bin", big).status_code == 200
    with api.http.stream(
        "GET", f"/content/api/v2/mounts/{api.mount}/files/get", params={"path": "/big.bin"}
    ) as resp:
        digest = hashlib.md5()
        for chunk in resp.iter_bytes():
            digest.update(chunk)
    assert digest.hexdigest() == hashlib.md5(big).hexdigest()


# -- uploads ---------------------------------------------------------------------------------


def test_put_rclone_style_returns_fileinfo(api: Any) -> None:
    resp = api.put("/", "a.txt", b"hello")
    assert resp.status_code == 200
    assert resp.json() == {
        "name": "a.txt",
        "type": "file",
        "modified": 1614834367123,
        "size": 5,
        "contentType": "text/plain",
        "hash": "5d41402abc4b2a76b9719d911017c592",
        "tags": {},
    }
    on_disk = api.emu.files_dir / "a.txt"
    assert on_disk.read_bytes() == b"hello"
    assert on_disk.stat().st_mtime_ns == 1614834367123 * 1_000_000


def test_put_overwrite_replaces_and_takes_new_case(api: Any) -> None:
    api.put("/", "f1.txt", b"old")
    resp = api.put("/", "F1.TXT", b"newer", modified="2000")
    assert resp.json()["name"] == "F1.TXT"
    assert api.names("/") == ["F1.TXT"]
    info = api.info("/f1.txt").json()
    assert (info["size"], info["modified"]) == (5, 2000)
    assert api.get("/f1.txt").content == b"newer"


def test_put_autorename_and_name_list(api: Any) -> None:
    for expected in ("a.tar.gz", "a.tar (1).gz", "a.tar (2).gz"):
        resp = api.put("/", "a.tar.gz", b"x", rclone=False)
        assert resp.status_code == 200 and resp.json() == [{"name": expected}]
    resp = api.put("/", "noext", b"x", rclone=False, info="true")
    resp = api.put("/", "NOEXT", b"x", rclone=False, info="true")
    assert resp.json()["name"] == "NOEXT (1)" and resp.json()["type"] == "file"
    api.mkdir("/", "dirname")
    assert api.put("/", "dirname", b"x", rclone=False).json() == [{"name": "dirname (1)"}]


def test_put_conflicts(api: Any) -> None:
    api.put("/", "c.txt", b"abc", modified="7000")
    resp = api.put("/", "C.txt", b"z", rclone=False, autorename="false")
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "AlreadyExists"
    md5 = hashlib.md5(b"abc").hexdigest()
    base = {"rclone": False, "autorename": "false", "info": "true"}
    for cond, good, bad in (
        ("overwriteIfSize", "3", "4"),
        ("overwriteIfModified", "7000", "1"),
        ("overwriteIfHash", md5, "0" * 32),
    ):
        assert api.put("/", "c.txt", b"abc", **base, **{cond: bad}).status_code == 409
        assert (
            api.put("/", "c.txt", b"abc", **base, modified="7000", **{cond: good}).status_code
            == 200
        )
    missing = api.put("/", "new.txt", b"n", **base, overwriteIfSize="1")
    assert missing.status_code == 409
    ok = api.put("/", "new.txt", b"n", **base, overwriteIfSize="1", overwriteIgnoreNonexisting="")
    assert ok.status_code == 200
    api.mkdir("/", "adir")
    resp = api.put("/", "adir", b"x")
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "NotFile"
    assert api.put("/missing", "x", b"x").status_code == 404
    assert api.put("/c.txt", "x", b"x").status_code == 400
    assert api.put("/", "bad\\name", b"x").status_code == 400
    assert api.put("/", "x", b"x", modified="soon").status_code == 400
    assert _staging_empty(api.emu)


def test_put_filename_from_multipart_and_raw_body(api: Any, multipart: Any) -> None:
    ctype, body = multipart(b"py", filename="from-part.txt")
    url = f"/content/api/v2/mounts/{api.mount}/files/put"
    resp = api.http.post(
        url, params={"path": "/", "info": "true"}, content=body, headers={"Content-Type": ctype}
    )
    assert resp.status_code == 200 and resp.json()["name"] == "from-part.txt"
    # raw (non-multipart) body, as the Vault client sends it; fixed length and chunked
    resp = api.http.post(
        url, params={"path": "/", "filename": "raw.bin", "info": "true"}, content=b"rawbytes"
    )
    assert resp.json()["size"] == 8
    resp = api.http.post(
        url,
        params={"path": "/", "filename": "raw2.bin", "info": "true"},
        content=iter([b"raw", b"bytes!"]),
    )
    assert resp.json()["size"] == 9
    assert api.get("/raw2.bin").content == b"rawbytes!"
    # httpx's own (non-chunked) multipart encoder, with an extra form field before the file
    resp = api.http.post(
        url,
        params={"path": "/", "filename": "h.txt", "info": "true"},
        data={"note": "x"},
        files={"file": ("dummy", b"httpx")},
    )
    assert resp.json()["hash"] == hashlib.md5(b"httpx").hexdigest()
    resp = api.http.post(url, params={"path": "/", "info": "true"}, content=b"no name")
    assert resp.status_code == 400


def test_put_multipart_boundary_edge_cases(api: Any, multipart: Any) -> None:
    # payload containing near-boundary byte sequences must survive intact
    tricky = b"\r\n--" + b"x" * 70000 + b"\r\n-\r\n--ab\r\n" + bytes(range(256))
    ctype, body = multipart(tricky, piece=7)
    url = f"/content/api/v2/mounts/{api.mount}/files/put"
    resp = api.http.post(
        url,
        params={"path": "/", "filename": "t.bin", "info": "true"},
        content=body,
        headers={"Content-Type": ctype},
    )
    assert resp.status_code == 200
    assert resp.json()["hash"] == hashlib.md5(tricky).hexdigest()
    # truncated multipart (no closing delimiter) -> 400, nothing stored
    resp = api.http.post(
        url,
        params={"path": "/", "filename": "u.bin"},
        content=b"--b\r\n\r\nno end",
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert resp.status_code == 400
    assert api.info("/u.bin").status_code == 404


def _raw_chunked_upload(emu: KoofrEmulator, name: str, send_all: bool) -> bytes:
    """Speak HTTP by hand: a chunked upload that may stop half way and hang up."""
    path = f"/content/api/v2/mounts/{emu.mount_id}/files/put?path=%2F&filename={name}&info=true"
    auth = "Basic " + base64.b64encode(f"{emu.user}:{emu.password}".encode()).decode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n"
        "Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", emu.port), timeout=10) as sock:
        sock.sendall(head.encode())
        sock.sendall(b"5\r\nhello\r\n")
        if not send_all:
            sock.sendall(b"100\r\npartial")
            return b""
        sock.sendall(b"6;ext=1\r\n world\r\n0\r\nX-Trailer: y\r\n\r\n")
        reply = b""
        while b"\r\n\r\n" not in reply:
            reply += sock.recv(65536)
        return reply


def test_chunked_decoding_and_atomic_abandoned_upload(
    koofr_emulator: KoofrEmulator, api: Any
) -> None:
    reply = _raw_chunked_upload(koofr_emulator, "whole.txt", send_all=True)
    assert reply.startswith(b"HTTP/1.1 200")
    assert api.get("/whole.txt").content == b"hello world"
    puts_before = koofr_emulator.counters.get("files/put", 0)
    _raw_chunked_upload(koofr_emulator, "half.txt", send_all=False)
    # Wait until the server has taken the request, then until it has discarded the staging file
    # (an empty staging dir seen before the request arrived would prove nothing).
    deadline = time.monotonic() + 10
    while (
        time.monotonic() < deadline and koofr_emulator.counters.get("files/put", 0) <= puts_before
    ):
        time.sleep(0.02)
    while time.monotonic() < deadline and not _staging_empty(koofr_emulator):
        time.sleep(0.02)
    assert api.info("/half.txt").status_code == 404
    assert _staging_empty(koofr_emulator)
    assert api.names("/") == ["whole.txt"]


def test_keepalive_survives_errors_with_bodies(api: Any) -> None:
    """Error answers drain the request body, so one connection keeps working."""
    for _ in range(3):
        assert api.put("/missing-parent", "x", b"y" * 100_000).status_code == 404
        assert api.http.post("/api/v2/nope", content=b"z" * 1000).status_code == 404
    assert api.put("/", "ok", b"fine").status_code == 200


def test_concurrent_clients(koofr_emulator: KoofrEmulator) -> None:
    import concurrent.futures as cf

    def worker(i: int) -> str:
        with httpx.Client(
            base_url=koofr_emulator.url, auth=(koofr_emulator.user, koofr_emulator.password)
        ) as c:
            m = koofr_emulator.mount_id
            c.post(
                f"/api/v2/mounts/{m}/files/folder", params={"path": "/"}, json={"name": "shared"}
            )  # racing creates: 200 once, 400 otherwise
            payload = f"payload-{i}".encode() * 1000
            r = c.post(
                f"/content/api/v2/mounts/{m}/files/put",
                params={"path": "/shared", "filename": f"f{i}.txt", "info": "true"},
                content=payload,
            )
            assert r.status_code == 200, r.text
            got = c.get(
                f"/content/api/v2/mounts/{m}/files/get", params={"path": f"/shared/F{i}.TXT"}
            )
            assert got.content == payload
            return r.json()["name"]

    with cf.ThreadPoolExecutor(16) as pool:
        names = sorted(pool.map(worker, range(48)))
    assert names == sorted(f"f{i}.txt" for i in range(48))
    assert len(list(Path(koofr_emulator.files_dir, "shared").iterdir())) == 48
