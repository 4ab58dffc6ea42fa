"""`kloset.snapshot`: the header's encoding, including the optional `origin` labels."""

from __future__ import annotations

import msgpack
from helpers import PASSPHRASE, write_file

from kloset.backup import BackupOptions
from kloset.backup.pipeline import run_backup
from kloset.crypto import KdfParams
from kloset.locations import open_source, open_storage
from kloset.repository import Repository
from kloset.snapshot import SnapshotHeader

ORIGIN = {
    "orchestrator": "prefect",
    "run": "amber-fox",
    "url": "http://127.0.0.1:4200/runs/flow-run/0b5c1d2e-0000-4000-8000-000000000001",
}


def test_origin_round_trips_and_is_absent_when_empty() -> None:
    plain = SnapshotHeader(root=b"r" * 32, time_ns=5)
    assert "origin" not in msgpack.unpackb(plain.to_bytes())
    assert SnapshotHeader.from_bytes(plain.to_bytes(), "x").origin == {}
    labelled = SnapshotHeader(root=b"r" * 32, time_ns=5, origin=ORIGIN)
    assert SnapshotHeader.from_bytes(labelled.to_bytes(), "x").origin == ORIGIN


def test_backup_options_origin_reaches_the_committed_snapshot(tmp_path) -> None:
    write_file(tmp_path / "src" / "a.txt", b"hello\n")
    repo = Repository.create(
        open_storage(str(tmp_path / "store")), PASSPHRASE, kdf=KdfParams.fresh(64, 1)
    )
    report = run_backup(repo, open_source(str(tmp_path / "src")), BackupOptions(origin=ORIGIN))
    reopened = Repository.open(open_storage(str(tmp_path / "store")), PASSPHRASE)
    assert reopened.resolve_snapshot(report.commit.snapshot_id).origin == ORIGIN


def test_sync_to_a_store_with_other_keys_keeps_the_origin(tmp_path) -> None:
    from kloset.sync import sync_snapshots

    write_file(tmp_path / "src" / "a.txt", b"hello\n")
    src, dst = (
        Repository.create(open_storage(str(tmp_path / n)), PASSPHRASE, kdf=KdfParams.fresh(64, 1))
        for n in ("one", "two")
    )
    run_backup(src, open_source(str(tmp_path / "src")), BackupOptions(origin=ORIGIN))
    report = sync_snapshots(src, dst)
    assert not report.same_keys
    (copied,) = dst.list_snapshots()
    assert copied.origin == ORIGIN


def test_the_one_json_shape_carries_the_origin() -> None:
    doc = SnapshotHeader(root=b"r" * 32, time_ns=1_500_000_000_123_456_789, origin=ORIGIN)
    doc.id = bytes(range(32))
    shape = doc.to_doc()
    assert shape["short_id"] == doc.hex[:12] and shape["time"] == "2017-07-14T02:40:00.123456789Z"
    assert shape["origin"] == ORIGIN and shape["bytes"] == 0 and shape["parent"] is None


def test_a_derived_header_carries_every_field_over_and_shares_no_list() -> None:
    from kloset.snapshot import SnapshotHeader

    old = SnapshotHeader(
        root=b"r" * 32,
        source="/src",
        tags=["a"],
        stats={"files": 3},
        errors=[("/x", "gone")],
        origin={"flow_run_id": "1"},
        id=b"i" * 32,
    )
    new = old.derived(root=b"n" * 32)
    assert new.root == b"n" * 32 and new.id == b""
    assert (new.source, new.tags, new.stats, new.errors, new.origin) == (
        old.source,
        old.tags,
        old.stats,
        old.errors,
        old.origin,
    )
    new.tags.append("b")
    new.origin["x"] = "y"
    assert old.tags == ["a"] and old.origin == {"flow_run_id": "1"}
