"""`kloset at STORE rewrite`: paths removed from existing snapshots, for good.

The store is unencrypted and its data incompressible, so "the data is gone" can be checked
byte for byte in the pack files after `prune`.
"""

from __future__ import annotations

import os
from pathlib import Path

from helpers import cli, open_repo, random_bytes, write_file

from kloset.vfs import SnapshotView

SECRET = random_bytes(300_000, 99)  # one chunk, stored raw (random data does not compress)


def _store(tmp_path: Path) -> tuple[Path, Path]:
    src, store = tmp_path / "src", tmp_path / "store"
    write_file(src / "keep" / "a.txt", b"stays\n")
    write_file(src / "private" / "passport.pdf", SECRET)
    write_file(src / "private" / "notes.txt", b"private notes\n")
    write_file(src / "logs" / "x.log", b"log line\n")
    assert cli("at", store, "create", "--no-encryption").code == 0
    assert cli("at", store, "backup", src, "-t", "one").code == 0
    write_file(src / "keep" / "b.txt", b"second run\n")
    assert cli("at", store, "backup", src, "-t", "two").code == 0
    return src, store


def _packs_hold(store: Path, data: bytes) -> bool:
    return any(
        data[1000:1064] in Path(d, f).read_bytes()
        for d, _s, files in os.walk(store / "packs")
        for f in files
    )


def test_rewrite_removes_paths_from_every_snapshot_and_prune_reclaims_them(
    tmp_path: Path,
) -> None:
    _src, store = _store(tmp_path)
    repo = open_repo(store)
    before = repo.list_snapshots()
    assert _packs_hold(store, SECRET)

    dry = cli("at", store, "rewrite", "--exclude", "/private/passport.pdf", "--dry-run")
    assert dry.code == 0, dry.err
    assert dry.out.count("would remove") == 2 and "would rewrite 2 snapshots of 2" in dry.out
    assert {h.id for h in open_repo(store).list_snapshots()} == {h.id for h in before}

    res = cli("at", store, "rewrite", "-x", "/private/passport.pdf", "-x", "*.log", "--json")
    assert res.code == 0, res.err
    doc = res.json()
    assert [sorted(s["removed"]) for s in doc["snapshots"]] == [
        ["/logs/x.log", "/private/passport.pdf"]
    ] * 2
    assert all(s["bytes_removed"] == len(SECRET) + len(b"log line\n") for s in doc["snapshots"])

    after = open_repo(store).list_snapshots()
    assert {h.hex for h in after} == {s["new"] for s in doc["snapshots"]}
    assert not {h.id for h in after} & {h.id for h in before}, "the old ids must be gone"
    for old, new in zip(before, after, strict=True):
        assert (new.time_ns, new.source, new.tags) == (old.time_ns, old.source, old.tags)
        assert new.stats["files"] == old.stats["files"] - 2
        assert new.stats["bytes"] == old.stats["bytes"] - len(SECRET) - len(b"log line\n")
    assert after[1].parent == after[0].id, "the second snapshot's parent follows the rewrite"
    view = SnapshotView(open_repo(store), after[1])
    assert [e.name for e in view.listdir("/private")] == ["notes.txt"]
    assert view.open("/keep/b.txt").read() == b"second run\n"

    found = cli("at", store, "find", "passport*")
    assert found.code == 0 and found.out == ""
    assert cli("at", store, "check", "--read-data").code == 0

    # The secret is still in the packs until prune, then gone from every byte of the store.
    assert _packs_hold(store, SECRET)
    assert cli("at", store, "prune", "--grace", "0").code == 0
    assert not _packs_hold(store, SECRET)
    assert cli("at", store, "check", "--read-data").code == 0
    restored = tmp_path / "restored"
    assert cli("at", store, "restore", "-to", restored, "latest").code == 0
    assert (restored / "private" / "notes.txt").read_bytes() == b"private notes\n"
    assert not (restored / "private" / "passport.pdf").exists()


def test_rewrite_of_chosen_snapshots_only_and_unchanged_ones_keep_their_id(
    tmp_path: Path,
) -> None:
    _src, store = _store(tmp_path)
    first, second = open_repo(store).list_snapshots()
    res = cli("at", store, "rewrite", "-x", "private/", first.hex[:8])
    assert res.code == 0, res.err
    assert "rewrote 1 snapshot of 1" in res.out
    ids = {h.id for h in open_repo(store).list_snapshots()}
    assert second.id in ids and first.id not in ids and len(ids) == 2

    nothing = cli("at", store, "rewrite", "-x", "no-such-name")
    assert nothing.code == 0 and "rewrote 0 snapshots of 2" in nothing.out
    assert {h.id for h in open_repo(store).list_snapshots()} == ids


def test_a_rewrite_that_would_empty_a_snapshot_is_refused(tmp_path: Path) -> None:
    _src, store = _store(tmp_path)
    ids = {h.id for h in open_repo(store).list_snapshots()}
    for patterns in (["*"], ["/keep", "/private", "/logs"]):
        args = [a for p in patterns for a in ("-x", p)]
        res = cli("at", store, "rewrite", *args)
        assert res.code == 1 and len(res.err_lines) == 1 and "refusing" in res.err, res.err
    assert {h.id for h in open_repo(store).list_snapshots()} == ids, "nothing was rewritten"
    res = cli("at", store, "rewrite")
    assert res.code != 0 and len(res.err_lines) == 1 and "--exclude" in res.err


def test_rewritten_snapshots_keep_everything_but_the_removed_paths(tmp_path: Path) -> None:
    """Tags, time, parent and the run that made the snapshot (its origin) survive a rewrite."""
    _src, store = _store(tmp_path)
    repo = open_repo(store)
    newest = max(repo.list_snapshots(), key=lambda h: h.time_ns)
    origin = {"flow_run_id": "0d9c", "deployment": "nightly-koofr-backup"}
    repo.save_snapshot(newest.derived(origin=origin))
    repo.delete_snapshot(newest.id)

    res = cli("at", store, "rewrite", "-x", "/private", "--json")
    assert res.code == 0, res.err
    after = max(open_repo(store).list_snapshots(), key=lambda h: h.time_ns)
    assert after.id != newest.id
    assert after.origin == origin
    assert (after.tags, after.time_ns, after.source) == (newest.tags, newest.time_ns, newest.source)
