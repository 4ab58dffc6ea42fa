"""Moving bytes: resumable ranged downloads and streamed uploads, and the fsspec methods on them.

Mixed into :class:`koofrfs.filesystem.KoofrFileSystem` (split out to keep modules readable).
Downloads survive dropped connections by asking for the rest from the current offset; uploads are
one multipart POST streamed with chunked encoding, like rclone's, with ``modified`` in ms.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from collections.abc import Callable, Sequence
from typing import IO, Any

import httpx
from fsspec.callbacks import DEFAULT_CALLBACK, Callback
from fsspec.spec import AbstractFileSystem

from koofrfs.client import PERMANENT_TRANSPORT_ERRORS, KoofrClient
from koofrfs.errors import KoofrChangedError, KoofrError
from koofrfs.files import KoofrReadFile, KoofrWriteFile, Source, bytes_source, seekable_source
from koofrfs.paths import split, to_koofr


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


class TransferOps(AbstractFileSystem):
    """Reading and writing file content; needs ``client``, ``_content``, ``info``, ``makedirs``,
    ``invalidate_cache`` and ``_known_dirs`` from :class:`KoofrFileSystem`."""

    _known_dirs: set[str]

    def cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        """Bytes ``[start, end)`` of a file in one ranged GET (resumed after a drop)."""
        p = self._strip_protocol(path)
        if (start is not None and start < 0) or (end is not None and end < 0):
            size = self.info(p)["size"]
            start = max(0, size + start) if start is not None and start < 0 else start
            end = max(0, size + end) if end is not None and end < 0 else end
        start = start or 0
        if end is not None and end <= start:
            return b""
        return bytes(self._read_range(p, start, end))

    def _download(
        self, kp: str, sink: Callable[[bytes], object], start: int = 0, end: int | None = None
    ) -> int:
        return download(
            self.client,
            self._content("get"),
            path=kp,
            params=[("path", kp)],
            sink=sink,
            start=start,
            end=end,
        )

    def _read_range(self, path: str, start: int, end: int | None) -> bytearray:
        """Bytes ``[start, end)`` into a buffer preallocated when the length is known."""
        kp = to_koofr(path)
        if end is None:
            buf = bytearray()
            self._download(kp, buf.extend, start)
            return buf
        buf = bytearray(end - start)
        view = memoryview(buf)
        filled = 0

        def sink(chunk: bytes) -> None:
            nonlocal filled
            view[filled : filled + len(chunk)] = chunk
            filled += len(chunk)

        try:
            self._download(kp, sink, start, end)
        finally:
            view.release()
        del buf[filled:]  # short read: the range went past the end of the file
        return buf

    def get_file(
        self,
        rpath: str,
        lpath: str,
        callback: Callback = DEFAULT_CALLBACK,
        outfile: IO[bytes] | None = None,
        **kwargs: Any,
    ) -> None:
        """Download a file in one streamed GET (resumed after drops); a folder makes a folder."""
        info = self.info(rpath)
        if info["type"] == "directory":
            os.makedirs(lpath, exist_ok=True)
            return
        callback.set_size(info["size"])
        kp = to_koofr(info["name"])

        def sink_to(target: IO[bytes]) -> Callable[[bytes], None]:
            def sink(chunk: bytes) -> None:
                target.write(chunk)
                callback.relative_update(len(chunk))

            return sink

        if outfile is not None:
            self._download(kp, sink_to(outfile))
            return
        try:
            with open(lpath, "wb") as target:
                self._download(kp, sink_to(target))
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(lpath)
            raise

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        p = self._strip_protocol(path)
        if mode == "rb":
            return KoofrReadFile(
                self,
                p,
                block_size or self.readahead,
                cache_options=cache_options,
                size=kwargs.pop("size", None),
            )
        if mode in ("wb", "xb"):
            to_koofr(p)
            if mode == "xb" and self.exists(p):
                raise FileExistsError(f"Koofr file /{p} already exists")
            return KoofrWriteFile(
                self,
                p,
                mode,
                block_size,
                autocommit,
                modified=kwargs.pop("modified", None),
                spool=kwargs.pop("spool", True),
            )
        raise NotImplementedError(f"Koofr files cannot be opened in mode {mode!r} (no append)")

    # -- writing data -----------------------------------------------------------------------------

    def _ensure_dir(self, path: str) -> None:
        if path and path not in self._known_dirs:
            self.makedirs(path, exist_ok=True)

    def _upload(
        self, path: str, source: Source, modified: int | None, ensure_parent: bool = True
    ) -> dict[str, Any]:
        """Upload ``source`` to ``path`` (overwrite, keep ``modified`` ms); return its info.

        One multipart POST streamed with chunked encoding, like rclone. If the parent vanished
        behind our known-folders cache (404), the folders are recreated and the upload sent again.
        """
        p = self._strip_protocol(path)
        kp = to_koofr(p)
        if kp == "/":
            raise IsADirectoryError("cannot upload to the root of a Koofr mount")
        parent, name = split(p)
        if ensure_parent:
            self._ensure_dir(parent)
        params = [("autorename", "false"), ("filename", name), ("info", "true")]
        if modified is not None:
            params.append(("modified", str(int(modified))))
        params += [("overwrite", "true"), ("path", "/" + parent)]
        boundary = secrets.token_hex(30)
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="dummy"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        calls = 0

        def body(_attempt: int) -> Any:
            nonlocal calls
            calls += 1
            yield head
            yield from source(calls)
            yield tail

        headers = {
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Accept": "application/json",
        }
        try:
            try:
                response = self.client.request(
                    "POST", self._content("put"), path=kp, params=params, headers=headers, body=body
                )
            except FileNotFoundError:
                self._forget_dirs(parent)
                self.makedirs(parent, exist_ok=True)
                response = self.client.request(
                    "POST", self._content("put"), path=kp, params=params, headers=headers, body=body
                )
        finally:
            self.invalidate_cache(p)
        return self._entry(parent, response.json())

    def pipe_file(
        self,
        path: str,
        value: bytes,
        mode: str = "overwrite",
        modified: int | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Store bytes at ``path`` (retryable); ``modified`` is the mtime in ms to keep."""
        if mode == "create" and self.exists(path):
            raise FileExistsError(f"Koofr file /{self._strip_protocol(path)} already exists")
        return self._upload(path, bytes_source(value), modified)

    def put_file(
        self,
        lpath: str,
        rpath: str,
        callback: Callback = DEFAULT_CALLBACK,
        mode: str = "overwrite",
        modified: int | None = None,
        **kwargs: Any,
    ) -> dict[str, Any] | None:
        """Upload a local file streamed from disk, keeping its mtime (ms) unless ``modified``."""
        if os.path.isdir(lpath):
            self.makedirs(rpath, exist_ok=True)
            return None
        if mode == "create" and self.exists(rpath):
            raise FileExistsError(f"Koofr file /{self._strip_protocol(rpath)} already exists")
        with open(lpath, "rb") as f:
            stat = os.fstat(f.fileno())
            callback.set_size(stat.st_size)
            when = stat.st_mtime_ns // 1_000_000 if modified is None else modified
            return self._upload(rpath, seekable_source(f, callback), when)

    def upload_fileobj(
        self, path: str, fileobj: IO[bytes], modified_ms: int | None = None
    ) -> dict[str, Any]:
        """Upload from a file object: retried by seeking back if it is seekable, else streamed."""
        seekable = False
        with contextlib.suppress(AttributeError, OSError, ValueError):
            seekable = bool(fileobj.seekable()) and fileobj.tell() >= 0
        if seekable:
            return self._upload(path, seekable_source(fileobj), modified_ms)
        with self.open(path, "wb", modified=modified_ms) as out:
            shutil.copyfileobj(fileobj, out, 1 << 20)
        assert out.result is not None
        return out.result
