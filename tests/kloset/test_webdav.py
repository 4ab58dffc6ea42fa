"""`kloset at STORE serve webdav`: the real CLI, checked with a real WebDAV client (rclone's
`webdav` backend) and plain HTTP for what must be refused."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from helpers import cli
from kloset_samples import SampleStore

from kloset.locks import read_locks
from kloset.storetree import snapshot_dir_name
from koofrfs.rclone import obscure

pytest.importorskip("wsgidav", reason="the 'webdav' extra is not installed")
RCLONE = shutil.which("rclone")


@dataclass
class Served:
    proc: subprocess.Popen[str]
    url: str
    password: str

    def remote(self, path: str) -> str:
        """An rclone on-the-fly remote for `path` on this server."""
        return f":webdav,url='{self.url}',user=kloset,pass='{obscure(self.password)}':{path}"


def _serve(sample: SampleStore, *args: str) -> Served:
    cmd = [sys.executable, "-m", "kloset.cli.main", "at", str(sample.store), "serve", "webdav"]
    env = {**os.environ, **sample.env}
    proc = subprocess.Popen(
        [*cmd, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    fields: dict[str, str] = {}
    deadline = time.monotonic() + 30
    while "password" not in fields:
        assert time.monotonic() < deadline, "serve webdav printed no credentials within 30 s"
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"serve webdav exited: {proc.communicate()}")
        key, _, value = line.strip().partition(" ")
        fields[key] = value.strip()
    return Served(proc, fields["url"], fields["password"])


def _stop(served: Served) -> tuple[int, str]:
    if served.proc.poll() is None:
        served.proc.send_signal(signal.SIGTERM)
    try:
        _out, err = served.proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        served.proc.kill()
        _out, err = served.proc.communicate(timeout=10)
    return served.proc.returncode, err


@pytest.fixture
def served(sample_store: SampleStore) -> Iterator[Served]:
    s = _serve(sample_store)
    try:
        yield s
    finally:
        _stop(s)


def _rclone(*args: str) -> subprocess.CompletedProcess[str]:
    assert RCLONE is not None
    cmd = [RCLONE, "--config", "/dev/null", "--low-level-retries", "1", "--retries", "1", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def _files(root: Path) -> dict[str, tuple[str, object, int]]:
    """Every file and link below `root`: kind, content or target, mtime in whole seconds."""
    out: dict[str, tuple[str, object, int]] = {}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath, name)
            rel = str(path.relative_to(root))
            st = path.lstat()
            if path.is_symlink():
                out[rel] = ("link", os.readlink(path), st.st_mtime_ns // 10**9)
            else:
                out[rel] = ("file", path.read_bytes(), st.st_mtime_ns // 10**9)
    return out


@pytest.mark.skipif(RCLONE is None, reason="rclone is missing (.ci/run installs Debian's rclone)")
def test_rclone_lists_and_copies_a_snapshot_folder_exactly(
    sample_store: SampleStore, served: Served, tmp_path: Path
) -> None:
    second = sample_store.second
    top = _rclone("lsf", served.remote("/"))
    assert top.returncode == 0, top.stderr
    assert top.stdout.split() == ["ids/", "latest/", "snapshots/", "tags/"]
    listed = _rclone("lsf", served.remote("/snapshots"))
    assert sorted(listed.stdout.split()) == sorted(
        snapshot_dir_name(h) + "/" for h in (sample_store.first, second)
    )

    folder = f"/snapshots/{snapshot_dir_name(second)}"
    copied = _rclone("copy", "--links", served.remote(folder), str(tmp_path / "copy"))
    assert copied.returncode == 0, copied.stderr
    assert _files(tmp_path / "copy") == _files(sample_store.source)
    empty_dirs = _rclone(
        "copy", "--create-empty-src-dirs", served.remote(folder), str(tmp_path / "d")
    )
    assert empty_dirs.returncode == 0 and (tmp_path / "d" / "empty-dir").is_dir()

    # A range read fetches just that range (rclone cat --offset/--count sends Range).
    video = (sample_store.source / "video.mp4").read_bytes()
    part = subprocess.run(
        [RCLONE, "--config", "/dev/null", "cat", "--offset", "3000000", "--count", "5000",
         served.remote("/latest/video.mp4")],
        capture_output=True, timeout=60,
    )  # fmt: skip
    assert part.returncode == 0 and part.stdout == video[3_000_000:3_005_000]


def test_credentials_are_required_and_nothing_can_be_written(served: Served) -> None:
    assert httpx.get(served.url, timeout=10).status_code == 401
    assert httpx.get(served.url, auth=("kloset", "wrong"), timeout=10).status_code == 401
    auth = ("kloset", served.password)
    ok = httpx.request("PROPFIND", served.url + "latest/", auth=auth, headers={"Depth": "1"})
    assert ok.status_code == 207 and "notes.txt" not in ok.text and "docs" in ok.text
    got = httpx.get(served.url + "latest/docs/notes.txt", auth=auth, timeout=10)
    assert got.status_code == 200 and got.content == b"second notes, longer\n"
    link = httpx.get(served.url + "latest/link-to-notes.rclonelink", auth=auth, timeout=10)
    assert link.content == b"docs/notes.txt"
    for method, path in (
        ("PUT", "latest/new.txt"),
        ("PUT", "latest/docs/notes.txt"),
        ("DELETE", "latest/docs/notes.txt"),
        ("MKCOL", "latest/newdir"),
        ("MOVE", "latest/empty"),
    ):
        res = httpx.request(
            method, served.url + path, auth=auth, content=b"x", timeout=10,
            headers={"Destination": served.url + "latest/moved"},
        )  # fmt: skip
        assert res.status_code in (403, 405), (method, path, res.status_code)
    assert httpx.get(served.url + "latest/docs/notes.txt", auth=auth).content.startswith(b"second")


def test_sigterm_stops_the_server_and_releases_the_lock(sample_store: SampleStore) -> None:
    s = _serve(sample_store)
    code, err = _stop(s)
    assert code == 0 and "stopped" in err, err
    assert s.proc.pid not in [lock.pid for lock in read_locks(sample_store.repo)]


def test_bad_addresses_get_one_line(sample_store: SampleStore) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        res = cli(
            "at", sample_store.store, "serve", "webdav", "--addr", f"127.0.0.1:{port}",
            env=sample_store.env,
        )  # fmt: skip
    assert res.code == 2 and len(res.err_lines) == 1 and "in use" in res.err, res.err
    res = cli(
        "at", sample_store.store, "serve", "webdav", "--addr", "0.0.0.0:0", env=sample_store.env
    )
    assert res.code == 1 and len(res.err_lines) == 1 and "--allow-remote" in res.err, res.err
