"""The index: which pack holds each blob, loaded from many immutable index files.

Every upload writes one index file describing the packs it just stored (packs first, index
second), so a run killed midway still leaves indexed, reusable packs. Index files are named by
the keyed hash of their plaintext and never modified; prune replaces them wholesale.

Why columns: a store of 10 TB holds ~10 million blobs. As Python objects (a dict of tuples)
they cost ~300 bytes and ~5 µs each to load, 3 GB and a minute before the first `ls`. An index
file (format v2) therefore keeps its blobs as two byte strings, the ids and fixed-width
locations, sorted by id prefix; opening a store decrypts them and keeps them as they are
(49 bytes a blob), and a lookup is a binary search. Only when one process asks many questions
of many files are the files merged into one sorted view (12 more bytes a blob).
"""

from __future__ import annotations

import struct
import threading
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import msgpack

from kloset import codec
from kloset.crypto import Cipher
from kloset.errors import CorruptObject
from kloset.pack import BlobEntry, SealedPack

INDEX_AD = b"kloset:index"
ID_LEN = 32
# One location: pack number (in the file's pack table), offset, length, raw length, type.
LOC = struct.Struct("<IIIIB")

SMALL_INDEX = 1 << 18  # stores of up to this many blobs (~256 GB) are answered by a dict
PackTable = list[tuple[bytes, int]]
IndexPacks = list[tuple[bytes, int, list[BlobEntry]]]


class Location(NamedTuple):
    """A blob's place in the store (a tuple: made for every lookup, so it must be cheap)."""

    pack_id: bytes
    offset: int
    length: int
    raw_length: int
    type: int


def id_prefix(blob_id: bytes) -> int:
    """The sort key of a blob id: its first 8 bytes as a little-endian u64 (so a cast
    memoryview of the id column is the key column, with no per-blob work)."""
    return int.from_bytes(blob_id[:8], "little")


class IndexRun:
    """The blobs of one index file: an id column and a location column, sorted by id prefix."""

    __slots__ = ("packs", "ids", "locs", "keys", "n")

    def __init__(self, packs: PackTable, ids: bytes, locs: bytes) -> None:
        self.packs = packs
        self.ids = ids
        self.locs = locs
        self.n = len(ids) // ID_LEN
        self.keys = memoryview(ids).cast("Q")[:: ID_LEN // 8]  # first 8 bytes of every id

    @classmethod
    def from_packs(cls, packs: Iterable[tuple[bytes, int, Iterable[BlobEntry]]]) -> IndexRun:
        table: PackTable = []
        rows: list[tuple[int, bytes, bytes]] = []
        for pno, (pid, size, blobs) in enumerate(packs):
            table.append((pid, size))
            for b in blobs:
                try:
                    loc = LOC.pack(pno, b.offset, b.length, b.raw_length, b.type)
                except struct.error as exc:
                    raise ValueError(f"blob location does not fit the index format: {exc}") from exc
                rows.append((id_prefix(b.id), b.id, loc))
        rows.sort(key=lambda r: r[0])
        return cls(table, b"".join(r[1] for r in rows), b"".join(r[2] for r in rows))

    def id_at(self, row: int) -> bytes:
        return self.ids[row * ID_LEN : (row + 1) * ID_LEN]

    def find(self, blob_id: bytes) -> int:
        """Row of `blob_id`, or -1. Rows with an equal prefix are few; compare each."""
        key = id_prefix(blob_id)
        keys = self.keys
        i = bisect_left(keys, key)
        while i < self.n and keys[i] == key:
            if self.id_at(i) == blob_id:
                return i
            i += 1
        return -1

    def location(self, row: int) -> Location:
        pno, offset, length, raw, kind = LOC.unpack_from(self.locs, row * LOC.size)
        if pno >= len(self.packs) or length == 0:
            raise CorruptObject(f"index entry of blob {self.id_at(row).hex()[:16]} is damaged")
        return Location(self.packs[pno][0], offset, length, raw, kind)

    def entries(self) -> IndexPacks:
        """The file's packs with their blobs in pack order (offset), as `BlobEntry`s."""
        per_pack: list[list[BlobEntry]] = [[] for _ in self.packs]
        for row in range(self.n):
            loc = self.location(row)
            pno = LOC.unpack_from(self.locs, row * LOC.size)[0]
            per_pack[pno].append(
                BlobEntry(loc.type, self.id_at(row), loc.offset, loc.length, loc.raw_length)
            )
        return [
            (pid, size, sorted(blobs, key=lambda b: b.offset))
            for (pid, size), blobs in zip(self.packs, per_pack, strict=True)
        ]


def encode_index(packs: Iterable[tuple[bytes, int, list[BlobEntry]]]) -> bytes:
    """Plaintext of an index file (v2): {"v": 2, "packs": [[id, size]...], "ids", "locs"}."""
    return encode_run(IndexRun.from_packs(packs))


def encode_run(run: IndexRun) -> bytes:
    table = [[pid, size] for pid, size in run.packs]
    return msgpack.packb({"v": 2, "packs": table, "ids": run.ids, "locs": run.locs})


def decode_index_run(raw: bytes, name: str) -> IndexRun:
    """Decode an index file of either version into a run, checking what can be checked
    without touching every blob (each location is checked when it is used)."""
    try:
        doc = msgpack.unpackb(raw)
        if doc.get("v") == 1:  # stores written before v2: one list per blob
            packs = [
                (bytes(pid), size, [BlobEntry.from_list(b) for b in blobs])
                for pid, size, blobs in doc["packs"]
            ]
            _check_packs([(pid, size) for pid, size, _b in packs])
            return IndexRun.from_packs(packs)
        if doc.get("v") != 2:
            raise ValueError(f"unknown index version {doc.get('v')!r}")
        table = [(bytes(pid), size) for pid, size in doc["packs"]]
        _check_packs(table)
        ids, locs = doc["ids"], doc["locs"]
        if not isinstance(ids, bytes) or not isinstance(locs, bytes):
            raise ValueError("bad columns")
        if len(ids) % ID_LEN or len(locs) != len(ids) // ID_LEN * LOC.size:
            raise ValueError("columns of different lengths")
        run = IndexRun(table, ids, locs)
        keys = run.keys.tolist()
        if keys != sorted(keys):
            raise ValueError("blobs are not sorted")
        return run
    except Exception as exc:  # noqa: BLE001
        raise CorruptObject(f"{name}: index file is damaged ({exc})") from exc


def _check_packs(table: PackTable) -> None:
    if not all(len(pid) == 32 and type(size) is int and size >= 0 for pid, size in table):
        raise ValueError("bad pack entry")


def decode_index(raw: bytes, name: str) -> IndexPacks:
    """An index file as packs with their blob entries (for check, repair and prune)."""
    run = decode_index_run(raw, name)
    try:
        return run.entries()
    except CorruptObject as exc:
        raise CorruptObject(f"{name}: index file is damaged ({exc})") from exc


def seal_index(cipher: Cipher, plaintext: bytes, level: int) -> tuple[str, bytes]:
    """(store name, sealed bytes) of an index file."""
    name = "index/" + cipher.blob_id(plaintext).hex()
    return name, codec.encode(cipher, plaintext, INDEX_AD, level)


def _unseal(cipher: Cipher, name: str, sealed: bytes) -> bytes:
    raw = codec.decode(cipher, sealed, INDEX_AD, name)
    if "index/" + cipher.blob_id(raw).hex() != name:
        raise CorruptObject(f"{name}: content does not match its name")
    return raw


def open_index(cipher: Cipher, name: str, sealed: bytes) -> IndexPacks:
    return decode_index(_unseal(cipher, name, sealed), name)


def open_index_run(cipher: Cipher, name: str, sealed: bytes) -> IndexRun:
    return decode_index_run(_unseal(cipher, name, sealed), name)


class _Merged:
    """All runs as one view sorted by id prefix: a key column and each key's global row."""

    SLICES = 64  # merged one key range at a time: ~1/64 of the store in Python ints at once

    def __init__(self, runs: list[IndexRun]) -> None:
        self.runs = runs
        self.starts: list[int] = []
        total = 0
        for run in runs:
            self.starts.append(total)
            total += run.n
        self.keys = array("Q")
        self.rows = array("I" if total < 1 << 32 else "Q")
        done = [0] * len(runs)  # per run: rows below the current key range
        step = (1 << 64) // self.SLICES
        for s in range(1, self.SLICES + 1):
            keys: list[int] = []
            rows: list[int] = []
            for r, run in enumerate(runs):
                lo = done[r]
                hi = run.n if s == self.SLICES else bisect_left(run.keys, s * step, lo)
                if hi > lo:
                    keys.extend(run.keys[lo:hi].tolist())
                    rows.extend(range(self.starts[r] + lo, self.starts[r] + hi))
                    done[r] = hi
            # Stable: a blob in several files keeps the first file's copy first.
            order = sorted(range(len(keys)), key=keys.__getitem__)
            self.keys.extend(map(keys.__getitem__, order))
            self.rows.extend(map(rows.__getitem__, order))

    def _at(self, i: int) -> tuple[IndexRun, int]:
        g = self.rows[i]
        r = bisect_right(self.starts, g) - 1
        return self.runs[r], g - self.starts[r]

    def find(self, blob_id: bytes) -> tuple[IndexRun, int] | None:
        key = id_prefix(blob_id)
        keys = self.keys
        i = bisect_left(keys, key)
        while i < len(keys) and keys[i] == key:
            run, row = self._at(i)
            if run.id_at(row) == blob_id:
                return run, row
            i += 1
        return None

    def rows_in_order(self) -> Iterator[tuple[IndexRun, int]]:
        """Every (run, row) once per distinct id, in key order."""
        keys = self.keys
        n = len(keys)
        i = 0
        while i < n:
            j = i + 1
            while j < n and keys[j] == keys[i]:
                j += 1
            seen: set[bytes] = set()
            for k in range(i, j):
                run, row = self._at(k)
                bid = run.id_at(row)
                if bid not in seen:  # duplicates of one id: the first copy wins
                    seen.add(bid)
                    yield run, row
            i = j


class Index:
    """Blob id → Location, plus pack sizes, over all index files of a store.

    Runs (one per index file) are searched in the order they were added, so the first copy of
    a blob wins and duplicates in other packs are garbage for prune; packs added by this
    process (`add_pack`) come after them. Thread-safe for lookups.
    """

    def __init__(self) -> None:
        self._runs: list[IndexRun] = []
        self._merged: _Merged | None = None
        self._small: dict[bytes, tuple[IndexRun, int]] | None = None
        self._probes = 0  # run searches since the last merge
        self._rows = 0  # rows in all runs
        self._lock = threading.Lock()
        self._extra: dict[bytes, tuple[bytes, int, int, int, int]] = {}
        self.pack_sizes: dict[bytes, int] = {}
        self.files: set[str] = set()

    # -- building ----------------------------------------------------------------------------
    def add_run(self, run: IndexRun) -> None:
        with self._lock:
            self._runs.append(run)
            self._rows += run.n
            self._merged = None
            self._small = None
            self.pack_sizes.update(run.packs)

    def add_pack(self, pack_id: bytes, size: int, blobs: Iterable[BlobEntry]) -> None:
        self.pack_sizes[pack_id] = size
        for b in blobs:
            self._extra.setdefault(b.id, (pack_id, b.offset, b.length, b.raw_length, b.type))

    def add_sealed(self, packs: Iterable[SealedPack]) -> None:
        for p in packs:
            self.add_pack(p.pack_id, p.size, p.blobs)

    # -- lookups -----------------------------------------------------------------------------
    def _find(self, blob_id: bytes) -> tuple[IndexRun, int] | None:
        small = self._small
        if small is not None:
            return small.get(blob_id)
        if 0 < self._rows <= SMALL_INDEX:
            return self._small_dict().get(blob_id)
        merged = self._merged
        if merged is not None:
            return merged.find(blob_id)
        runs = self._runs
        hit = None
        for run in runs:
            row = run.find(blob_id)
            if row >= 0:
                hit = (run, row)
                break
        # Ski rental: once the searches have cost about what a merge costs, merge.
        self._probes += len(runs)
        if len(runs) > 1 and self._probes * 2 > self._rows:
            self._merge()
        return hit

    def _small_dict(self) -> dict[bytes, tuple[IndexRun, int]]:
        """A small store's blobs in a dict: 0.3 µs a lookup instead of ~3 µs for ~200 bytes
        a blob, bounded by SMALL_INDEX (a restore looks up every blob two or three times)."""
        with self._lock:
            if self._small is None:
                small: dict[bytes, tuple[IndexRun, int]] = {}
                for run in self._runs:
                    for row in range(run.n):
                        small.setdefault(run.id_at(row), (run, row))  # the first copy wins
                self._small = small
            return self._small

    def _merge(self) -> _Merged:
        with self._lock:
            if self._merged is None:
                self._merged = _Merged(list(self._runs))
                self._probes = 0
            return self._merged

    def __contains__(self, blob_id: object) -> bool:
        if not isinstance(blob_id, bytes):
            return False
        return self._find(blob_id) is not None or blob_id in self._extra

    def get(self, blob_id: bytes) -> Location | None:
        hit = self._find(blob_id)
        if hit is not None:
            return hit[0].location(hit[1])
        extra = self._extra.get(blob_id)
        return Location(*extra) if extra is not None else None

    # -- whole index -------------------------------------------------------------------------
    def _distinct_rows(self) -> Iterator[tuple[IndexRun, int]]:
        runs = self._runs
        if len(runs) == 1 and not _has_duplicates(runs[0]):
            return ((runs[0], i) for i in range(runs[0].n))
        return self._merge().rows_in_order() if runs else iter(())

    def _extra_only(self) -> Iterator[tuple[bytes, tuple[bytes, int, int, int, int]]]:
        return ((bid, hit) for bid, hit in self._extra.items() if self._find(bid) is None)

    def items(self) -> Iterator[tuple[bytes, Location]]:
        """Every distinct blob once: the runs' in id-prefix order, then this process's."""
        for run, row in self._distinct_rows():
            yield run.id_at(row), run.location(row)
        for bid, hit in self._extra_only():
            yield bid, Location(*hit)

    def ids(self) -> Iterator[bytes]:
        for run, row in self._distinct_rows():
            yield run.id_at(row)
        for bid, _hit in self._extra_only():
            yield bid

    def __len__(self) -> int:
        return sum(1 for _ in self._distinct_rows()) + sum(1 for _ in self._extra_only())


def _has_duplicates(run: IndexRun) -> bool:
    """Whether two rows share an id prefix (then they may share the id: a duplicate blob)."""
    keys = run.keys.tolist()
    return len(set(keys)) != len(keys)
