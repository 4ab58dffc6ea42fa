"""Every byte of file content that koofrfs moves goes through this module.

:func:`download` streams a ranged ``files/get`` into a sink and resumes after a dropped
connection (or a well-framed answer that stopped short) from the byte it reached;
:func:`upload` sends one streamed multipart ``files/put``, like rclone, with ``modified`` in
milliseconds. Downloaded chunks pass through one line (``sink(chunk)`` in :func:`download`) and
uploaded pieces through one generator (``body`` in :func:`upload`): that is where a bandwidth
limit belongs.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO, Any

import httpx
from fsspec.callbacks import DEFAULT_CALLBACK, Callback

from koofrfs.client import PERMANENT_TRANSPORT_ERRORS, KoofrClient
from koofrfs.errors import KoofrChangedError, KoofrError

PIECE = 1 << 19
"""Size of the pieces handed to the HTTP request (and of reads from upload sources)."""

Source = Callable[[int], Iterable[bytes]]
"""Upload data source: called with the attempt number (1-based), returns the file's bytes."""


def bytes_source(data: bytes | bytearray | memoryview) -> Source:
    """A source over bytes in memory: every attempt can resend them."""
    view = memoryview(data).cast("B")

    def chunks(_attempt: int) -> Iterator[bytes]:
        for offset in range(0, len(view), PIECE):
            yield bytes(view[offset : offset + PIECE])

    return chunks


def seekable_source(fileobj: IO[bytes], callback: Callback = DEFAULT_CALLBACK) -> Source:
    """A source over a seekable file: each attempt seeks back to where the upload started."""
    origin = fileobj.tell()

    def chunks(_attempt: int) -> Iterator[bytes]:
        fileobj.seek(origin)
        callback.absolute_update(0)
        sent = 0
        while piece := fileobj.read(PIECE):
            sent += len(piece)
            yield piece
            callback.absolute_update(sent)

    return chunks


def download(
    client: KoofrClient,
    url: str,
    *,
    path: str,
    params: Sequence[tuple[str, str]],
    sink: Callable[[bytes], object],
    start: int = 0,
    end: int | None = None,
) -> int:
    """Stream bytes ``[start, end)`` of a file into ``sink``; return how many were written.

    After a dropped connection the next request asks for ``Range: bytes=<offset>-`` from the
    current offset, never from the start, so a long download survives flaky networks. The
    retry budget resets whenever progress is made. If the server sends ``X-File-Info`` and
    it changes between requests, the file changed under us and we stop rather than splice
    two versions together.
    """
    pos = start
    failures = 0
    identity: tuple[Any, ...] | None = None
    while end is None or pos < end:
        headers = {"Accept-Encoding": "identity"}
        if pos > 0 or end is not None:
            headers["Range"] = f"bytes={pos}-{'' if end is None else end - 1}"
        progressed = False
        try:
            with client.stream(
                "GET", url, path=path, params=params, headers=headers, expected=(200, 206, 416)
            ) as response:
                if response.status_code == 416:
                    break
                identity = _check_identity(response, identity, path)
                skip = _range_skip(response, pos, path)
                for chunk in response.iter_bytes():
                    if skip:
                        cut = min(skip, len(chunk))
                        chunk, skip = chunk[cut:], skip - cut
                    if end is not None and pos + len(chunk) > end:
                        chunk = chunk[: end - pos]
                    if chunk:
                        sink(chunk)
                        pos += len(chunk)
                        progressed = True
                    if end is not None and pos >= end:
                        break
            want = _wanted_end(response, end)
            if want is None or pos >= want:
                break
            # A complete, well-framed answer that stopped short (a proxy cut it): ask for the
            # rest, like after a drop; answers that bring nothing count against the budget.
            failures = 0 if progressed else failures + 1
            if failures >= client.policy.attempts:
                raise client.exhausted("GET", path, failures, "short answers", None)
        except httpx.TransportError as exc:
            if isinstance(exc, PERMANENT_TRANSPORT_ERRORS):
                raise
            failures = 1 if progressed else failures + 1
            if failures >= client.policy.attempts:
                last = f"{type(exc).__name__}: {exc}".rstrip(": ")
                raise client.exhausted("GET", path, failures, last, None) from exc
            client.policy.wait(failures)
    return pos - start


def _wanted_end(response: httpx.Response, end: int | None) -> int | None:
    """Where this download should stop, from what the server says the file's size is
    (``Content-Range: .../TOTAL`` or ``X-File-Info``); None when it does not say."""
    total: int | None = None
    content_range = response.headers.get("Content-Range", "")
    if "/" in content_range and content_range.rsplit("/", 1)[1].strip().isdigit():
        total = int(content_range.rsplit("/", 1)[1])
    elif response.headers.get("X-File-Info"):
        try:
            total = int(json.loads(response.headers["X-File-Info"])["size"])
        except (ValueError, KeyError, TypeError):
            total = None
    if total is None:
        return end
    return total if end is None else min(end, total)


def _check_identity(
    response: httpx.Response, previous: tuple[Any, ...] | None, path: str
) -> tuple[Any, ...] | None:
    raw = response.headers.get("X-File-Info")
    if not raw:
        return previous
    try:
        info = json.loads(raw)
        current = (info.get("size"), info.get("modified"), info.get("hash"))
    except (ValueError, AttributeError):
        return previous
    if previous is not None and current != previous:
        raise KoofrChangedError(f"Koofr file {path} changed while it was being read", path=path)
    return current


def _range_skip(response: httpx.Response, pos: int, path: str) -> int:
    """Bytes to drop from the body so it starts at ``pos`` (non-zero if Range was ignored)."""
    if response.status_code == 200:
        return pos
    content_range = response.headers.get("Content-Range", "")
    try:
        first = int(content_range.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return 0
    if first != pos:
        raise KoofrError(
            f"Koofr GET {path}: asked for bytes from {pos}, got Content-Range {content_range!r}",
            status=206,
            method="GET",
            path=path,
        )
    return 0


def upload(
    client: KoofrClient,
    url: str,
    *,
    path: str,
    parent: str,
    name: str,
    source: Source,
    modified: int | None,
) -> dict[str, Any]:
    """Store ``source`` as ``parent/name`` (Koofr spelling), replacing a file there and keeping
    ``modified`` (ms); return the stored file's FileInfo. Retries resend the whole body."""
    params = [("autorename", "false"), ("filename", name), ("info", "true")]
    if modified is not None:
        params.append(("modified", str(int(modified))))
    params += [("overwrite", "true"), ("path", parent)]
    boundary = secrets.token_hex(30)
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="dummy"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def body(attempt: int) -> Iterator[bytes]:
        yield head
        yield from source(attempt)
        yield tail

    headers = {
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Accept": "application/json",
    }
    response = client.request("POST", url, path=path, params=params, headers=headers, body=body)
    return response.json()  # type: ignore[no-any-return]
