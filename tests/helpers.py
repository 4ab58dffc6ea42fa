"""Shared test helpers: awkward trees on disk, exact tree comparison, crafted snapshots, CLI runs.

Kept out of conftest.py on purpose: tests import what they use, so a reader sees where a
helper comes from.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import stat
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kloset.backup.commit import TreeWriter
from kloset.backup.sink import store_packs
from kloset.config import CONFIG_NAME, StoreConfig
from kloset.crypto import KdfParams
from kloset.locations import open_storage
from kloset.pack import BLOB_DATA, PackWriter
from kloset.repository import Repository
from kloset.snapshot import SnapshotHeader
from kloset.tree import DIR, FILE, SYMLINK, Entry

PASSPHRASE = "correct horse battery staple"
FAST_KDF = ["--kdf-memory-kib", "64", "--kdf-iterations", "1"]
MiB = 1024 * 1024

# Timestamps that stress mtime handling: the epoch, before it (ext4's floor is 1901-12-13),
# after 2038, and odd nanoseconds everywhere.
OLD_NS = -2_147_000_000 * 10**9 + 123_456_789  # 1901-12-18
EPOCH_NS = 1
Y2100_NS = 4_102_444_800 * 10**9 + 987_654_321
NORMAL_NS = 1_700_000_000 * 10**9 + 111_222_333


# -- screenshots for the documentation ---------------------------------------------------------
SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"


def screenshots_wanted() -> bool:
    """Whether browser tests refresh docs/screenshots/: only on purpose (``KLOSET_SCREENSHOTS=1
    python -m pytest tests/ui tests/prefect/test_ui_run.py``), so `./test` leaves the checkout as
    it found it."""
    return os.environ.get("KLOSET_SCREENSHOTS", "") not in ("", "0")


# -- running the CLI ----------------------------------------------------------------------------
@dataclass
class Result:
    code: int
    raw: bytes
    err: str

    @property
    def out(self) -> str:
        return self.raw.decode("utf-8", "replace")

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]

    def json(self) -> Any:
        return json_doc(self.out)


def json_doc(text: str) -> Any:
    """A verb's `--json` output: one JSON document, or for the JSON lines of a long run
    (`backup --json`, `restore --json`) the last line, its summary."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        lines = [line for line in text.splitlines() if line.strip()]
        doc = json.loads(lines[-1])
        assert doc.get("message_type") == "summary", doc
        return doc


def cli(*argv: str | os.PathLike[str], env: dict[str, str] | None = None) -> Result:
    """Run `kloset argv...` in-process (fast), capturing stdout as bytes and stderr as text."""
    from kloset.cli.main import main

    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="utf-8", write_through=True)
    err = io.StringIO()
    saved = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in argv])
        out.flush()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return Result(code, raw.getvalue(), err.getvalue())


def run_kloset(
    *argv: str | os.PathLike[str],
    env: dict[str, str] | None = None,
    input: bytes | None = None,
    prefix: Sequence[str] = (),
) -> subprocess.CompletedProcess[bytes]:
    """Run the real `kloset` in a fresh interpreter (true end to end: exit codes, streams)."""
    full_env = {**os.environ, **(env or {})}
    cmd = [*prefix, sys.executable, "-m", "kloset.cli.main", *map(str, argv)]
    return subprocess.run(cmd, env=full_env, input=input, capture_output=True, timeout=300)


def make_store(path: Path, *extra: str) -> Path:
    """A new store via the CLI (KLOSET_PASSPHRASE must be set unless --no-encryption)."""
    res = cli("at", path, "create", *FAST_KDF, *extra)
    assert res.code == 0, res.err
    return path


def open_repo(path: Path | str, passphrase: str | None = PASSPHRASE) -> Repository:
    """Open a test store; unencrypted stores refuse a passphrase, so none is given to them."""
    storage = open_storage(str(path))
    encrypted = StoreConfig.from_bytes(storage.read(CONFIG_NAME)).encrypted
    return Repository.open(storage, passphrase if encrypted else None)


def new_repo(path: Path | str, *, encrypted: bool = True, pack_size: int = 16 * MiB) -> Repository:
    return Repository.create(
        open_storage(str(path)),
        PASSPHRASE if encrypted else None,
        encrypted=encrypted,
        kdf=KdfParams.fresh(memory_kib=64, iterations=1),
        pack_size=pack_size,
    )


# -- trees on disk ------------------------------------------------------------------------------
def write_file(path: Path, data: bytes, mtime_ns: int = NORMAL_NS, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, mode)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def build_odd_tree(root: Path, *, many: int = 3000, big: int = 24 * MiB) -> dict[str, Any]:
    """The issue's "done when" tree. Returns facts the tests assert on."""
    root.mkdir(parents=True)
    names = root / "names"
    odd = [
        "caf\u00e9",  # NFC
        "cafe\u0301",  # NFD: a different name with the same look
        "a" * 255,  # longest name ext4 allows
        "\u00e9" * 127 + "x",  # 255 bytes of UTF-8
        "100%", "#hash", "what?", "a+b", "it's", 'say "hi"', "with space", " lead", "trail ",
        "-rf", "--help", "back\\slash", "star*", "[br]", "semi;colon", "tab\there", "new\nline",
        "\u65e5\u672c\u8a9e", "emoji\U0001f600", "@at", "~tilde", ":colon", "SNAP:x",
    ]  # fmt: skip
    for i, name in enumerate(odd):
        write_file(names / name, f"file {i} {name}\n".encode(), NORMAL_NS + i)
    bad_utf8 = os.fsdecode(b"latin1-\xe9\xff")  # not UTF-8: stored as raw bytes
    write_file(names / bad_utf8, b"raw bytes name\n")
    os.utime(names, ns=(NORMAL_NS, NORMAL_NS))

    write_file(root / "empty-file", b"", EPOCH_NS)
    (root / "empty-dir").mkdir()
    (root / "empty-dir-old").mkdir()
    os.utime(root / "empty-dir-old", ns=(OLD_NS, OLD_NS))
    write_file(root / "times" / "old", b"1901\n", OLD_NS)
    write_file(root / "times" / "epoch", b"1970\n", EPOCH_NS)
    write_file(root / "times" / "future", b"2100\n", Y2100_NS)
    write_file(root / "modes" / "ro", b"read only\n", mode=0o444)
    write_file(root / "modes" / "exec", b"#!/bin/sh\n", mode=0o755)
    write_file(root / "modes" / "private", b"secret\n", mode=0o600)
    write_file(root / "modes" / "setuid", b"x\n", mode=0o4755)
    (root / "modes" / "locked-dir").mkdir()
    write_file(root / "modes" / "locked-dir" / "inside", b"in a 0555 dir\n")
    os.chmod(root / "modes" / "locked-dir", 0o555)

    deep = root / "deep"
    cur = deep
    for level in range(40):
        cur = cur / f"level{level:02d}"
    write_file(cur / "bottom.txt", b"forty levels down\n")

    links = root / "links"
    links.mkdir()
    os.symlink("../names/with space", links / "relative")
    os.symlink("/etc/hostname", links / "absolute")
    os.symlink("nowhere/at/all", links / "dangling")
    os.symlink("../deep", links / "to-dir")
    os.symlink("self-loop", links / "self-loop")
    for link in links.iterdir():
        os.utime(link, ns=(NORMAL_NS + 7, NORMAL_NS + 7), follow_symlinks=False)

    many_dir = root / "many"
    many_dir.mkdir()
    for i in range(many):
        (many_dir / f"f{i:05d}.txt").write_bytes(f"small file number {i}\n".encode() * (1 + i % 7))

    base = random_bytes(big, 1)
    changed = bytearray(base)
    middle = big // 2
    changed[middle : middle + 5] = b"XXXXX"
    write_file(root / "big" / "one.bin", base, NORMAL_NS)
    write_file(root / "big" / "two.bin", bytes(changed), NORMAL_NS)

    # Directory mtimes last (creating children changes them), deepest first.
    for dirpath, _dirs, _files in sorted(os.walk(root), key=lambda t: -t[0].count(os.sep)):
        ns = OLD_NS if dirpath.endswith("empty-dir-old") else NORMAL_NS + len(dirpath)
        os.utime(dirpath, ns=(ns, ns), follow_symlinks=False)
    return {"big": big, "many": many, "odd": odd}


def tree_state(root: Path) -> dict[bytes, tuple[Any, ...]]:
    """What a restore must reproduce, keyed by relative path bytes (names may not be UTF-8)."""
    out: dict[bytes, tuple[Any, ...]] = {}
    base = os.fsencode(str(root))

    def visit(path: bytes, rel: bytes) -> None:
        st = os.lstat(path)
        perm = stat.S_IMODE(st.st_mode)
        if stat.S_ISLNK(st.st_mode):
            out[rel] = ("link", os.readlink(path), st.st_mtime_ns)
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = ("dir", perm, st.st_mtime_ns)
            for name in sorted(os.listdir(path)):
                visit(os.path.join(path, name), os.path.join(rel, name) if rel else name)
        else:
            with open(path, "rb") as fh:
                digest = hashlib.sha256(fh.read()).hexdigest()
            out[rel] = ("file", perm, st.st_mtime_ns, st.st_size, digest)

    visit(base, b"")
    return out


def flip_byte(path: Path, offset: int) -> int:
    """XOR one byte with 0xFF; returns the offset so the caller can flip it back."""
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0xFF]))
    return offset


def pack_files(store: Path) -> list[Path]:
    return sorted(p for p in (store / "packs").rglob("*") if p.is_file())


# -- crafted snapshots --------------------------------------------------------------------------
Spec = list[tuple[str, Any]]  # (name, bytes | Spec | ("symlink", target))


def craft_snapshot(repo: Repository, spec: Spec, spool: Path, *, source: str = "crafted") -> str:
    """Store a snapshot whose tree is exactly `spec`, names unchecked (for hostile-name tests)."""
    spool.mkdir(parents=True, exist_ok=True)
    data = PackWriter(repo.cipher, str(spool), repo.config.compression_level)
    trees = TreeWriter(repo, str(spool))

    def build(items: Spec) -> bytes:
        entries: list[Entry] = []
        for name, value in items:
            if isinstance(value, bytes):
                bid = repo.blob_id(value)
                if value and bid not in repo.index and bid not in {b.id for b in data.blobs}:
                    data.add(BLOB_DATA, bid, value)
                chunks = [bid] if value else []
                entries.append(Entry(name, FILE, 0o100644, NORMAL_NS, len(value), chunks))
            elif isinstance(value, tuple):
                entries.append(Entry(name, SYMLINK, 0o120777, NORMAL_NS, target=value[1]))
            else:
                entries.append(Entry(name, DIR, 0o40755, NORMAL_NS, subtree=build(value)))
        return trees.write(entries)

    root = build(spec)
    packs = ([data.seal()] if len(data) else []) + trees.finish()
    if not len(data):
        data.abort()
    store_packs(repo, packs)
    return repo.save_snapshot(SnapshotHeader(root=root, source=source)).hex()
