"""Stage 2, chunk: read one batch of files, cut them with FastCDC, seal new chunks into packs.

Output stays in the run directory: sealed packs under `batch-N/` and `chunks-N` (each file's
chunk list, errors, and the packs' blob lists). Nothing is sent to the store here, so a retried
upload never needs the source again.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pyfastcdc import FastCDC

from kloset.backup import spool
from kloset.backup.claims import Claims, RunClaims
from kloset.backup.plan import load_plan
from kloset.errors import SourceChanged
from kloset.pack import BLOB_DATA, PackWriter, SealedPack
from kloset.repository import Repository
from kloset.source import Source

PREFETCH_FILES = 8
PREFETCH_BYTES = 64 * 1024 * 1024
PREFETCH_MAX_FILE = 8 * 1024 * 1024
GROUP_CHUNKS = 64
GROUP_BYTES = 32 * 1024 * 1024


@dataclass
class ChunkResult:
    """Small summary of one chunked batch."""

    batch: int
    files: int
    bytes_read: int
    chunks: int
    new_chunks: int
    new_bytes: int
    stored_bytes: int
    packs: list[str]
    errors: list[tuple[str, str]]


class _BatchChunker:
    def __init__(self, repo: Repository, out_dir: str, claims: Claims) -> None:
        cfg = repo.config.chunker
        self.repo = repo
        self.out_dir = out_dir
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
                    self.repo.cipher, self.out_dir, self.repo.config.compression_level
                )
            self.packer.add(BLOB_DATA, bid, data)
            self.new_chunks += 1
            self.new_bytes += len(data)
            if self.packer.size >= self.repo.config.pack_size:
                self.sealed.append(self.packer.seal())
                self.packer = None
        self.pending = []
        self.pending_bytes = 0

    def finish(self) -> list[SealedPack]:
        self.flush()
        if self.packer is not None:
            self.sealed.append(self.packer.seal())
            self.packer = None
        return self.sealed


def _listed(meta: list[Any]) -> tuple[int, str | None]:
    """Size and MD5 the source listed for a file, so a torn read can be told from a good one."""
    return int(meta[3] or 0), (meta[5] or {}).get("md5")


def _read_whole(source: Source, relpath: str, meta: list[Any]) -> bytes | BaseException:
    try:
        with source.open(relpath, *_listed(meta)) as fh:
            return bytes(fh.read())
    except Exception as exc:  # noqa: BLE001 - handed back to the caller's error handling
        return exc


def _prefetched(
    source: Source, items: list[Any], batch: list[int]
) -> Iterator[tuple[int, str, bytes | BaseException | None]]:
    """Yield the batch's files in order; for remote sources, small files arrive prefetched.

    Reading a remote file costs a round trip before the first byte, so small files are fetched
    PREFETCH_FILES at a time (bounded by PREFETCH_BYTES in flight) while earlier ones are chunked.
    Large files (None) are streamed by the caller. Local files never go through here.
    """
    if source.local_path("") is not None:
        for idx in batch:
            yield idx, items[idx][0], None
        return
    with ThreadPoolExecutor(PREFETCH_FILES) as pool:
        window: deque[tuple[int, str, Future[bytes | BaseException] | None, int]] = deque()
        in_flight = 0
        for idx in batch:
            relpath, meta = items[idx][0], items[idx][1]
            size = int(meta[3] or 0)
            small = size <= PREFETCH_MAX_FILE
            fut = pool.submit(_read_whole, source, relpath, meta) if small else None
            window.append((idx, relpath, fut, size if fut is not None else 0))
            in_flight += size if fut is not None else 0
            while window and (len(window) > PREFETCH_FILES or in_flight > PREFETCH_BYTES):
                i, r, f, sz = window.popleft()
                in_flight -= sz
                yield i, r, f.result() if f is not None else None
        while window:
            i, r, f, _sz = window.popleft()
            yield i, r, f.result() if f is not None else None


def _file_chunks(
    worker: _BatchChunker,
    source: Source,
    relpath: str,
    fetched: bytes | BaseException | None,
    meta: list[Any],
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
        return worker.file_chunks(source, relpath, *_listed(meta))
    except SourceChanged:
        try:
            return worker.file_chunks(source, relpath, *_listed(meta))
        except SourceChanged as exc:
            raise SourceChanged(f"{exc}; read twice") from None


def chunk_batch(
    repo: Repository,
    run_dir: str,
    batch_no: int,
    *,
    source: Source | None = None,
    claims: Claims | None = None,
    plan: dict[str, Any] | None = None,
    on_file: Callable[[int], None] | None = None,
) -> ChunkResult:
    """Chunk batch `batch_no` of the plan in `run_dir`; idempotent (reruns redo the batch)."""
    plan = plan or load_plan(run_dir)
    if source is None:
        from kloset.locations import open_source

        source = open_source(plan["source"])
    # Without claims from the caller (Prefect tasks), batches of one run claim through the run dir.
    run_claims = None
    if claims is None:
        claims = run_claims = RunClaims(spool.claims_path(run_dir), batch_no)
    try:
        return _chunk_batch(repo, run_dir, batch_no, plan, source, claims, on_file)
    finally:
        if run_claims is not None:
            run_claims.close()


def _chunk_batch(
    repo: Repository,
    run_dir: str,
    batch_no: int,
    plan: dict[str, Any],
    source: Source,
    claims: Claims,
    on_file: Callable[[int], None] | None,
) -> ChunkResult:
    out_dir = spool.batch_dir(run_dir, batch_no)
    for stale in os.listdir(out_dir):  # a previous attempt of this batch: start clean
        os.unlink(os.path.join(out_dir, stale))
    worker = _BatchChunker(repo, out_dir, claims)
    items = plan["items"]
    files: dict[int, list[Any]] = {}
    errors: list[tuple[str, str]] = []
    bytes_read = 0
    for idx, relpath, fetched in _prefetched(source, items, plan["batches"][batch_no]):
        try:
            ids, size = _file_chunks(worker, source, relpath, fetched, items[idx][1])
        except (OSError, ValueError) as exc:
            errors.append(("/" + relpath, f"cannot read: {getattr(exc, 'strerror', None) or exc}"))
            if on_file is not None:
                on_file(0)
            continue
        except Exception as exc:  # noqa: BLE001 - remote sources raise their own errors
            errors.append(("/" + relpath, f"cannot read: {exc}"))
            if on_file is not None:
                on_file(0)
            continue
        files[idx] = [ids, size]
        bytes_read += size
        if on_file is not None:
            on_file(size)
    sealed = worker.finish()
    stored = sum(p.size for p in sealed)
    spool.write_msgpack(
        spool.chunks_path(run_dir, batch_no),
        {
            "files": files,
            "errors": [list(e) for e in errors],
            "packs": [[p.pack_id, p.size, [b.to_list() for b in p.blobs]] for p in sealed],
            "stats": {
                "bytes_read": bytes_read,
                "chunks": worker.chunks,
                "new_chunks": worker.new_chunks,
                "new_bytes": worker.new_bytes,
                "stored_bytes": stored,
            },
        },
    )
    return ChunkResult(
        batch=batch_no,
        files=len(files),
        bytes_read=bytes_read,
        chunks=worker.chunks,
        new_chunks=worker.new_chunks,
        new_bytes=worker.new_bytes,
        stored_bytes=stored,
        packs=[p.pack_id.hex() for p in sealed],
        errors=errors,
    )
