"""Property tests of the on-disk format: envelope, packs, chunking, trees, index, excludes."""

from __future__ import annotations

import fnmatch
import os
import tempfile
from pathlib import Path

import pytest
from helpers import craft_snapshot, new_repo
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyfastcdc import FastCDC

from kloset import codec
from kloset.config import StoreConfig, new_config, unlock
from kloset.crypto import Cipher, KdfParams, KeySet, plain_hash
from kloset.errors import CorruptObject, WrongPassphrase
from kloset.excludes import Excluder
from kloset.index import Index, decode_index, decode_index_run, encode_index, open_index, seal_index
from kloset.pack import BLOB_DATA, BLOB_TREE, BlobEntry, PackWriter, read_header_from_bytes
from kloset.snapshot import SnapshotHeader
from kloset.tree import DIR, FILE, PAGE_SIZE, SYMLINK, Entry, decode_tree, encode_entries
from kloset.vfs import SnapshotView, find_in_tree

ENCRYPTED = Cipher(KeySet.generate(True))
PLAIN = Cipher(KeySet.generate(False))
ciphers = st.sampled_from([ENCRYPTED, PLAIN])
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- envelope -----------------------------------------------------------------------------------
@SETTINGS
@given(st.binary(max_size=5000), st.integers(0, 6), ciphers, st.binary(min_size=1, max_size=40))
def test_envelope_round_trip(data: bytes, level: int, cipher: Cipher, ad: bytes) -> None:
    sealed = codec.encode(cipher, data, ad, level)
    assert codec.decode(cipher, sealed, ad, "x") == data
    if cipher.encrypted:
        assert data[:32] not in sealed or len(data) < 16  # plaintext never shows through
        with pytest.raises(CorruptObject):
            codec.decode(cipher, sealed, ad + b"other", "x")  # bound to its associated data


@SETTINGS
@given(st.binary(min_size=1, max_size=3000), st.data())
def test_any_flipped_bit_is_detected_when_encrypted(data: bytes, draw: st.DataObject) -> None:
    sealed = bytearray(codec.encode(ENCRYPTED, data, b"id", 3))
    pos = draw.draw(st.integers(0, len(sealed) - 1))
    sealed[pos] ^= 1 << draw.draw(st.integers(0, 7))
    with pytest.raises(CorruptObject, match="what: "):
        codec.decode(ENCRYPTED, bytes(sealed), b"id", "what")


def test_compression_only_when_it_pays() -> None:
    assert codec.pack_body(b"a" * 4096, 3)[0] == codec.FLAG_ZSTD
    noise = os.urandom(4096)
    assert codec.pack_body(noise, 3) == bytes([codec.FLAG_RAW]) + noise
    with pytest.raises(CorruptObject):
        codec.unpack_body(b"\x07junk", "x")


# -- packs and chunking -------------------------------------------------------------------------
@SETTINGS
@given(st.lists(st.binary(max_size=3000), max_size=12), ciphers)
def test_pack_round_trip(blobs: list[bytes], cipher: Cipher) -> None:
    with tempfile.TemporaryDirectory() as spool:
        writer = PackWriter(cipher, spool, 3)
        ids = []
        for i, data in enumerate(blobs):
            bid = cipher.blob_id(data + bytes([i]))  # distinct ids even for equal blobs
            writer.add(BLOB_TREE if i % 3 == 0 else BLOB_DATA, bid, data)
            ids.append(bid)
        sealed = writer.seal()
        raw = Path(sealed.path).read_bytes()
    assert sealed.pack_id == plain_hash(raw) and sealed.size == len(raw)
    header = read_header_from_bytes(cipher, raw, "p")
    assert [e.id for e in header] == ids and header == sealed.blobs
    for entry, data in zip(header, blobs, strict=True):
        stored = raw[entry.offset : entry.offset + entry.length]
        assert codec.decode(cipher, stored, entry.id, "b") == data
        assert entry.raw_length == len(data)


@settings(max_examples=25, deadline=None)
@given(st.binary(min_size=0, max_size=300_000), st.integers(0, 2**32 - 1), ciphers)
def test_chunk_encrypt_pack_round_trip(data: bytes, seed: int, cipher: Cipher) -> None:
    """FastCDC → keyed ids → sealed in a pack → read back and reassembled byte for byte."""
    cdc = FastCDC(8192, min_size=2048, max_size=65536, seed=seed)
    chunks = [bytes(c.data) for c in cdc.cut_buf(data)] if data else []
    assert b"".join(chunks) == data
    with tempfile.TemporaryDirectory() as spool:
        writer = PackWriter(cipher, spool, 3)
        order = []
        for chunk in chunks:
            bid = cipher.blob_id(chunk)
            order.append(bid)
            if bid not in {b.id for b in writer.blobs}:
                writer.add(BLOB_DATA, bid, chunk)
        sealed = writer.seal()
        raw = Path(sealed.path).read_bytes()
    where = {e.id: e for e in read_header_from_bytes(cipher, raw, "p")}
    out = b"".join(
        codec.decode(cipher, raw[where[b].offset : where[b].offset + where[b].length], b, "c")
        for b in order
    )
    assert out == data
    again = [cipher.blob_id(bytes(c.data)) for c in cdc.cut_buf(data)] if data else []
    assert again == order  # chunking and ids are deterministic for a store


# -- trees, snapshots, index --------------------------------------------------------------------
raw_names = st.binary(min_size=1, max_size=60).filter(lambda b: b"/" not in b and b"\x00" not in b)
names = st.one_of(st.text(min_size=1, max_size=40), raw_names.map(os.fsdecode))
ids32 = st.binary(min_size=32, max_size=32)
entries = st.one_of(
    st.builds(
        Entry,
        name=names,
        type=st.just(FILE),
        mode=st.integers(0, 0o177777),
        mtime_ns=st.integers(-(2**62), 2**62),
        size=st.integers(0, 2**50),
        chunks=st.lists(ids32, max_size=4),
        extra=st.dictionaries(st.sampled_from(["md5"]), st.text(max_size=32), max_size=1),
    ),
    st.builds(Entry, name=names, type=st.just(DIR), mode=st.integers(0, 0o177777), subtree=ids32),
    st.builds(
        Entry,
        name=names,
        type=st.just(SYMLINK),
        target=names,
        mtime_ns=st.integers(-(2**62), 2**62),
    ),
)


@SETTINGS
@given(st.lists(entries, max_size=20))
def test_tree_round_trip_with_any_names(items: list[Entry]) -> None:
    items.sort(key=lambda e: e.name)
    node = decode_tree(encode_entries(items), "t")
    assert node.entries == items
    for before, after in zip(items, node.entries, strict=True):
        # names that were not UTF-8 on disk come back as exactly the same bytes
        assert os.fsencode(after.name) == os.fsencode(before.name)


def test_paged_tree_lists_and_finds_every_entry(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "store", encrypted=False)
    many = [(f"e{i:05d}", b"") for i in range(PAGE_SIZE * 2 + 17)]
    snap = craft_snapshot(repo, [("wide", many), ("narrow", [("x", b"x")])], tmp_path / "spool")
    view = SnapshotView(repo, repo.resolve_snapshot(snap))
    wide = view.stat("/wide")
    assert repo.load_tree(wide.subtree).pages is not None  # really paged
    assert view.count("/wide") == len(many)
    assert [e.name for e in view.listdir("/wide", PAGE_SIZE - 2, 5)] == [
        f"e{i:05d}" for i in range(PAGE_SIZE - 2, PAGE_SIZE + 3)
    ]
    for i in (0, PAGE_SIZE - 1, PAGE_SIZE, len(many) - 1):
        assert find_in_tree(repo, wide.subtree, f"e{i:05d}") is not None
    assert find_in_tree(repo, wide.subtree, "e99999") is None
    assert sum(1 for _ in view.walk("/wide")) == len(many) + 1


@SETTINGS
@given(
    ids32,
    st.integers(-(2**62), 2**62),
    st.lists(st.text(max_size=10), max_size=3),
    st.lists(st.tuples(st.text(max_size=20), st.text(max_size=20)), max_size=3),
)
def test_snapshot_header_round_trip(root: bytes, when: int, tags: list[str], errors: list) -> None:
    header = SnapshotHeader(root=root, time_ns=when, tags=tags, errors=errors, source="s")
    back = SnapshotHeader.from_bytes(header.to_bytes(), "h")
    assert (back.root, back.time_ns, back.tags, back.errors) == (
        root,
        when,
        sorted(set(tags)),
        errors,
    )


U32 = 2**32 - 1  # index locations are u32: pack_size is at most 4 GiB
blob_entries = st.builds(
    BlobEntry,
    type=st.sampled_from([BLOB_DATA, BLOB_TREE]),
    id=ids32,
    offset=st.integers(0, U32),
    length=st.integers(1, U32),  # a sealed blob holds at least its flag byte
    raw_length=st.integers(0, U32),
)


def _in_pack_order(packs: list) -> list:
    """Packs with their blobs in file order: what an index file gives back."""
    key = lambda b: (b.offset, b.id, b.type, b.length, b.raw_length)  # noqa: E731
    return [(pid, size, sorted(blobs, key=key)) for pid, size, blobs in packs]


@SETTINGS
@given(
    st.lists(
        st.tuples(ids32, st.integers(0, 2**40), st.lists(blob_entries, max_size=5)), max_size=5
    ),
    ciphers,
)
def test_index_round_trip(packs: list, cipher: Cipher) -> None:
    plaintext = encode_index(packs)
    assert _in_pack_order(decode_index(plaintext, "i")) == _in_pack_order(packs)
    name, sealed = seal_index(cipher, plaintext, 3)
    assert _in_pack_order(open_index(cipher, name, sealed)) == _in_pack_order(packs)
    with pytest.raises(CorruptObject):
        open_index(cipher, "index/" + "0" * 64, sealed)  # content must match its name
    index = Index()
    index.add_run(decode_index_run(plaintext, "i"))
    first: dict[bytes, tuple] = {}
    for pid, _size, blobs in packs:  # the first copy of a blob wins
        for b in blobs:
            first.setdefault(b.id, (pid, b.offset, b.length, b.raw_length, b.type))
    assert {bid: tuple(loc) for bid, loc in index.items()} == first
    assert len(index) == len(first)
    assert all(index.get(bid) is not None and bid in index for bid in first)


def test_wrong_passphrase_and_config_round_trip() -> None:
    keys = KeySet.generate(True)
    cfg = new_config(keys, "right", kdf=KdfParams.fresh(memory_kib=64, iterations=1))
    again = StoreConfig.from_bytes(cfg.to_bytes())
    assert unlock(again, "right") == keys
    with pytest.raises(WrongPassphrase):
        unlock(again, "wrong")


# -- excludes -----------------------------------------------------------------------------------
segment = st.text("abc.", min_size=1, max_size=4)


@SETTINGS
@given(st.text("abc*?", min_size=1, max_size=5), st.lists(segment, min_size=1, max_size=4))
def test_unanchored_exclude_matches_a_name_at_any_depth(pattern: str, parts: list[str]) -> None:
    path = "/".join(parts)
    ex = Excluder([pattern])
    assert ex.excluded(path, False) == fnmatch.fnmatchcase(parts[-1], pattern)
    assert Excluder([pattern, "!" + pattern]).excluded(path, False) is False  # last match wins


@SETTINGS
@given(st.lists(segment, min_size=2, max_size=4))
def test_anchored_and_dir_only_excludes(parts: list[str]) -> None:
    path = "/".join(parts)
    assert Excluder(["/" + parts[0]]).excluded(path, False)  # a dir excludes what is below it
    assert not Excluder(["/" + parts[-1] + "x"]).excluded(path, False)
    assert Excluder([parts[-1] + "/"]).excluded(path, True)
    assert not Excluder([parts[-1] + "/"]).excluded(path, False)
    assert Excluder(["**/" + parts[-1]]).excluded(path, False)
