"""Streaming request-body readers: Content-Length, chunked transfer coding, multipart/form-data.

``http.server`` does not decode chunked request bodies and rclone streams every upload chunked
(no Content-Length) [V], so the emulator decodes them itself; multipart is parsed incrementally
so a multi-GiB upload never sits in memory.
"""

from __future__ import annotations

from email.message import Message
from typing import BinaryIO

from .errors import ClientGone, bad_request

_MAX_LINE = 64 * 1024
_MAX_PART_HEADERS = 64 * 1024
_READ = 256 * 1024


class BodyReader:
    """Reads one request body from the connection, never past its end."""

    def __init__(self, rfile: BinaryIO, length: int | None, chunked: bool) -> None:
        self._rfile = rfile
        self._chunked = chunked
        self._remaining = 0 if chunked else (length or 0)
        self._chunk_left = 0
        self.done = not chunked and not length
        self.received = 0

    def _readline(self) -> bytes:
        line = self._rfile.readline(_MAX_LINE + 1)
        if not line.endswith(b"\n"):
            raise ClientGone("truncated chunked body")
        return line

    def _next_chunk(self) -> None:
        line = self._readline().split(b";", 1)[0].strip()
        try:
            size = int(line, 16)
        except ValueError as exc:
            raise ClientGone("bad chunk size") from exc
        if size < 0:
            raise ClientGone("bad chunk size")
        if size == 0:
            while self._readline() not in (b"\r\n", b"\n"):  # trailers
                pass
            self.done = True
        self._chunk_left = size

    def read(self, n: int = _READ) -> bytes:
        """Up to ``n`` bytes; ``b""`` only at the end of the body. Raises ``ClientGone`` when
        the peer disconnects before the declared end."""
        if self.done or n <= 0:
            return b""
        if self._chunked:
            if self._chunk_left == 0:
                self._next_chunk()
                if self.done:
                    return b""
            data = self._rfile.read1(min(n, self._chunk_left))  # type: ignore[attr-defined]
            if not data:
                raise ClientGone("connection closed mid-chunk")
            self._chunk_left -= len(data)
            if self._chunk_left == 0 and self._readline() not in (b"\r\n", b"\n"):
                raise ClientGone("missing CRLF after chunk")
        else:
            data = self._rfile.read1(min(n, self._remaining))  # type: ignore[attr-defined]
            if not data:
                raise ClientGone("connection closed mid-body")
            self._remaining -= len(data)
            self.done = self._remaining == 0
        self.received += len(data)
        return data

    def read_all(self, limit: int) -> bytes:
        """Whole (small) body, e.g. JSON; 400 if larger than ``limit``."""
        out = bytearray()
        while chunk := self.read():
            out += chunk
            if len(out) > limit:
                raise bad_request("Request body too large")
        return bytes(out)

    def drain(self, limit: int) -> bool:
        """Discard the rest of the body; False if more than ``limit`` bytes were left."""
        skipped = 0
        while not self.done:
            skipped += len(self.read())
            if skipped > limit:
                return False
        return True


class Part:
    """Headers of one multipart part."""

    def __init__(self, raw_headers: bytes) -> None:
        msg = Message()
        for line in raw_headers.decode("utf-8", "replace").split("\r\n"):
            if ":" in line:
                key, value = line.split(":", 1)
                msg[key.strip()] = value.strip()
        self._msg = msg
        self.name: str | None = msg.get_param("name", header="content-disposition")  # type: ignore[assignment]
        self.filename: str | None = msg.get_filename()
        self.content_type: str = msg.get("content-type", "application/octet-stream")


class MultipartReader:
    """Incremental ``multipart/form-data`` parser over a ``BodyReader``."""

    def __init__(self, body: BodyReader, boundary: str) -> None:
        self._body = body
        self._buf = bytearray()
        self._delim = b"\r\n--" + boundary.encode("latin-1")
        self._in_part = False
        self._finished = False
        # The first delimiter may lack the leading CRLF: pretend it was there.
        self._buf += b"\r\n"

    def _fill(self) -> bool:
        data = self._body.read()
        if not data:
            return False
        self._buf += data
        return True

    def _find(self, token: bytes) -> int:
        while True:
            idx = self._buf.find(token)
            if idx >= 0:
                return idx
            if not self._fill():
                raise bad_request("Malformed multipart body")

    def next_part(self) -> Part | None:
        """Advance to the next part's data; None after the closing delimiter."""
        if self._finished:
            return None
        while self._in_part:  # skip what the caller did not read
            self.read_chunk()
        idx = self._find(self._delim)
        del self._buf[: idx + len(self._delim)]
        while len(self._buf) < 2 and self._fill():
            pass
        if self._buf[:2] == b"--":
            self._finished = True
            return None
        end = self._find(b"\r\n\r\n")
        if end > _MAX_PART_HEADERS:
            raise bad_request("Multipart headers too large")
        raw = bytes(self._buf[:end]).lstrip(b" \t").removeprefix(b"\r\n")
        del self._buf[: end + 4]
        self._in_part = True
        return Part(raw)

    def read_chunk(self) -> bytes:
        """Next slice of the current part's data; ``b""`` at the part's end."""
        if not self._in_part:
            return b""
        keep = len(self._delim) - 1
        while True:
            idx = self._buf.find(self._delim)
            if idx >= 0:
                data = bytes(self._buf[:idx])
                del self._buf[:idx]
                self._in_part = False
                return data
            if len(self._buf) > keep + _READ or not self._fill():
                if len(self._buf) <= keep:
                    raise bad_request("Malformed multipart body")
                cut = len(self._buf) - keep
                data = bytes(self._buf[:cut])
                del self._buf[:cut]
                return data

    def finish(self) -> None:
        """Consume everything up to and including the closing delimiter."""
        while self.next_part() is not None:
            pass
