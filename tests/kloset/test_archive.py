"""`kloset at STORE archive`: .tar, .tar.zst, .zip and stdout exports, checked by extracting
them with the tools people use (GNU tar, zstd through Python, Info-ZIP's rules via zipfile)."""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest
import zstandard
from helpers import cli, run_kloset, tree_state
from kloset_samples import SampleStore

TAR = shutil.which("tar")


def _archive(sample: SampleStore, *args: str) -> None:
    res = cli("at", sample.store, "archive", *args, env=sample.env)
    assert res.code == 0, res.err
    assert res.err_lines[-1].startswith("archived "), res.err


@pytest.mark.skipif(TAR is None, reason="GNU tar is missing")
def test_tar_and_tar_zst_extract_to_the_source_exactly(
    sample_store: SampleStore, tmp_path: Path
) -> None:
    want = tree_state(sample_store.source)
    del want[b""]
    for name in ("out.tar", "out.tar.zst"):
        _archive(sample_store, "latest", "-o", str(tmp_path / name))
        assert not list(tmp_path.glob("*.tmp-*")), "the temporary file was left behind"
        tar_path = tmp_path / name
        if name.endswith(".zst"):
            tar_path = tmp_path / "unpacked.tar"
            with open(tmp_path / name, "rb") as fh, open(tar_path, "wb") as out:
                zstandard.ZstdDecompressor().copy_stream(fh, out)
        dest = tmp_path / f"x-{name}"
        dest.mkdir()
        subprocess.run([TAR, "-xf", str(tar_path), "-C", str(dest)], check=True, timeout=60)
        top = f"snapshot-{sample_store.second.hex[:8]}"
        assert os.listdir(dest) == [top]
        got = tree_state(dest / top)
        del got[b""]
        assert got == want  # bytes, modes, symlinks and mtimes to the nanosecond


def test_zip_keeps_names_modes_times_and_links(sample_store: SampleStore, tmp_path: Path) -> None:
    _archive(sample_store, "latest:/", "-o", str(tmp_path / "out.zip"))
    with zipfile.ZipFile(tmp_path / "out.zip") as zf:
        top = f"snapshot-{sample_store.second.hex[:8]}"
        infos = {i.filename: i for i in zf.infolist()}
        video = infos[f"{top}/video.mp4"]
        assert zf.read(video) == (sample_store.source / "video.mp4").read_bytes()
        assert video.compress_type == zipfile.ZIP_STORED  # random bytes: deflate is no use
        assert infos[f"{top}/bin/run.sh"].compress_type == zipfile.ZIP_DEFLATED
        key = infos[f"{top}/docs/private.key"]
        assert stat.S_IMODE(key.external_attr >> 16) == 0o600
        link = infos[f"{top}/link-to-notes"]
        assert stat.S_ISLNK(link.external_attr >> 16) and zf.read(link) == b"docs/notes.txt"
        assert f"{top}/docs/caf\u00e9 & space.md" in infos and f"{top}/empty-dir/" in infos
        st = (sample_store.source / "docs" / "notes.txt").stat()
        assert _zip_mtime(infos[f"{top}/docs/notes.txt"]) == int(st.st_mtime)


def _zip_mtime(info: zipfile.ZipInfo) -> int | None:
    """The Unix mtime from the extended-timestamp extra field ("UT", what unzip applies)."""
    extra = info.extra
    while len(extra) >= 4:
        tag, size = int.from_bytes(extra[:2], "little"), int.from_bytes(extra[2:4], "little")
        if tag == 0x5455:
            return int.from_bytes(extra[5:9], "little", signed=True)
        extra = extra[4 + size :]
    return None


def test_stdout_a_folder_and_a_single_file(sample_store: SampleStore, tmp_path: Path) -> None:
    res = run_kloset("at", sample_store.store, "archive", "latest:/docs", "-o", "-",
                     env=sample_store.env)  # fmt: skip
    assert res.returncode == 0, res.stderr
    with tarfile.open(fileobj=io.BytesIO(res.stdout)) as tf:
        names = tf.getnames()
        assert names[0] == "docs" and "docs/notes.txt" in names
        assert tf.extractfile("docs/notes.txt").read() == b"second notes, longer\n"  # type: ignore[union-attr]
    _archive(sample_store, "latest:/bin/run.sh", "-o", str(tmp_path / "one.zip"))
    with zipfile.ZipFile(tmp_path / "one.zip") as zf:
        assert zf.namelist() == ["run.sh"] and zf.read("run.sh").startswith(b"#!/bin/sh")


def test_bad_archive_requests_get_one_line(sample_store: SampleStore, tmp_path: Path) -> None:
    cases = [
        (["latest", "-o", str(tmp_path / "out.rar")], 1, "cannot tell the archive format"),
        (["latest", "-o", "-", "--format", "7z"], 1, "unknown archive format"),
        (["latest:/nope", "-o", str(tmp_path / "x.tar")], 2, "not found"),
        (["beef", "-o", str(tmp_path / "x.tar")], 2, "no snapshot"),
        (["latest", "-o", str(tmp_path)], 1, "is a directory"),
    ]
    for args, code, message in cases:
        res = cli("at", sample_store.store, "archive", *args, env=sample_store.env)
        assert res.code == code and len(res.err_lines) == 1 and message in res.err, (args, res.err)
    assert not (tmp_path / "x.tar").exists()
