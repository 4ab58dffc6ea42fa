"""File objects for Koofr: ranged reads with readahead, and streamed writes with flat memory.

The file objects know nothing of the filesystem class: they are given the function that reads a
byte range and the one that stores an upload, so each side can be read (and tested) alone.

Reads go through a readahead cache; every cache miss is one ranged GET that resumes from its
current offset after a dropped connection (see :func:`koofrfs.transfer.download`).

Writes: a file smaller than one block is sent as one retryable upload when it is closed. A bigger
file starts a single streamed upload (chunked multipart, one request) on a background thread,
fed through a bounded queue, so memory stays at a few blocks whatever the file size. Because the
bytes already sent cannot be asked for again, the writer also *spools* what it has handed to the
request into an anonymous temp file (``spool=True``, the default); if the request fails, the
retry replays the spool and then carries on with the queue. With ``spool=False`` a failed
streamed write raises :class:`KoofrUploadError` and nothing is stored at the path.

A writer closed because of an exception (``with`` block that raises, or garbage collection of
an unclosed writer) aborts the request instead of committing a truncated file.

A streamed writer holds one of the filesystem's ``max_concurrency`` request slots from its first
full block until it is closed: a thread that keeps ``max_concurrency`` writers open and then
makes another request on the same account waits for one of them to close.
"""

from __future__ import annotations

import contextlib
import queue
import secrets
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import Any

from fsspec.caching import BaseCache, register_cache
from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

from koofrfs.errors import KoofrUploadError
from koofrfs.paths import join, split
from koofrfs.transfer import PIECE, Source, bytes_source

Uploader = Callable[[str, Source, "int | None"], dict[str, Any]]
"""Stores a source at a path (parents created, ``modified`` ms kept); returns its fsspec info."""

RangeReader = Callable[[int, int], bytearray]
"""Returns bytes ``[start, end)`` of the file being read (fewer at its end)."""


class _Aborted(Exception):
    """Raised inside the request body to make httpx drop the connection mid-upload."""


_EOF = object()


class _StreamUpload:
    """One streamed upload: a background request reading from a bounded queue."""

    def __init__(
        self, upload: Uploader, path: str, modified: int | None, spool: bool, depth: int = 4
    ) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        # Closed in finish()/abort(); an anonymous file vanishes even if the process dies.
        self._spool = (
            tempfile.TemporaryFile(prefix="koofrfs-spool-")  # noqa: SIM115
            if spool
            else None
        )
        self._spool_lock = threading.Lock()
        self._consumed = 0
        self._eof = False
        self._aborted = threading.Event()
        self._done = threading.Event()
        self.error: BaseException | None = None
        self.result: dict[str, Any] | None = None
        self.path = path
        self._thread = threading.Thread(
            target=self._run,
            args=(upload, path, modified),
            name=f"koofrfs-upload:{path}",
            daemon=True,
        )
        self._thread.start()

    def _run(self, upload: Uploader, path: str, modified: int | None) -> None:
        try:
            self.result = upload(path, self._chunks, modified)
        except BaseException as exc:  # handed to the writer thread, which re-raises it
            self.error = exc
        finally:
            self._done.set()

    def _chunks(self, attempt: int) -> Iterator[bytes]:
        if attempt > 1 and self._consumed:
            if self._spool is None:
                raise KoofrUploadError(
                    f"Koofr streamed upload of /{self.path} failed and cannot be resent "
                    "(opened with spool=False); nothing was stored",
                    method="POST",
                    path="/" + self.path,
                )
            yield from self._replay(self._consumed)
        while not self._eof:
            try:
                item = self._queue.get(timeout=0.2)
            except queue.Empty:
                if self._aborted.is_set():
                    raise _Aborted() from None
                continue
            if item is _EOF:
                self._eof = True
                break
            self._consumed += len(item)
            yield item
        if self._aborted.is_set():
            raise _Aborted()

    def _replay(self, length: int) -> Iterator[bytes]:
        assert self._spool is not None
        offset = 0
        while offset < length:
            with self._spool_lock:
                self._spool.seek(offset)
                piece = self._spool.read(min(PIECE, length - offset))
            if not piece:
                raise KoofrUploadError(f"spool of /{self.path} is shorter than expected")
            offset += len(piece)
            yield piece

    def _put(self, item: Any) -> None:
        while True:
            if self._done.is_set():
                raise self._failure()
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def _failure(self) -> BaseException:
        if self.error is not None:
            return self.error
        return KoofrUploadError(f"Koofr upload of /{self.path} ended before all data was sent")

    def feed(self, data: bytes | memoryview) -> None:
        """Hand bytes to the request; blocks while the queue is full (that is the flow control)."""
        with memoryview(data).cast("B") as view:
            for offset in range(0, len(view), PIECE):
                piece = bytes(view[offset : offset + PIECE])
                if self._spool is not None:
                    with self._spool_lock:
                        self._spool.seek(0, 2)
                        self._spool.write(piece)
                self._put(piece)

    def finish(self) -> dict[str, Any]:
        """Signal the end of the data, wait for the server's answer and return its FileInfo."""
        try:
            if not self._done.is_set():
                self._put(_EOF)
            self._thread.join()
            if self.error is not None:
                raise self.error
            assert self.result is not None
            return self.result
        finally:
            self._close_spool()

    def abort(self) -> None:
        """Drop the request mid-body so the server stores nothing."""
        self._aborted.set()
        self._thread.join(timeout=30)
        self._close_spool()

    def _close_spool(self) -> None:
        if self._spool is not None:
            with contextlib.suppress(OSError):
                self._spool.close()


class KoofrWriteFile(AbstractBufferedFile):
    """Write-only Koofr file: small files in one request, large ones streamed (see module doc).

    Inside an fsspec transaction (``autocommit=False``) the data goes to a hidden temporary name
    in the same folder and :meth:`commit` moves it into place server-side.
    """

    DEFAULT_BLOCK_SIZE = 4 * 2**20

    def __init__(
        self,
        fs: AbstractFileSystem,
        path: str,
        upload: Uploader,
        mode: str = "wb",
        block_size: int | None = None,
        autocommit: bool = True,
        modified: int | None = None,
        spool: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            fs, path, mode=mode, block_size=block_size or "default", autocommit=autocommit, **kwargs
        )
        self.upload = upload
        self.modified = None if modified is None else int(modified)
        self.spool = spool
        self.target = path
        if not autocommit:
            parent, name = split(path)
            self.target = join(parent, f".{name}.koofrfs-{secrets.token_hex(6)}.part")
        self._stream: _StreamUpload | None = None
        self.result: dict[str, Any] | None = None

    def _upload_chunk(self, final: bool = False) -> bool:
        if final and self._stream is None:
            data = self.buffer.getvalue()
            self.result = self.upload(self.target, bytes_source(data), self.modified)
            return True
        if self._stream is None:
            self._stream = _StreamUpload(self.upload, self.target, self.modified, self.spool)
        try:
            with self.buffer.getbuffer() as view:  # no copy of the whole block
                if len(view):
                    self._stream.feed(view)
            if final:
                self.result = self._stream.finish()
        except BaseException:
            self._abort_stream()
            raise
        return True

    def _abort_stream(self) -> None:
        if self._stream is not None:
            self._stream.abort()
            self._stream = None

    def abort(self) -> None:
        """Give up: nothing is stored at the path (or the previous content stays)."""
        if not self.closed:
            self._abort_stream()
            self.buffer = None
            self.closed = True

    def commit(self) -> None:
        """Move the temporary upload of a transaction to its final name."""
        if self.target != self.path:
            self.fs.mv(self.target, self.path, exact=True)

    def discard(self) -> None:
        """Remove the temporary upload of a transaction."""
        if self.target != self.path:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(self.target)

    def __exit__(self, exc_type: Any, *args: Any) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()

    def __del__(self) -> None:
        # Unlike fsspec's default (close = commit), never publish a half-written file.
        if not getattr(self, "closed", True):
            self.abort()


class KoofrReadAhead(BaseCache):
    """Readahead cache holding one block as a ``bytearray``.

    fsspec's ``readahead`` cache keeps the old block while fetching ``read size + block`` and
    converts each block to ``bytes``: about three blocks alive at once. This one drops the old
    block first, fetches ``max(read size, block)`` into a preallocated buffer and copies out only
    what ``read`` returns, so a reader costs one block (plus the read) whatever the file size.
    """

    name = "koofr-readahead"

    def __init__(self, blocksize: int, fetcher: Callable[[int, int], bytearray], size: int) -> None:
        super().__init__(blocksize, fetcher, size)  # type: ignore[arg-type]
        self.cache = bytearray()
        self.start = 0
        self.end = 0

    def _fetch(self, start: int | None, end: int | None) -> bytes:
        start = 0 if start is None else start
        end = self.size if end is None else min(end, self.size)
        if start >= end:
            return b""
        if self.start <= start and end <= self.end:
            self.hit_count += 1
            return bytes(memoryview(self.cache)[start - self.start : end - self.start])
        self.miss_count += 1
        self.cache = bytearray()
        fetch_end = min(self.size, max(end, start + self.blocksize))
        self.total_requested_bytes += fetch_end - start
        self.cache = self.fetcher(start, fetch_end)
        self.start, self.end = start, start + len(self.cache)
        return bytes(memoryview(self.cache)[: end - start])


register_cache(KoofrReadAhead, clobber=True)


class KoofrReadFile(AbstractBufferedFile):
    """Seekable read-only Koofr file; every cache miss is one resumable ranged GET."""

    def __init__(
        self,
        fs: AbstractFileSystem,
        path: str,
        read_range: RangeReader,
        block_size: int,
        cache_options: dict[str, Any] | None = None,
        size: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.read_range = read_range
        super().__init__(
            fs,
            path,
            mode="rb",
            block_size=block_size,
            cache_type=KoofrReadAhead.name,
            cache_options=cache_options,
            size=size,
            **kwargs,
        )

    def _fetch_range(self, start: int, end: int) -> bytearray:
        return self.read_range(start, end)
