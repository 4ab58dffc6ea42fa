"""Reading file contents out of a snapshot for HTTP responses, a window of chunks at a time.

Downloads, previews and archives all come through here so they share one property: a file is
read as ranged, coalesced blob fetches (`kloset.fetch.fetch_blobs`), a few chunks at a time,
never as whole packs and never as a whole file in memory.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

from kloset.errors import CorruptObject
from kloset.fetch import fetch_blobs
from kloset.repository import Repository
from kloset.tree import Entry

# Eight chunks is ~8 MiB with the default chunker: big enough to coalesce ranges, small enough
# that a slow client never makes the server hold much.
WINDOW_CHUNKS = 8


def chunk_offsets(repo: Repository, entry: Entry) -> list[int]:
    """Start offset of each chunk in the file (plaintext), from the index alone."""
    starts: list[int] = []
    pos = 0
    for cid in entry.chunks:
        loc = repo.index.get(cid)
        if loc is None:
            raise CorruptObject(f"blob {cid.hex()[:16]} of {entry.name} is not in the index")
        starts.append(pos)
        pos += loc.raw_length
    return starts


def iter_file(
    repo: Repository,
    entry: Entry,
    start: int = 0,
    end: int | None = None,
    *,
    cache: dict[bytes, bytes] | None = None,
) -> Iterator[bytes]:
    """Bytes [start, end) of a file, yielded chunk by chunk. Only the chunks overlapping the
    range are fetched (a 100-byte range costs one chunk); `cache` holds prefetched blobs."""
    end = entry.size if end is None else min(end, entry.size)
    if start >= end or not entry.chunks:
        return
    starts = chunk_offsets(repo, entry)
    idx = max(0, bisect.bisect_right(starts, start) - 1)
    last = bisect.bisect_left(starts, end)  # chunks [idx, last) overlap [start, end)
    have = cache if cache is not None else {}
    while idx < last:
        window = entry.chunks[idx : min(idx + WINDOW_CHUNKS, last)]
        missing = [c for c in window if c not in have]
        fetched = fetch_blobs(repo, missing) if missing else {}
        for offset, cid in enumerate(window):
            cstart = starts[idx + offset]
            data = fetched[cid] if cid in fetched else have[cid]
            lo = max(0, start - cstart)
            hi = min(len(data), end - cstart)
            if hi > lo:
                yield data if (lo == 0 and hi == len(data)) else data[lo:hi]
        idx += len(window)


def read_head(
    repo: Repository, entry: Entry, limit: int, *, cache: dict[bytes, bytes] | None = None
) -> bytes:
    """The first `limit` bytes of a file: what a preview needs, without reading the rest."""
    out = bytearray()
    for block in iter_file(repo, entry, 0, limit, cache=cache):
        out += block
    return bytes(out)


def prefetch_small(repo: Repository, entries: list[Entry], max_size: int) -> dict[bytes, bytes]:
    """One coalesced fetch for all chunks of the small files in `entries` (archives of many
    small files would otherwise cost a ranged request per file)."""
    ids = [c for e in entries if e.is_file and e.size <= max_size for c in e.chunks]
    return fetch_blobs(repo, ids) if ids else {}
