"""The viewer's pieces on their own: ranges, type sniffing, archives, targets, catalogue, CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ui_helpers import PASSPHRASE, UiStore

from kloset import archive
from kloset.backup import BackupOptions
from kloset.backup.pipeline import run_backup
from kloset.cli.cmd_ui import is_loopback, parse_addr
from kloset.cli.main import main
from kloset.crypto import KdfParams
from kloset.errors import UnsafePath
from kloset.locations import open_source, open_storage
from kloset.repository import Repository
from kloset.ui.catalog import Catalog
from kloset.ui.downloads import parse_range
from kloset.ui.jobs import RestoreTarget, parse_targets, target_location
from kloset.ui.preview import (
    decode_text,
    hex_dump,
    inline_content_type,
    kind_of,
    looks_like_text,
    sniff_mime,
)
from kloset.vfs import SnapshotView


@pytest.mark.parametrize(
    ("header", "want"),
    [
        ("", None),
        ("bytes=0-99", (0, 100)),
        ("bytes=100-", (100, 1000)),
        ("bytes=-10", (990, 1000)),
        ("bytes=-5000", (0, 1000)),
        ("bytes=900-5000", (900, 1000)),
        ("bytes=0-1,5-6", None),  # several ranges: the whole file is sent instead
        ("items=0-1", None),
    ],
)
def test_parse_range(header: str, want: tuple[int, int] | None) -> None:
    assert parse_range(header, 1000) == want


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5-2", "bytes=-0", "bytes=x-"])
def test_unsatisfiable_ranges(header: str) -> None:
    with pytest.raises(ValueError):
        parse_range(header, 1000)


def test_sniffing_trusts_content_over_names() -> None:
    assert sniff_mime("notes.txt", b"\x89PNG\r\n\x1a\n....") == "image/png"
    assert sniff_mime("x.bin", b"%PDF-1.7\n") == "application/pdf"
    assert sniff_mime("noext", b"plain words\n") == "text/plain"
    assert sniff_mime("data", bytes(range(256))) == "application/octet-stream"
    assert (
        sniff_mime("drawing.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>") == "image/svg+xml"
    )


def test_text_detection_and_decoding() -> None:
    euro = "prix: 5 €".encode()
    assert looks_like_text(euro[:-1])  # cut inside the last character by the sniff window
    assert not looks_like_text(b"abc\0def")
    assert looks_like_text("café".encode("latin-1") * 10)
    assert decode_text(b"\xef\xbb\xbfhello") == "hello"
    assert decode_text("héllo".encode("utf-16")) == "héllo"
    assert decode_text(euro[:-1]) == "prix: 5 "


def test_hex_dump_format() -> None:
    lines = hex_dump(bytes(range(20)))
    assert lines[0] == (
        "00000000  00 01 02 03 04 05 06 07  08 09 0a 0b 0c 0d 0e 0f  |................|"
    )
    assert lines[1].startswith("00000010  10 11 12 13 ") and lines[1].endswith("|....|")


def test_only_harmless_types_are_shown_inline() -> None:
    assert inline_content_type("text/html") == "text/plain; charset=utf-8"
    assert inline_content_type("application/javascript") == "text/plain; charset=utf-8"
    assert inline_content_type("image/png") == "image/png"
    assert inline_content_type("application/x-executable") is None
    assert kind_of("image/png", 10) == "image"
    assert kind_of("image/png", 10**9) == "binary"  # too big to show: offered as a download
    assert kind_of("text/plain", 0) == "empty"


def test_archives_stream_while_walking(ui_store: UiStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first bytes leave before most of the folder has been read."""
    groups: list[int] = []
    real = archive.prefetch_small

    def counting(repo, entries, max_size):  # type: ignore[no-untyped-def]
        groups.append(len(entries))
        return real(repo, entries, max_size)

    monkeypatch.setattr(archive, "prefetch_small", counting)
    monkeypatch.setattr(archive, "SEND_BYTES", 16 * 1024)
    view = SnapshotView(ui_store.repo, ui_store.second)
    entries = view.count("/many") + 1  # the folder itself, then its files
    for make in (archive.iter_tar, archive.iter_zip):
        groups.clear()
        stream = make(view, "/many")
        first = next(stream)
        assert len(first) >= 16 * 1024
        assert len(groups) == 1, "more of the folder was read than the first bytes needed"
        assert sum(len(p) for p in stream) > 0
        assert sum(groups) == entries and len(groups) == -(-entries // archive.GROUP_ENTRIES)


def test_target_locations_stay_inside(tmp_path: Path) -> None:
    local, remote = parse_targets([str(tmp_path), "@koofr:/Backups"])
    assert target_location(local, "") == str(tmp_path)
    assert target_location(local, "/a/b/") == str(tmp_path / "a" / "b")
    assert target_location(remote, "x/y") == "@koofr:/Backups/x/y"
    assert target_location(RestoreTarget("t", "@k", "@k"), "x") == "@k:/x"
    for bad in ("..", "a/../../b", "a\\..\\b"):
        with pytest.raises(UnsafePath):
            target_location(local, bad)
    (tmp_path / "file").write_text("x")
    with pytest.raises(UnsafePath):
        target_location(local, "file/below")


def test_catalog_sees_new_and_deleted_snapshots(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    repo = Repository.create(
        open_storage(str(tmp_path / "store")), None, encrypted=False,
        kdf=KdfParams.fresh(memory_kib=1024, iterations=1),
    )  # fmt: skip
    catalog = Catalog(repo, refresh_seconds=0)
    assert catalog.page()["total"] == 0
    run_backup(repo, open_source(str(src)), BackupOptions(), workers=1)
    first = catalog.get("latest")
    (src / "b.txt").write_text("b")
    run_backup(repo, open_source(str(src)), BackupOptions(tags=["two"]), workers=1)
    assert catalog.page()["total"] == 2 and catalog.get("latest").tags == ["two"]
    repo.delete_snapshot(first.id)
    assert [d["id"] for d in catalog.page()["items"]] == [catalog.get("latest").hex]


@pytest.mark.parametrize(
    ("addr", "want"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("localhost:0", ("localhost", 0)),
        (":9000", ("127.0.0.1", 9000)),
        ("9000", ("127.0.0.1", 9000)),
        ("[::1]:8080", ("::1", 8080)),
        ("0.0.0.0", ("0.0.0.0", 0)),
    ],
)
def test_parse_addr(addr: str, want: tuple[str, int]) -> None:
    assert parse_addr(addr) == want


def test_loopback_detection() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10")


def test_remote_address_needs_a_flag(ui_store: UiStore, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["at", ui_store.location, "ui", "--addr", "0.0.0.0:0", "--no-open"])
    assert code != 0
    assert "--allow-remote" in capsys.readouterr().err


def test_remote_address_with_the_flag_warns(ui_store: UiStore) -> None:
    env = dict(os.environ, KLOSET_PASSPHRASE=PASSPHRASE)
    cmd = [sys.executable, "-m", "kloset.cli.main", "at", ui_store.location, "ui",
           "--addr", "0.0.0.0:0", "--allow-remote", "--no-open"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        deadline = time.monotonic() + 30
        url = ""
        while "?token=" not in url and time.monotonic() < deadline:
            url = proc.stdout.readline()
            if not url:
                break
        assert "?token=" in url
        proc.terminate()
        proc.wait(10)
        assert "warning: listening on 0.0.0.0" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
