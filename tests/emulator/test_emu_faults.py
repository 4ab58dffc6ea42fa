"""Fault injection (status / drop / latency), admin endpoints and counters."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from koofr_emulator import FaultRule, KoofrEmulator

BLOB = bytes(range(256)) * 1024  # 256 KiB


def test_429_with_retry_after(koofr_emulator: KoofrEmulator, api: Any) -> None:
    rule_id = koofr_emulator.add_fault(
        FaultRule(kind="status", status=429, retry_after=2.0, rate=1.0, route="files/list")
    )
    resp = api.list("/")
    assert resp.status_code == 429
    assert resp.headers["retry-after"] == "2"
    assert resp.headers["content-type"] == "application/json; charset=utf-8"
    assert resp.json()["error"]["code"] == "TooManyRequests"
    assert api.info("/").status_code == 200  # other routes unaffected
    assert koofr_emulator.remove_fault(rule_id)
    assert api.list("/").status_code == 200


def test_count_limited_rule(koofr_emulator: KoofrEmulator, api: Any) -> None:
    koofr_emulator.add_fault(
        FaultRule(kind="status", status=503, count=2, route="files/info", rate=0.0)
    )
    statuses = [api.info("/").status_code for _ in range(4)]
    assert statuses == [503, 503, 200, 200]
    (rule,) = koofr_emulator.fault_rules
    assert (rule["fired"], rule["remaining"], rule["matched"]) == (2, 0, 4)


def test_5xx_without_retry_after_and_method_path_filters(
    koofr_emulator: KoofrEmulator, api: Any
) -> None:
    koofr_emulator.add_fault(
        FaultRule(kind="status", status=500, rate=1.0, path_regex=r"^/secret", method="GET")
    )
    api.mkdir("/", "secret")
    api.mkdir("/", "public")
    resp = api.info("/secret")
    assert resp.status_code == 500 and "retry-after" not in resp.headers
    assert api.info("/public").status_code == 200
    assert api.mkdir("/secret", "x").status_code == 200  # POST not matched
    koofr_emulator.clear_faults()
    assert api.info("/secret").status_code == 200


def test_rate_is_statistical(tmp_path: Any) -> None:
    with (
        KoofrEmulator(tmp_path / "r", seed=1234) as emu,
        httpx.Client(base_url=emu.url, auth=(emu.user, emu.password)) as c,
    ):
        emu.add_fault(FaultRule(kind="status", status=429, rate=0.3, route="mounts"))
        codes = [c.get("/api/v2/mounts").status_code for _ in range(200)]
        assert 30 <= codes.count(429) <= 90
        assert set(codes) == {200, 429}


def test_drop_mid_download(koofr_emulator: KoofrEmulator, api: Any) -> None:
    api.put("/", "blob.bin", BLOB)
    koofr_emulator.add_fault(FaultRule(kind="drop", count=1, route="files/get"))
    received = bytearray()
    url = f"/content/api/v2/mounts/{api.mount}/files/get"
    with pytest.raises(httpx.RemoteProtocolError):  # noqa: SIM117 - the error comes mid-stream
        with api.http.stream("GET", url, params={"path": "/blob.bin"}) as resp:
            assert resp.status_code == 200
            assert resp.headers["content-length"] == str(len(BLOB))
            for chunk in resp.iter_raw():
                received += chunk
    assert 0 < len(received) < len(BLOB)
    assert bytes(received) == BLOB[: len(received)]
    assert api.get("/blob.bin").content == BLOB  # next attempt succeeds


def test_drop_mid_upload_leaves_nothing(koofr_emulator: KoofrEmulator, api: Any) -> None:
    koofr_emulator.add_fault(FaultRule(kind="drop", count=1, route="files/put"))
    with pytest.raises(httpx.TransportError):
        api.put("/", "up.bin", BLOB * 8)
    assert api.info("/up.bin").status_code == 404
    assert not any((koofr_emulator.root / ".emulator" / "tmp").iterdir())
    assert api.put("/", "up.bin", BLOB * 8).status_code == 200
    assert api.info("/up.bin").json()["size"] == len(BLOB) * 8


def test_drop_other_routes_closes_without_answer(koofr_emulator: KoofrEmulator, api: Any) -> None:
    koofr_emulator.add_fault(FaultRule(kind="drop", count=1, route="mounts"))
    with pytest.raises(httpx.RemoteProtocolError):
        api.http.get("/api/v2/mounts")
    assert api.http.get("/api/v2/mounts").status_code == 200


def test_latency(koofr_emulator: KoofrEmulator, api: Any) -> None:
    koofr_emulator.add_fault(FaultRule(kind="latency", seconds=0.3, rate=1.0, route="user"))
    start = time.monotonic()
    assert api.http.get("/api/v2/user").status_code == 200
    assert time.monotonic() - start >= 0.3
    koofr_emulator.clear_faults()
    koofr_emulator.latency = 0.2
    start = time.monotonic()
    api.http.get("/api/v2/mounts")
    assert time.monotonic() - start >= 0.2


def test_rule_validation() -> None:
    with pytest.raises(ValueError):
        FaultRule(kind="explode")
    with pytest.raises(ValueError):
        FaultRule(kind="status", rate=2.0)
    with pytest.raises(ValueError):
        FaultRule(kind="status", route="files/nope")


def test_admin_endpoints(koofr_emulator: KoofrEmulator) -> None:
    with httpx.Client(base_url=koofr_emulator.url) as admin:  # no credentials needed
        rules = [
            {"kind": "status", "status": 502, "count": 1, "route": "mounts"},
            {"kind": "latency", "seconds": 0.0, "rate": 1.0},
        ]
        resp = admin.post("/_emulator/faults", json=rules)
        assert resp.status_code == 200 and len(resp.json()["ids"]) == 2
        listed = admin.get("/_emulator/faults").json()
        assert [r["kind"] for r in listed] == ["status", "latency"]
        assert admin.post("/_emulator/faults", json={"kind": "bogus"}).status_code == 400
        auth = (koofr_emulator.user, koofr_emulator.password)
        assert admin.get("/api/v2/mounts", auth=auth).status_code == 502
        assert admin.get("/api/v2/mounts", auth=auth).status_code == 200
        assert admin.delete(f"/_emulator/faults/{listed[0]['id']}").status_code == 200
        assert len(admin.get("/_emulator/faults").json()) == 1
        assert admin.delete("/_emulator/faults").status_code == 200
        assert admin.get("/_emulator/faults").json() == []
        counters = admin.get("/_emulator/counters").json()
        assert counters["mounts"] == 2 and counters["total"] == 2
        assert [r["status"] for r in admin.get("/_emulator/requests").json()] == [502, 200]
        assert admin.post("/_emulator/counters/reset").status_code == 200
        assert admin.get("/_emulator/counters").json()["total"] == 0
        assert admin.get("/_emulator/health").json()["mountId"] == koofr_emulator.mount_id
        assert admin.get("/_emulator/nope").status_code == 404


def test_counters(koofr_emulator: KoofrEmulator, api: Any) -> None:
    assert set(koofr_emulator.counters) >= {
        "mounts",
        "mount",
        "files/info",
        "files/list",
        "files/folder",
        "files/remove",
        "files/copy",
        "files/move",
        "files/get",
        "files/put",
        "files/tree",
        "links",
        "token",
        "user",
        "places",
        "total",
    }
    api.put("/", "a", b"1")
    api.get("/a")
    api.get("/a")
    api.info("/a")
    api.http.get("/unknown")
    c = koofr_emulator.counters
    assert (c["files/put"], c["files/get"], c["files/info"], c["other"], c["total"]) == (
        1,
        2,
        1,
        1,
        5,
    )
    koofr_emulator.reset_counters()
    assert koofr_emulator.counters["total"] == 0


def test_torn_downloads_are_well_framed(koofr_emulator: KoofrEmulator, api: Any) -> None:
    """``truncate`` and ``corrupt`` answer completely: only size and MD5 can tell."""
    assert api.put("/", "t.bin", BLOB).status_code == 200
    koofr_emulator.add_fault(FaultRule(kind="truncate", count=2, route="files/get"))
    full = api.get("/t.bin")
    assert full.status_code == 200 and full.content == BLOB[: len(BLOB) // 2]
    assert int(full.headers["content-length"]) == len(BLOB) // 2
    assert '"size":262144' in full.headers["x-file-info"]  # the file itself is unchanged
    part = api.get("/t.bin", headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206 and part.content == BLOB[100:600]
    assert part.headers["content-range"] == "bytes 100-599/262144"
    koofr_emulator.clear_faults()
    koofr_emulator.add_fault(FaultRule(kind="corrupt", count=1, path_regex="t\\.bin"))
    assert api.info("/t.bin").status_code == 200  # only downloads are touched
    bad = api.get("/t.bin")
    assert bad.status_code == 200 and len(bad.content) == len(BLOB) and bad.content != BLOB
    assert api.get("/t.bin").content == BLOB
