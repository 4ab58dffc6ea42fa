"""`kloset.reader.FileReader`: exact bytes for any range, readahead only while reads are
sequential, and damage reported to the reader instead of returning wrong bytes."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import pytest
from kloset_samples import VIDEO_SIZE, SampleStore

from kloset import fetch, reader
from kloset.errors import CorruptObject
from kloset.vfs import SnapshotView


def _video(sample_store: SampleStore) -> tuple[reader.FileReader, bytes]:
    view = SnapshotView(sample_store.repo, sample_store.second)
    data = (sample_store.source / "video.mp4").read_bytes()
    return reader.FileReader(sample_store.repo, view.stat("/video.mp4")), data


def test_any_range_reads_exactly_the_stored_bytes(sample_store: SampleStore) -> None:
    fh, data = _video(sample_store)
    assert fh.size == VIDEO_SIZE == len(data) and len(fh.chunks) >= 3
    rng = random.Random(1)
    for _ in range(200):
        start = rng.randrange(0, VIDEO_SIZE + 10)
        size = rng.choice([1, 4096, 131072, 3 * 1024 * 1024, VIDEO_SIZE])
        assert fh.pread(start, size) == data[start : start + size]
    fh.seek(-100, 2)
    assert fh.read() == data[-100:]
    fh.seek(0)
    assert fh.read() == data


def test_sequential_reads_fetch_ahead_and_seeks_do_not(
    sample_store: SampleStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = fetch.fetch_blobs

    def counting(repo, ids, **kw):  # type: ignore[no-untyped-def]
        ids = list(ids)
        calls.append(len(ids))
        return real(repo, ids, **kw)

    monkeypatch.setattr(reader, "fetch_blobs", counting)
    with ThreadPoolExecutor(1) as pool:
        fh, data = _video(sample_store)
        fh._pool = pool
        step = 128 * 1024
        out = b"".join(fh.pread(off, step) for off in range(0, VIDEO_SIZE, step))
        assert out == data
        # One chunk on demand, then windows of 1, 2, 4… chunks fetched ahead: far fewer
        # fetches than chunks, and never one per 128 KiB read.
        assert sum(calls) == len(fh.chunks) and len(calls) < len(fh.chunks)
        assert max(calls) > 1

        calls.clear()
        jumpy, _ = _video(sample_store)
        jumpy._pool = pool
        for idx in (len(jumpy.chunks) - 1, 0, len(jumpy.chunks) // 2):
            start = jumpy._starts[idx]
            assert jumpy.pread(start + 10, 100) == data[start + 10 : start + 110]
        assert calls == [1, 1, 1], "a seek must fetch only the chunk it reads"


def test_a_damaged_chunk_is_an_error_and_a_later_read_tries_again(
    sample_store: SampleStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    fh, data = _video(sample_store)
    real = fetch.fetch_blobs

    def broken(repo, ids, **kw):  # type: ignore[no-untyped-def]
        raise CorruptObject("packs/ab/abcd: blob 1234: authentication failed")

    monkeypatch.setattr(reader, "fetch_blobs", broken)
    with pytest.raises(CorruptObject):
        fh.pread(0, 10)
    monkeypatch.setattr(reader, "fetch_blobs", real)
    assert fh.pread(0, 10) == data[:10]
