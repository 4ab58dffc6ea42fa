"""Random access to one file of a snapshot: byte-range reads, a few decoded chunks kept, and
readahead while the reads are sequential.

A video player, `cp` or rclone reading through the FUSE mount or WebDAV asks for the file a
128 KiB piece at a time; without readahead each chunk boundary would stall on a round trip to
the store (tens of milliseconds on Koofr). Reads that continue where the previous one ended
grow a window of chunks fetched in the background (one coalesced `fetch_blobs` call per
window, so contiguous chunks cost one ranged request); a seek resets it, so a player jumping
around a file fetches only what it shows.
"""

from __future__ import annotations

import bisect
import io
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor

from kloset.fetch import fetch_blobs
from kloset.repository import Repository
from kloset.stream import chunk_offsets
from kloset.tree import Entry

# Chunks fetched ahead at most (~8 MiB with the default chunker), and kept decoded per reader.
READAHEAD_CHUNKS = 8
KEEP_CHUNKS = READAHEAD_CHUNKS + 4
# The kernel (FUSE) and threaded servers issue a sequential stream's requests in parallel, so
# they arrive slightly out of order: anything this close to the last end still counts as next.
SEQUENTIAL_SLACK = 1024 * 1024

_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def readahead_pool() -> ThreadPoolExecutor:
    """One small pool for every reader in the process: readahead is I/O, bounded on purpose."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(4, thread_name_prefix="kloset-readahead")
        return _pool


class FileReader(io.RawIOBase):
    """Seekable, thread-safe reader of one snapshot file (`pread` for concurrent callers)."""

    def __init__(
        self,
        repo: Repository,
        entry: Entry,
        *,
        readahead: int | None = None,
        pool: ThreadPoolExecutor | None = None,
    ) -> None:
        super().__init__()
        self.repo = repo
        self.entry = entry
        self.chunks = list(entry.chunks)
        self._starts = chunk_offsets(repo, entry)
        last = repo.index.get(self.chunks[-1]) if self.chunks else None
        self.size = self._starts[-1] + last.raw_length if last is not None else 0
        self._max_ahead = max(0, READAHEAD_CHUNKS if readahead is None else readahead)
        self._pool = pool
        self._lock = threading.Lock()
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._pending: dict[int, Future[None]] = {}
        self._next = 0  # where a sequential read would start
        self._ahead = 0  # current readahead window, in chunks
        self._pos = 0

    # -- io.RawIOBase --------------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
        data = self.pread(self._pos, len(buf))
        buf[: len(data)] = data
        self._pos += len(data)
        return len(data)

    # -- ranged reads ----------------------------------------------------------------------
    def pread(self, offset: int, size: int) -> bytes:
        """Up to `size` bytes at `offset` (fewer only at the end of the file)."""
        end = min(self.size, offset + size)
        if offset >= end:
            return b""
        first = bisect.bisect_right(self._starts, offset) - 1
        last = bisect.bisect_left(self._starts, end)  # chunks [first, last) cover the range
        self._plan_readahead(offset, end, last)
        parts = []
        for idx in range(first, last):
            data = self._chunk(idx)
            lo = max(0, offset - self._starts[idx])
            hi = min(len(data), end - self._starts[idx])
            parts.append(data if lo == 0 and hi == len(data) else data[lo:hi])
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _plan_readahead(self, offset: int, end: int, after: int) -> None:
        """Grow the window on sequential reads (1, 2, 4 … chunks), drop it on a seek."""
        with self._lock:
            sequential = abs(offset - self._next) <= SEQUENTIAL_SLACK
            self._next = max(self._next, end) if sequential else end
            if not sequential:
                self._ahead = 0
                return
            self._ahead = min(self._max_ahead, max(1, self._ahead * 2))
            wanted = [
                i
                for i in range(after, min(len(self.chunks), after + self._ahead))
                if i not in self._cache and i not in self._pending
            ]
            if not wanted:
                return
            fut: Future[None] = Future()
            for i in wanted:
                self._pending[i] = fut
        pool = self._pool or readahead_pool()
        try:
            pool.submit(self._fetch, wanted, fut)
        except RuntimeError:  # the interpreter is shutting down: read on demand instead
            self._fetch(wanted, fut)

    def _chunk(self, idx: int) -> bytes:
        with self._lock:
            hit = self._cache.get(idx)
            if hit is not None:
                self._cache.move_to_end(idx)
                return hit
            fut = self._pending.get(idx)
            if fut is None:  # nobody is fetching it: this thread does, others may wait on it
                fut = Future()
                self._pending[idx] = fut
                mine = True
            else:
                mine = False
        if mine:
            self._fetch([idx], fut)
        fut.result()  # raises the fetch's error (damaged pack) to every reader waiting on it
        with self._lock:
            hit = self._cache.get(idx)
        if hit is None:  # evicted between the fetch and now: only under heavy concurrent use
            return self.repo.read_blob(self.chunks[idx])
        return hit

    def _fetch(self, indices: list[int], fut: Future[None]) -> None:
        """Fetch chunks `indices` in one coalesced call, publish them, resolve `fut`."""
        try:
            blobs = fetch_blobs(self.repo, [self.chunks[i] for i in indices])
        except BaseException as exc:
            with self._lock:
                for i in indices:
                    self._pending.pop(i, None)  # a later read tries again
            fut.set_exception(exc)
            return
        with self._lock:
            for i in indices:
                self._cache[i] = blobs[self.chunks[i]]
                self._cache.move_to_end(i)
                self._pending.pop(i, None)
            while len(self._cache) > KEEP_CHUNKS:
                self._cache.popitem(last=False)
        fut.set_result(None)

    def close(self) -> None:
        with self._lock:
            self._cache.clear()
        super().close()
