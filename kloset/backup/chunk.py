"""Chunking: cut a batch's files with FastCDC and seal the chunks the store lacks into packs.

Each sealed pack goes to a sink (`kloset.backup.sink`) the moment it is sealed: into the store,
or nowhere in a dry run. `kloset.backup.batch` drives this for one batch.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from pyfastcdc import FastCDC

from kloset.backup.claims import Claims
from kloset.backup.sink import PackSink
from kloset.errors import SourceChanged
from kloset.pack import BLOB_DATA, PackWriter, SealedPack
from kloset.repository import Repository
from kloset.source import Source

PREFETCH_FILES = 8
PREFETCH_BYTES = 64 * 1024 * 1024
PREFETCH_MAX_FILE = 8 * 1024 * 1024
GROUP_CHUNKS = 1024  # new chunks claimed at once: one SQLite transaction per group
GROUP_BYTES = 32 * 1024 * 1024


class BatchChunker:
    """Chunks files one after another, sealing new chunks into packs handed to `sink`."""

    def __init__(self, repo: Repository, sink: PackSink, claims: Claims) -> None:
        cfg = repo.config.chunker
        self.repo = repo
        self.sink = sink
        self.claims = claims
        self.cdc = FastCDC(
            cfg.avg_size,
            min_size=cfg.min_size,
            max_size=cfg.max_size,
            normalized_chunking=cfg.normalization,  # type: ignore[arg-type]
            seed=repo.keys.chunker_seed,
        )
        self.min_size = cfg.min_size
        self.buf = bytearray(cfg.min_size + 1)
        self.pending: list[tuple[bytes, Any]] = []
        self.pending_bytes = 0
        self.packer: PackWriter | None = None
        self.sealed: list[SealedPack] = []
        self.chunks = 0
        self.new_chunks = 0
        self.new_bytes = 0

    def file_chunks(
        self, source: Source, relpath: str, size: int | None = None, md5: str | None = None
    ) -> tuple[list[bytes], int]:
        ids: list[bytes] = []
        local = source.local_path(relpath)
        total = 0
        if local is not None:
            with open(local, "rb") as fh:
                n = fh.readinto(self.buf)
            if n <= self.min_size:
                # Small file: one chunk, read into a reused buffer (fresh memory is slow here).
                if n:
                    data = bytes(memoryview(self.buf)[:n])
                    ids.append(self._add(data))
                return ids, n
            for ch in self.cdc.cut_file(local):
                ids.append(self._add(ch.data))
                total += ch.length
            return ids, total
        with source.open(relpath, size, md5) as fh:
            for ch in self.cdc.cut_stream(fh):
                # Stream chunks are only valid until the next one: keep a copy.
                ids.append(self._add(bytes(ch.data)))
                total += ch.length
        return ids, total

    def buffer_chunks(self, data: bytes) -> tuple[list[bytes], int]:
        """Chunk a file already fetched whole (small remote files, see `_prefetched`)."""
        if len(data) <= self.min_size:
            return ([self._add(data)] if data else []), len(data)
        ids = [self._add(ch.data) for ch in self.cdc.cut_buf(data)]
        return ids, len(data)

    def _add(self, data: bytes | memoryview) -> bytes:
        bid = self.repo.blob_id(data)
        self.chunks += 1
        if bid not in self.repo.index:
            self.pending.append((bid, data))
            self.pending_bytes += len(data)
            if len(self.pending) >= GROUP_CHUNKS or self.pending_bytes >= GROUP_BYTES:
                self.flush()
        return bid

    def flush(self) -> None:
        if not self.pending:
            return
        wins = self.claims.claim([bid for bid, _ in self.pending])
        for (bid, data), mine in zip(self.pending, wins, strict=True):
            if not mine:
                continue
            if self.packer is None:
                self.packer = PackWriter(
                    self.repo.cipher, self.sink.spool_dir, self.repo.config.compression_level
                )
            self.packer.add(BLOB_DATA, bid, data)
            self.new_chunks += 1
            self.new_bytes += len(data)
            if self.packer.size >= self.repo.config.pack_size:
                self._seal()
        self.pending = []
        self.pending_bytes = 0

    def _seal(self) -> None:
        assert self.packer is not None
        sealed = self.packer.seal()
        self.packer = None
        self.sink.put(sealed)
        self.sealed.append(sealed)

    def finish(self) -> list[SealedPack]:
        self.flush()
        if self.packer is not None:
            self._seal()
        return self.sealed

    def abort(self) -> None:
        if self.packer is not None:
            self.packer.abort()
            self.packer = None


def _read_whole(source: Source, relpath: str, size: int, md5: str | None) -> bytes | BaseException:
    try:
        with source.open(relpath, size, md5) as fh:
            return bytes(fh.read())
    except Exception as exc:  # noqa: BLE001 - handed back to the caller's error handling
        return exc


def prefetched(
    source: Source, items: list[list[Any]]
) -> Iterator[tuple[list[Any], bytes | BaseException | None]]:
    """Yield the batch's items in order; for remote sources, small files arrive prefetched.

    Reading a remote file costs a round trip before the first byte, so small files are fetched
    PREFETCH_FILES at a time (bounded by PREFETCH_BYTES in flight) while earlier ones are chunked.
    Large files (None) are streamed by the caller. Local files never go through here.
    """
    if source.local_path("") is not None:
        for item in items:
            yield item, None
        return
    with ThreadPoolExecutor(PREFETCH_FILES) as pool:
        window: deque[tuple[list[Any], Future[bytes | BaseException] | None, int]] = deque()
        in_flight = 0
        for item in items:
            _idx, relpath, size, _mtime, md5 = item
            small = size <= PREFETCH_MAX_FILE
            fut = pool.submit(_read_whole, source, relpath, size, md5) if small else None
            window.append((item, fut, size if fut is not None else 0))
            in_flight += size if fut is not None else 0
            while window and (len(window) > PREFETCH_FILES or in_flight > PREFETCH_BYTES):
                it, f, sz = window.popleft()
                in_flight -= sz
                yield it, f.result() if f is not None else None
        while window:
            it, f, _sz = window.popleft()
            yield it, f.result() if f is not None else None


def file_chunks(
    worker: BatchChunker,
    source: Source,
    relpath: str,
    fetched: bytes | BaseException | None,
    size: int,
    md5: str | None,
) -> tuple[list[bytes], int]:
    """One file's chunks. A read that disagrees with the source's listing (the file changed
    while it was read, or a download came back torn) is read once more; a second disagreement
    is raised for the caller to record as this file's error. The torn attempt's chunks may sit
    in a pack unreferenced; no snapshot ever points at them."""
    try:
        if isinstance(fetched, BaseException):
            raise fetched
        if fetched is not None:
            return worker.buffer_chunks(fetched)
        return worker.file_chunks(source, relpath, size, md5)
    except SourceChanged:
        try:
            return worker.file_chunks(source, relpath, size, md5)
        except SourceChanged as exc:
            raise SourceChanged(f"{exc}; read twice") from None
