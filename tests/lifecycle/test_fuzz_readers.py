"""Fuzz the readers: damaged CONFIG, index files, snapshot headers, packs (data and header)
and crafted tree blobs must give clear KlosetError messages: no other exception, no hang.

Every example damages one object of a small real store, runs everything that reads (open,
index, snapshot list, tree walk, file reads, check --read-data, repair's header scan, prune's
plan, locks), then puts the object back.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lifecycle_helpers import PASS, new_store, open_store, write_tree

from kloset import codec
from kloset.backup.pipeline import run_backup
from kloset.check import check_store
from kloset.errors import KlosetError
from kloset.locations import open_source
from kloset.locks import read_locks
from kloset.pack import BLOB_TREE, PackWriter
from kloset.prune import PruneOptions, prune
from kloset.repair import rebuild_index
from kloset.snapshot import SnapshotHeader
from kloset.vfs import SnapshotView

TIMEOUT = 10


@contextlib.contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail (not hang) if the body runs longer than `seconds`."""

    def expired(_sig: int, _frame: Any) -> None:
        raise TimeoutError(f"reader hung for more than {seconds} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def read_everything(store: Path, passphrase: str | None) -> None:
    """Every reading path a user can reach; only KlosetError may come out of any of them."""
    try:
        repo = open_store(store, passphrase)
        repo.index  # noqa: B018
        headers = repo.list_snapshots(on_error=lambda _sid, _exc: None)
    except KlosetError:
        return

    def walk() -> None:
        for header in headers:
            view = SnapshotView(repo, header)
            for path, entry in view.walk("/"):
                if entry.is_file:
                    with view.open(path) as fh:
                        fh.read()

    steps: list[Callable[[], object]] = [
        walk,
        lambda: check_store(repo, read_data=True),
        lambda: rebuild_index(open_store(store, passphrase), dry_run=True),
        lambda: prune(open_store(store, passphrase), PruneOptions(dry_run=True, grace_minutes=0)),
        lambda: read_locks(repo),
    ]
    for step in steps:
        with contextlib.suppress(KlosetError):
            step()


def build(path: Path, passphrase: str | None) -> list[str]:
    store, src = path / "store", path / "src"
    src.mkdir(parents=True)
    write_tree(src, random.Random(5), 1_500_000)
    (src / "many").mkdir()
    for i in range(80):
        (src / "many" / f"{i:03d}").write_bytes(b"x" * i)
    new_store(store, passphrase)
    for _ in range(2):
        run_backup(open_store(store, passphrase), open_source(str(src)))
        (src / "many" / "extra").write_bytes(os.urandom(5000))
    names = [str(p.relative_to(store)) for p in store.rglob("*") if p.is_file()]
    return sorted(n for n in names if not n.startswith(("tmp/", "locks/")))


@pytest.fixture(scope="module", params=["encrypted", "plain"])
def small_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    passphrase = PASS if request.param == "encrypted" else None
    base = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    return base / "store", passphrase, build(base, passphrase)


def mutate(data: bytes, draw: Callable[[st.SearchStrategy[Any]], Any]) -> bytes:
    kind = draw(st.sampled_from(["flip", "truncate", "garbage", "append", "splice", "empty"]))
    if kind == "flip" and data:
        out = bytearray(data)
        for _ in range(draw(st.integers(1, 4))):
            pos = draw(st.integers(0, len(out) - 1))
            out[pos] ^= draw(st.integers(1, 255))
        return bytes(out)
    if kind == "truncate" and data:
        return data[: draw(st.integers(0, len(data) - 1))]
    if kind == "append":
        return data + draw(st.binary(min_size=1, max_size=64))
    if kind == "splice" and data:
        at = draw(st.integers(0, len(data) - 1))
        return data[:at] + draw(st.binary(max_size=32)) + data[at + draw(st.integers(0, 32)) :]
    if kind == "empty":
        return b""
    return draw(st.binary(max_size=300))


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_damaged_objects_give_clear_errors(small_store, data: st.DataObject) -> None:
    store, passphrase, names = small_store
    kinds = {
        "config": [n for n in names if n == "CONFIG"],
        "index": [n for n in names if n.startswith("index/")],
        "snapshot": [n for n in names if n.startswith("snapshots/")],
        "pack": [n for n in names if n.startswith("packs/")],
    }
    kind = data.draw(st.sampled_from(sorted(kinds)))
    name = data.draw(st.sampled_from(kinds[kind]))
    target = store / name
    original = target.read_bytes()
    if kind == "pack" and data.draw(st.booleans()):
        # Aim at the pack's header and trailer, where a reader must not trust lengths.
        cut = max(0, len(original) - data.draw(st.integers(1, 400)))
        damaged = original[:cut] + mutate(original[cut:], data.draw)
    else:
        damaged = mutate(original, data.draw)
    try:
        target.write_bytes(damaged)
        with deadline(TIMEOUT):
            read_everything(store, passphrase)
    finally:
        target.write_bytes(original)
        for lock in (store / "locks").iterdir():
            lock.unlink()


# Only an unencrypted store lets someone without the passphrase write objects with valid ids.
PLAIN_ONLY = pytest.mark.parametrize("small_store", ["plain"], indirect=True)

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.binary(max_size=40)
    | st.text(max_size=10)
    | st.just(b"\0" * 32),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)
ENTRY_KEYS = ["n", "t", "m", "mt", "s", "c", "sub", "l", "x"]


@st.composite
def crafted_tree(draw: Callable[[st.SearchStrategy[Any]], Any]) -> bytes:
    """A tree blob that is well-formed msgpack with a valid id but wrong inside: what someone
    who can write to an unencrypted store (its keys are in CONFIG) could plant."""
    entry = {"n": "f", "t": 0, "m": 0o100644, "mt": 1, "s": 1, "c": [b"\1" * 32]}
    for key in draw(st.lists(st.sampled_from(ENTRY_KEYS), max_size=3)):
        entry[key] = draw(values)
    doc: dict[str, Any] = {"v": 1, "e": [entry]}
    if draw(st.booleans()):
        doc = {"v": 1, "pages": draw(st.lists(values, max_size=3))}
    if draw(st.booleans()):
        doc = draw(st.dictionaries(st.sampled_from(["v", "e", "pages"]), values, max_size=3))
    return msgpack.packb(doc)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(raw=crafted_tree())
@PLAIN_ONLY
def test_crafted_trees_give_clear_errors(small_store, raw: bytes) -> None:
    store, passphrase, _names = small_store
    repo = open_store(store, passphrase)
    writer = PackWriter(repo.cipher, str(store / "tmp"), 3)
    tid = repo.blob_id(raw)
    writer.add(BLOB_TREE, tid, raw)
    sealed = writer.seal()
    repo.storage.put_local_file(sealed.path, sealed.name, move=True)
    index_name = repo.write_index([sealed])
    snap_id = repo.save_snapshot(SnapshotHeader(root=tid, source="/crafted"))
    try:
        with deadline(TIMEOUT):
            read_everything(store, passphrase)
    finally:
        repo.delete_snapshot(snap_id)
        os.unlink(store / index_name)
        os.unlink(store / sealed.name)
        for lock in (store / "locks").iterdir():
            lock.unlink()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
@PLAIN_ONLY
def test_lying_index_gives_clear_errors(small_store, data: st.DataObject) -> None:
    """An index file whose entries lie about where referenced blobs are (pack numbers,
    offsets, lengths, types, pack sizes, even the structure): readers must not trust it. In
    an unencrypted store anyone can write such a file with a valid name."""
    from kloset.index import INDEX_AD, LOC, seal_index

    store, passphrase, names = small_store
    repo = open_store(store, passphrase)
    victim = data.draw(st.sampled_from([n for n in names if n.startswith("index/")]))
    original = (store / victim).read_bytes()
    doc = msgpack.unpackb(codec.decode(repo.cipher, original, INDEX_AD, victim))
    rows = len(doc["ids"]) // 32
    # One field of the location (pack number, offset, length, raw length, type), the same lie
    # for many entries, so some referenced blob hits it.
    pos = data.draw(st.integers(0, 4))
    start, fmt = [(0, "<I"), (4, "<I"), (8, "<I"), (12, "<I"), (16, "<B")][pos]
    lie = data.draw(st.integers(0, 255 if pos == 4 else 2**32 - 1))
    locs = bytearray(doc["locs"])
    for row in data.draw(st.lists(st.integers(0, rows - 1), min_size=1, max_size=50)):
        struct.pack_into(fmt, locs, row * LOC.size + start, lie)
    doc["locs"] = bytes(locs)
    if data.draw(st.booleans()):
        data.draw(st.sampled_from(doc["packs"]))[1] = data.draw(st.integers(-5, 2**40) | values)
    name, sealed = seal_index(repo.cipher, msgpack.packb(doc), 3)
    try:
        os.unlink(store / victim)
        (store / name).write_bytes(sealed)
        with deadline(TIMEOUT):
            read_everything(store, passphrase)
    finally:
        if name != victim:
            os.unlink(store / name)
        (store / victim).write_bytes(original)
        for lock in (store / "locks").iterdir():
            lock.unlink()


CONFIG_FIELDS = [
    ("encryption", "kdf", "memory_kib"),
    ("encryption", "kdf", "iterations"),
    ("encryption", "kdf", "lanes"),
    ("encryption", "kdf", "salt"),
    ("encryption", "wrapped_keys"),
    ("chunker", "min_size"),
    ("chunker", "avg_size"),
    ("chunker", "max_size"),
    ("compression", "level"),
    ("pack_size",),
    ("kloset",),
    ("keys",),
]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    field=st.sampled_from(CONFIG_FIELDS),
    value=st.integers(-(2**63), 2**63) | st.text(max_size=12) | st.none() | st.just("AAAA"),
)
def test_tampered_config_values_are_refused_quickly(small_store, field, value) -> None:
    """CONFIG is plaintext: a huge Argon2 cost must not hang or exhaust memory, a wrong type
    must not crash."""
    import json

    store, passphrase, _names = small_store
    original = (store / "CONFIG").read_bytes()
    doc = json.loads(original)
    node = doc
    for key in field[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    if not isinstance(node, dict):
        return  # that field does not exist in this kind of store
    node[field[-1]] = value
    try:
        (store / "CONFIG").write_text(json.dumps(doc))
        with deadline(TIMEOUT):
            read_everything(store, passphrase)
    finally:
        (store / "CONFIG").write_bytes(original)
        for lock in (store / "locks").iterdir():
            lock.unlink()
