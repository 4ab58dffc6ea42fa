"""create / ls / cat / find / diff / info / rm, text and --json, and the terminal behaviour."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import sys
import time
from pathlib import Path

import pytest
from helpers import FAST_KDF, PASSPHRASE, cli, open_repo, run_kloset, write_file
from rich.console import Console

from kloset.cli.output import local_time
from kloset.cli.progress import ProgressReporter

ENV = {"KLOSET_PASSPHRASE": PASSPHRASE}
NS = 1_650_000_000_000_000_000


@pytest.fixture
def two_snaps(tmp_path: Path) -> tuple[Path, Path, str, str]:
    src = tmp_path / "src"
    write_file(src / "keep.txt", b"same\n", NS)
    write_file(src / "docs" / "report.pdf", b"%PDF" + b"x" * 5000, NS)
    write_file(src / "docs" / "notes.TXT", b"notes\n", NS)
    write_file(src / "gone" / "old.txt", b"old\n", NS)
    os.symlink("keep.txt", src / "ln")
    store = tmp_path / "store"
    assert cli("at", store, "create", *FAST_KDF, env=ENV).code == 0
    first = cli("at", store, "backup", src, "--tag", "daily", "--tag", "v1", "--json", env=ENV)
    (src / "gone" / "old.txt").unlink()
    (src / "gone").rmdir()
    write_file(src / "docs" / "notes.TXT", b"notes, longer now\n", NS + 5)
    write_file(src / "new" / "fresh.txt", b"fresh\n", NS)
    os.chmod(src / "keep.txt", 0o600)
    second = cli("at", store, "backup", src, "--json", "--exclude", "*.pdf", env=ENV)
    return src, store, first.json()["snapshot"], second.json()["snapshot"]


def test_ls_snapshots_text_and_json(two_snaps: tuple[Path, Path, str, str]) -> None:
    src, store, s1, s2 = two_snaps
    text = cli("at", store, "ls", env=ENV)
    lines = text.out.splitlines()
    assert lines[0].split() == ["ID", "DATE", "SIZE", "FILES", "TAGS", "SOURCE"]
    assert lines[1].startswith(s1[:12] + "  ") and "daily,v1" in lines[1]
    assert lines[2].startswith(s2[:12] + "  ") and lines[2].endswith(str(src))
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", lines[1])
    docs = cli("at", store, "ls", "--json", env=ENV).json()
    assert [d["id"] for d in docs] == [s1, s2]
    assert docs[0]["tags"] == ["daily", "v1"] and docs[0]["files"] == 4
    assert docs[1]["files"] == 3 and docs[1]["parent"] == s1  # report.pdf excluded
    long = cli("at", store, "ls", "--long", env=ENV).out
    assert s1 in long and "HOST" in long


def test_ls_inside_a_snapshot(two_snaps: tuple[Path, Path, str, str]) -> None:
    _src, store, s1, _s2 = two_snaps
    out = cli("at", store, "ls", s1[:8], env=ENV).out.splitlines()
    assert [line.split("  ")[-1] for line in out] == [
        "docs/",
        "gone/",
        "keep.txt",
        "ln -> keep.txt",
    ]
    assert out[0].startswith("drwx") and out[2].startswith("-rw-r--r--")
    assert out[3].startswith("lrwxrwxrwx")
    assert local_time(NS, seconds=False) in out[2]
    sub = cli("at", store, "ls", f"{s1[:8]}:/docs", "--json", env=ENV).json()
    assert [(e["path"], e["size"], e["type"]) for e in sub] == [
        ("/docs/notes.TXT", 6, "file"),
        ("/docs/report.pdf", 5004, "file"),
    ]
    assert sub[0]["mtime_ns"] == NS
    single = cli("at", store, "ls", f"{s1[:8]}:/docs/report.pdf", "--long", env=ENV).out
    assert single.split()[1] == "5004"


def test_cat_streams_bytes(two_snaps: tuple[Path, Path, str, str]) -> None:
    _src, store, s1, _s2 = two_snaps
    res = run_kloset("at", store, "cat", f"{s1}:/docs/report.pdf", env=ENV)
    assert res.returncode == 0 and res.stdout == b"%PDF" + b"x" * 5000
    empty_dir_path = cli("at", store, "cat", f"{s1}:/docs/", env=ENV)
    assert empty_dir_path.code == 2


def test_find(two_snaps: tuple[Path, Path, str, str]) -> None:
    _src, store, s1, s2 = two_snaps
    everywhere = cli("at", store, "find", "*.txt", env=ENV).out.splitlines()
    assert everywhere == [
        f"{s1[:12]}:/gone/old.txt",
        f"{s1[:12]}:/keep.txt",
        f"{s2[:12]}:/keep.txt",
        f"{s2[:12]}:/new/fresh.txt",
    ]
    ci = cli("at", store, "find", "-i", "*.txt", s2[:6], env=ENV)
    assert ci.code == 2  # SNAP comes first
    ci = cli("at", store, "find", "-i", s2[:6], "*.txt", env=ENV).out.splitlines()
    assert f"{s2[:12]}:/docs/notes.TXT" in ci
    by_path = cli("at", store, "find", "/docs/*", "--json", env=ENV).json()
    assert {(m["snapshot"], m["path"]) for m in by_path} == {
        (s1, "/docs/notes.TXT"),
        (s1, "/docs/report.pdf"),
        (s2, "/docs/notes.TXT"),
    }
    dirs = cli("at", store, "find", f"{s1[:8]}:/gone", "*", env=ENV).out.splitlines()
    assert dirs == [f"{s1[:12]}:/gone/", f"{s1[:12]}:/gone/old.txt"]


def test_diff(two_snaps: tuple[Path, Path, str, str]) -> None:
    _src, store, s1, s2 = two_snaps
    res = cli("at", store, "diff", s1[:8], s2[:8], env=ENV)
    assert res.code == 0
    lines = res.out.splitlines()
    assert "+ /new/" in lines and "+ /new/fresh.txt" in lines
    assert "- /gone/" in lines and "- /gone/old.txt" in lines
    assert "- /docs/report.pdf" in lines  # excluded in the second backup
    assert "M /docs/notes.TXT  (size, content, mtime)" in lines
    assert "M /keep.txt  (mode)" in lines
    assert lines[-1] == "2 added, 3 removed, 2 changed"
    doc = cli("at", store, "diff", s1, s2, "--json", env=ENV).json()
    assert doc["old"] == s1 and doc["new"] == s2
    assert [e["path"] for e in doc["removed"]] == ["/docs/report.pdf", "/gone", "/gone/old.txt"]
    sub = cli("at", store, "diff", f"{s1}:/docs", f"{s2}:/docs", "--json", env=ENV).json()
    assert [e["path"] for e in sub["removed"]] == ["/docs/report.pdf"]
    same = cli("at", store, "diff", s2, s2, env=ENV).out.splitlines()
    assert same == ["0 added, 0 removed, 0 changed"]


def test_info(two_snaps: tuple[Path, Path, str, str]) -> None:
    _src, store, s1, s2 = two_snaps
    text = cli("at", store, "info", env=ENV).out
    assert re.search(r"^snapshots\s+2$", text, re.M)
    assert "aes-256-gcm" in text
    doc = cli("at", store, "info", "--json", env=ENV).json()
    assert doc["snapshots"] == 2 and doc["encrypted"] is True
    assert doc["pack_bytes"] == sum(p.stat().st_size for p in (store / "packs").rglob("*/*"))
    snap = cli("at", store, "info", s1[:8], "--json", env=ENV).json()
    assert snap["id"] == s1 and snap["files"] == 4 and snap["dirs"] == 2
    assert snap["logical_bytes"] == 5 + 5004 + 6 + 4
    assert snap["bytes_added"] > 0 and snap["errors_total"] == 0
    assert snap["chunks"] == 4 and snap["stored_bytes"] > 0 and snap["missing_blobs"] == 0
    assert "added at backup" in cli("at", store, "info", s2[:8], env=ENV).out


def test_rm(two_snaps: tuple[Path, Path, str, str]) -> None:
    _src, store, s1, s2 = two_snaps
    bad = cli("at", store, "rm", s1[:8], "ffffffff", env=ENV)
    assert bad.code == 2
    assert len(cli("at", store, "ls", "--json", env=ENV).json()) == 2  # nothing removed
    res = cli("at", store, "rm", s1[:8], s1, "--json", env=ENV)
    assert res.json() == {"removed": [s1]}
    assert [d["id"] for d in cli("at", store, "ls", "--json", env=ENV).json()] == [s2]
    assert cli("at", store, "rm", "latest", env=ENV).out == f"removed snapshot {s2}\n"
    assert cli("at", store, "ls", env=ENV).out == ""
    assert cli("at", store, "check", env=ENV).code == 0  # packs stay until prune


def test_unencrypted_store_on_memory(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_file(src / "f.txt", b"plain\n")
    store = f"memory://{tmp_path.name}/store"
    assert "unencrypted" in cli("at", store, "create", "--no-encryption").out
    backup = cli("at", store, "backup", src)
    assert backup.code == 0 and backup.out.strip().splitlines()[-1].endswith(" created")
    assert cli("at", store, "check", "--read-data").code == 0
    assert cli("at", store, "info", "--json").json()["encrypted"] is False


def _pty_run(argv: list[str], answers: list[bytes], env: dict[str, str]) -> tuple[int, bytes]:
    """Run `kloset argv` on a pseudo-terminal, typing `answers` after each prompt."""
    pid, fd = pty.fork()
    if pid == 0:  # child
        os.execvpe(sys.executable, [sys.executable, "-m", "kloset.cli.main", *argv], env)
    seen = b""
    pending = list(answers)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
        # Answer each prompt once, only after it appeared (getpass flushes earlier input).
        if pending and seen.count(b"passphrase: ") > len(answers) - len(pending):
            os.write(fd, pending.pop(0) + b"\n")
    else:
        os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), seen


@pytest.mark.slow
def test_prompted_passphrase_is_confirmed_and_never_echoed(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLOSET_PASSPHRASE")}
    store = tmp_path / "store"
    secret = b"s3cret-typed-passphrase"
    code, seen = _pty_run(["at", str(store), "create", *FAST_KDF], [secret, b"different"], env)
    assert code == 1 and b"passphrases do not match" in seen and secret not in seen
    code, seen = _pty_run(["at", str(store), "create", *FAST_KDF], [secret, secret], env)
    assert code == 0, seen
    assert secret not in seen
    assert b"repeat passphrase:" in seen
    assert open_repo(store, secret.decode()).config.encrypted

    src = tmp_path / "src"
    for i in range(300):
        write_file(src / f"f{i}", os.urandom(40_000))
    code, seen = _pty_run(["at", str(store), "backup", str(src)], [secret], env)
    assert code == 0
    assert secret not in seen
    assert b"/300 files" in seen  # the progress bar was drawn on the terminal


def test_progress_reporter_draws_only_on_terminals() -> None:
    class Plan:
        bytes_to_read, files_to_read = 1000, 4

    class Batch:
        files, errors = 3, [("/x", "cannot read")]

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120)
    with ProgressReporter("backup", console=console) as bar:
        bar("planned", {"plan": Plan()})
        bar("read", {"bytes": 600, "files": 0})
        bar("batch", {"result": Batch()})
        bar("committing", {})
        assert (bar.bytes_done, bar.files_done, bar.files_total) == (600, 4, 4)
    assert "commit" in buf.getvalue()

    quiet = io.StringIO()
    with ProgressReporter("restore", console=Console(file=quiet, force_terminal=False)) as bar:
        bar("file", {"bytes": 10})
        assert bar.files_done == 1 and not bar.enabled
    assert quiet.getvalue() == ""
