"""KoofrClient against httpx.MockTransport: auth, retries, error mapping, limits, resume."""

from __future__ import annotations

import base64
import random
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from koofrfs.client import USER_AGENT, ClientConfig, KoofrClient, resolve_endpoint
from koofrfs.errors import (
    KoofrAuthError,
    KoofrChangedError,
    KoofrExists,
    KoofrHTTPError,
    KoofrIsADirectory,
    KoofrNotFound,
    KoofrRetryError,
)
from koofrfs.retry import RetryPolicy
from koofrfs.transfer import download

Handler = Callable[[httpx.Request], httpx.Response]


def make(handler: Handler, attempts: int = 4, **config: object) -> tuple[KoofrClient, list[float]]:
    slept: list[float] = []
    cfg = ClientConfig(endpoint="http://koofr.test", user="u@example.com", password="pw", **config)  # type: ignore[arg-type]
    policy = RetryPolicy(attempts, 0.25, 30.0, sleep=slept.append, rng=random.Random(1))
    return KoofrClient(cfg, transport=httpx.MockTransport(handler), policy=policy), slept


def error(status: int, code: str, message: str, **headers: str) -> httpx.Response:
    return httpx.Response(
        status, json={"error": {"code": code, "message": message}}, headers=headers
    )


def test_every_request_has_basic_auth_and_user_agent() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"mounts": []})

    client, _ = make(handler)
    assert client.get_json("api/v2/mounts") == {"mounts": []}
    request = seen[0]
    assert request.url == "http://koofr.test/api/v2/mounts"
    assert (
        request.headers["Authorization"]
        == "Basic " + base64.b64encode(b"u@example.com:pw").decode()
    )
    assert request.headers["User-Agent"] == USER_AGENT
    assert USER_AGENT.startswith("prefect-kloset/")


def test_endpoint_with_path_prefix_and_trailing_slash() -> None:
    assert resolve_endpoint("other", "https://h.example/koofr/") == (
        "other",
        "https://h.example/koofr",
    )
    assert resolve_endpoint(None, "https://app.koofr.net/") == ("koofr", "https://app.koofr.net")
    assert resolve_endpoint("koofr", "http://127.0.0.1:1") == ("koofr", "https://app.koofr.net")
    with pytest.raises(ValueError, match="unknown Koofr provider"):
        resolve_endpoint("dropbox", "")
    with pytest.raises(ValueError, match="http"):
        resolve_endpoint("other", "ftp://x")


def test_retries_5xx_and_429_then_succeeds_honouring_retry_after() -> None:
    answers = [
        error(503, "Other", "busy", **{"Retry-After": "2"}),
        error(429, "TooManyRequests", "slow down"),
        httpx.Response(499),
        httpx.Response(200, json={"ok": True}),
    ]

    client, slept = make(lambda request: answers.pop(0), attempts=8)
    assert client.get_json("api/v2/x") == {"ok": True}
    assert slept[0] == 2.0  # Retry-After wins over backoff
    assert len(slept) == 3 and all(0 <= s <= 1.0 for s in slept[1:])


def test_permanent_503_names_method_path_and_status() -> None:
    client, slept = make(lambda request: httpx.Response(503), attempts=8)
    with pytest.raises(KoofrRetryError) as err:
        client.request("GET", "content/api/v2/mounts/M/files/get", path="/Photos/a.jpg")
    assert (
        str(err.value) == "Koofr GET /Photos/a.jpg failed after 8 attempts: 503 Service Unavailable"
    )
    assert err.value.status == 503 and isinstance(err.value, OSError)
    assert len(slept) == 7


def test_transport_errors_are_retried() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise httpx.ConnectError("refused")
        if calls == 2:
            raise httpx.RemoteProtocolError("peer closed connection")
        return httpx.Response(200, json={})

    client, slept = make(handler)
    client.get_json("api/v2/x")
    assert calls == 3 and len(slept) == 2
    client2, _ = make(lambda r: (_ for _ in ()).throw(httpx.ReadTimeout("slow")), attempts=3)
    with pytest.raises(KoofrRetryError, match="failed after 3 attempts: ReadTimeout: slow"):
        client2.get_json("api/v2/x", path="/a")


@pytest.mark.parametrize(
    ("response", "exc", "text"),
    [
        (
            httpx.Response(401),
            KoofrAuthError,
            "Koofr rejected the credentials for user u@example.com at http://koofr.test: "
            "use an application password",
        ),
        (error(404, "NotFound", "File not found"), KoofrNotFound, "404 Not Found: File not found"),
        (error(409, "AlreadyExists", "exists"), KoofrExists, "409"),
        (error(400, "AlreadyExists", "exists"), KoofrExists, "400"),
        (error(400, "NotFile", "File expected"), KoofrIsADirectory, "File expected"),
        (
            httpx.Response(400, text="<html>bad</html>"),
            KoofrHTTPError,
            "400 Bad Request: <html>bad",
        ),
    ],
)
def test_error_mapping(response: httpx.Response, exc: type[Exception], text: str) -> None:
    client, slept = make(lambda request: response)
    with pytest.raises(exc) as err:
        client.request("GET", "api/v2/y", path="/p")
    assert text in str(err.value)
    assert slept == []  # never retried
    assert issubclass(KoofrNotFound, FileNotFoundError) and issubclass(KoofrExists, FileExistsError)
    assert issubclass(KoofrAuthError, PermissionError)


def test_ok_on_retry_only_after_a_failure() -> None:
    answers = [httpx.Response(502), httpx.Response(404)]
    client, _ = make(lambda request: answers.pop(0))
    assert client.request("DELETE", "api/v2/r", ok_on_retry=(404,)).status_code == 404
    client2, _ = make(lambda request: httpx.Response(404))
    with pytest.raises(KoofrNotFound):
        client2.request("DELETE", "api/v2/r", ok_on_retry=(404,))


def test_body_factory_is_called_per_attempt() -> None:
    bodies: list[bytes] = []
    answers = [httpx.Response(503), httpx.Response(200, json={})]

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(request.read())
        assert "content-length" not in request.headers  # streamed: chunked
        return answers.pop(0)

    attempts: list[int] = []

    def body(attempt: int) -> Iterator[bytes]:
        attempts.append(attempt)
        yield b"abc"
        yield b"def"

    client, _ = make(handler)
    client.request("POST", "content/api/v2/put", body=body)
    assert attempts == [1, 2] and bodies == [b"abcdef", b"abcdef"]


def test_concurrency_is_limited_by_the_semaphore() -> None:
    lock = threading.Lock()
    active = peak = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.02)
        with lock:
            active -= 1
        return httpx.Response(200, json={})

    client, _ = make(handler, max_concurrency=3, max_connections=8)
    threads = [threading.Thread(target=client.get_json, args=("api/v2/x",)) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == 3


class DroppingStream(httpx.SyncByteStream):
    """Yields some bytes, then fails as if the connection dropped."""

    def __init__(self, data: bytes, drop_after: int | None) -> None:
        self.data, self.drop_after = data, drop_after

    def __iter__(self) -> Iterator[bytes]:
        if self.drop_after is None:
            yield self.data
            return
        yield self.data[: self.drop_after]
        raise httpx.ReadError("connection reset")


def ranged_server(
    data: bytes, drops: list[int], info: list[str] | None = None
) -> tuple[Handler, list[str | None]]:
    ranges: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        header = request.headers.get("Range")
        ranges.append(header)
        start, end = 0, len(data) - 1
        if header:
            first, _, last = header.removeprefix("bytes=").partition("-")
            start, end = int(first), int(last) if last else len(data) - 1
        body = data[start : end + 1]
        headers = {"Content-Range": f"bytes {start}-{end}/{len(data)}"} if header else {}
        if info:
            headers["X-File-Info"] = info.pop(0)
        drop = drops.pop(0) if drops else None
        return httpx.Response(
            206 if header else 200, headers=headers, stream=DroppingStream(body, drop)
        )

    return handler, ranges


def test_download_resumes_from_current_offset() -> None:
    data = bytes(range(256)) * 40
    handler, ranges = ranged_server(data, drops=[1000, 500])
    client, slept = make(handler)
    buf = bytearray()
    assert download(client, "c/get", path="/f", params=[("path", "/f")], sink=buf.extend) == len(
        data
    )
    assert bytes(buf) == data
    assert ranges == [None, "bytes=1000-", "bytes=1500-"]
    handler, ranges = ranged_server(data, drops=[10])
    client, _ = make(handler)
    buf = bytearray()
    download(client, "c/get", path="/f", params=[], sink=buf.extend, start=100, end=200)
    assert bytes(buf) == data[100:200] and ranges == ["bytes=100-199", "bytes=110-199"]


def test_download_gives_up_after_repeated_drops_without_progress() -> None:
    handler, _ = ranged_server(b"x" * 100, drops=[0] * 10)
    client, _ = make(handler, attempts=3)
    with pytest.raises(KoofrRetryError, match="GET /f failed after 3 attempts"):
        download(client, "c/get", path="/f", params=[], sink=lambda b: None)


def test_download_detects_file_changed_between_ranges() -> None:
    infos = ['{"size": 10, "modified": 1, "hash": "a"}', '{"size": 10, "modified": 2, "hash": "b"}']
    handler, _ = ranged_server(b"0123456789", drops=[4], info=infos)
    client, _ = make(handler)
    with pytest.raises(KoofrChangedError, match="changed while it was being read"):
        download(client, "c/get", path="/f", params=[], sink=lambda b: None)


def test_range_past_end_is_empty() -> None:
    client, _ = make(lambda request: httpx.Response(416, headers={"Content-Range": "bytes */5"}))
    buf = bytearray()
    assert download(client, "c/get", path="/f", params=[], sink=buf.extend, start=10) == 0


def test_password_never_in_repr() -> None:
    cfg = ClientConfig(endpoint="http://x", user="u", password="sekrit")
    assert "sekrit" not in repr(cfg)
