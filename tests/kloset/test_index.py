"""The index: v2 column files, v1 files of older stores, several files searched and merged."""

from __future__ import annotations

import os
import random

import msgpack
import pytest

from kloset import index as index_module
from kloset.errors import CorruptObject
from kloset.index import Index, IndexRun, decode_index_run, encode_index
from kloset.pack import BLOB_DATA, BLOB_TREE, BlobEntry


def _packs(rng: random.Random, n_packs: int, per_pack: int) -> list:
    out = []
    for _ in range(n_packs):
        blobs = [
            BlobEntry(rng.choice((BLOB_DATA, BLOB_TREE)), rng.randbytes(32), i * 100, 100, 250)
            for i in range(per_pack)
        ]
        out.append((rng.randbytes(32), per_pack * 100, blobs))
    return out


def _expected(files: list[list]) -> dict[bytes, tuple]:
    first: dict[bytes, tuple] = {}
    for packs in files:
        for pid, _size, blobs in packs:
            for b in blobs:
                first.setdefault(b.id, (pid, b.offset, b.length, b.raw_length, b.type))
    return first


def test_many_files_give_the_same_answers_before_and_after_the_merge(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(index_module, "SMALL_INDEX", 0)  # a big store: no dict, search and merge
    monkeypatch.setattr(index_module._Merged, "SLICES", 3)  # key ranges meet inside the files
    rng = random.Random(3)
    files = [_packs(rng, 3, 20) for _ in range(12)]
    dup = files[0][0][2][5]  # the same blob again, in a later file's pack: the first wins
    files[7][1][2].append(BlobEntry(dup.type, dup.id, 9_999, 100, 250))
    index = Index()
    for packs in files:
        index.add_run(decode_index_run(encode_index(packs), "i"))
    want = _expected(files)
    some = list(want)[:5]
    unmerged = {bid: tuple(index.get(bid)) for bid in some}
    assert index._merged is None  # a few lookups search the files one by one
    got = {bid: tuple(index.get(bid)) for bid in want}
    assert index._merged is not None  # many lookups merged them: the answers stay the same
    assert got == want and unmerged == {bid: want[bid] for bid in some}
    assert {bid: tuple(loc) for bid, loc in index.items()} == want
    assert len(index) == len(want) and set(index.ids()) == set(want)
    assert os.urandom(32) not in index and index.get(os.urandom(32)) is None
    assert index.pack_sizes == {pid: size for packs in files for pid, size, _b in packs}


@pytest.mark.parametrize("small", [0, index_module.SMALL_INDEX], ids=["searched", "dict"])
def test_small_and_big_stores_answer_alike(monkeypatch: pytest.MonkeyPatch, small: int) -> None:
    monkeypatch.setattr(index_module, "SMALL_INDEX", small)
    rng = random.Random(8)
    files = [_packs(rng, 2, 10) for _ in range(3)]
    files[2][0][2].append(files[0][1][2][3])  # a duplicate: the first file's copy wins
    index = Index()
    for packs in files:
        index.add_run(IndexRun.from_packs(packs))
    want = _expected(files)
    assert {bid: tuple(index.get(bid)) for bid in want} == want
    assert len(index) == len(want) and rng.randbytes(32) not in index


def test_blobs_added_by_this_process_come_after_the_files() -> None:
    rng = random.Random(4)
    packs = _packs(rng, 2, 5)
    index = Index()
    index.add_run(IndexRun.from_packs(packs))
    known = packs[0][2][0]
    new = BlobEntry(BLOB_DATA, rng.randbytes(32), 0, 10, 10)
    index.add_pack(b"p" * 32, 10, [new, BlobEntry(0, known.id, 50, 10, 10)])
    assert index.get(known.id).pack_id == packs[0][0]  # the file's copy stays first
    assert index.get(new.id).pack_id == b"p" * 32 and new.id in index
    assert len(index) == 11 and sorted(index.ids()) == sorted(
        [b.id for _p, _s, blobs in packs for b in blobs] + [new.id]
    )


def test_version_1_files_of_older_stores_still_load() -> None:
    rng = random.Random(5)
    packs = _packs(rng, 2, 4)
    v1 = msgpack.packb(
        {"v": 1, "packs": [[pid, size, [b.to_list() for b in bl]] for pid, size, bl in packs]}
    )
    index = Index()
    index.add_run(decode_index_run(v1, "old"))
    assert {bid: tuple(loc) for bid, loc in index.items()} == _expected([packs])


@pytest.mark.parametrize(
    "doc",
    [
        {"v": 3, "packs": [], "ids": b"", "locs": b""},
        {"v": 2, "packs": [[b"x", 1]], "ids": b"", "locs": b""},
        {"v": 2, "packs": [], "ids": b"a" * 33, "locs": b""},
        {"v": 2, "packs": [], "ids": b"\xff" * 32 + b"\x00" * 32, "locs": b"\x00" * 34},
    ],
    ids=["unknown version", "bad pack id", "ragged ids", "unsorted"],
)
def test_damaged_index_files_are_refused(doc: dict) -> None:
    with pytest.raises(CorruptObject, match="index file is damaged"):
        decode_index_run(msgpack.packb(doc), "index/x")


def test_a_lying_location_is_an_error_when_used() -> None:
    run = IndexRun.from_packs(_packs(random.Random(6), 1, 1))
    run.locs = b"\x07" + run.locs[1:]  # pack number 7 of a table of one
    index = Index()
    index.add_run(run)
    with pytest.raises(CorruptObject):
        index.get(run.id_at(0))
