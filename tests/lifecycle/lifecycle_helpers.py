"""Helpers of the lifecycle tests: small fast stores, a corpus writer, real CLI processes.

Stores use 1 MiB packs, a small chunker (so packs hold many blobs and repacking matters) and a
cheap KDF, so a 36 MB corpus is backed up in about a second and many runs fit the time budget.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from kloset.check import check_store
from kloset.config import ChunkerParams
from kloset.crypto import KdfParams
from kloset.locations import open_storage
from kloset.repository import Repository
from kloset.storescan import list_packs, read_pack_header

PASS = "lifecycle-pass"
CHUNKER = ChunkerParams(min_size=32 * 1024, avg_size=64 * 1024, max_size=256 * 1024)
PACK_SIZE = 1 << 20
SNAP_RE = re.compile(r"snapshot ([0-9a-f]{64}) created")
MB = 1024 * 1024


def new_store(path: Path, passphrase: str | None = PASS) -> Repository:
    return Repository.create(
        open_storage(str(path)),
        passphrase,
        encrypted=passphrase is not None,
        kdf=KdfParams.fresh(memory_kib=1024, iterations=1),
        pack_size=PACK_SIZE,
        chunker=CHUNKER,
    )


def open_store(path: Path, passphrase: str | None = PASS) -> Repository:
    return Repository.open(open_storage(str(path)), passphrase)


def random_bytes(rng: random.Random, n: int) -> bytes:
    """Incompressible bytes from a seeded generator (reproducible corpora)."""
    return rng.randbytes(n)


def write_tree(root: Path, rng: random.Random, total: int, prefix: str = "d") -> None:
    """`total` bytes spread over nested folders and files of 4 KiB .. 3 MiB; some files are
    copies (dedup) and some are text (compression)."""
    written = 0
    n = 0
    while written < total:
        folder = root / f"{prefix}{n % 7}" / f"sub{n % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        size = min(total - written, rng.choice([4096, 40_000, 200_000, 700_000, 3 * MB]))
        if n % 11 == 5:
            data = (f"line {n} of a text file\n" * (size // 24 + 1)).encode()[:size]
        else:
            data = random_bytes(rng, size)
        (folder / f"file{n:04d}.bin").write_bytes(data)
        if n % 13 == 7:
            (folder / f"copy{n:04d}.bin").write_bytes(data)
        written += size
        n += 1


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["KLOSET_PASSPHRASE"] = PASS
    env.update(extra)
    return env


def kloset(*args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m kloset.cli.main ARGS` to completion."""
    proc = subprocess.run(
        [sys.executable, "-m", "kloset.cli.main", *args],
        capture_output=True,
        text=True,
        env=cli_env(**env),
        timeout=120,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"kloset {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc


def spawn(*args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "kloset.cli.main", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(**env),
    )


def snapshot_ids(text: str) -> list[str]:
    return SNAP_RE.findall(text)


def pack_sizes(store: Path) -> dict[str, int]:
    """Finished packs in a store, name → size."""
    storage = open_storage(str(store))
    packs, _other = list_packs(storage)
    return {obj.name: obj.size for obj in packs.values()}


def store_bytes(store: Path) -> int:
    """What the store occupies for its content: packs, index files and snapshot headers."""
    total = 0
    for sub in ("packs", "index", "snapshots"):
        for dirpath, _d, files in os.walk(store / sub):
            total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files)
    return total


def blobs_of(repo: Repository, names: list[str], sizes: dict[str, int]) -> dict[bytes, int]:
    """blob id → sealed length, read from the packs' own headers."""
    out: dict[bytes, int] = {}
    for name in names:
        for entry in read_pack_header(repo, name, sizes[name]):
            out[entry.id] = entry.length
    return out


def assert_check_ok(store: Path, *, read_data: bool = False) -> None:
    repo = open_store(store)
    report = check_store(repo, read_data=read_data)
    assert report.ok, report.errors[:5]


def tree_digest(root: Path) -> dict[str, str]:
    """relative path → sha256 of content (or link target / 'dir'), for comparing restores."""
    out: dict[str, str] = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            full = Path(dirpath) / name
            rel = str(full.relative_to(root))
            if full.is_symlink():
                out[rel] = "link:" + os.readlink(full)
            elif full.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = hashlib.sha256(full.read_bytes()).hexdigest()
    return out


def restore_to(store: Path, snap: str, target: Path) -> dict[str, str]:
    from kloset.locations import open_destination
    from kloset.restore import run_restore

    repo = open_store(store)
    header = repo.resolve_snapshot(snap)
    report = run_restore(repo, header, "/", open_destination(str(target)))
    assert not report.errors, report.errors[:5]
    return tree_digest(target)


def evolve(src: Path, rng: random.Random, step: int) -> None:
    """A realistic change: a quarter of the files go, some grow, new data arrives."""
    files = sorted(p for p in src.rglob("*") if p.is_file() and not p.is_symlink())
    for victim in rng.sample(files, len(files) // 4):
        victim.unlink()
    for grown in rng.sample(sorted(p for p in files if p.exists()), 3):
        with grown.open("ab") as fh:
            fh.write(rng.randbytes(50_000))
    write_tree(src / f"new{step}", rng, 4 * MB, prefix=f"s{step}-")


def wait_for_lock(store: Path, proc, timeout: float = 20.0) -> None:
    """Until the process holds its lock (its real work starts) or has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if any(".tmp-" not in n for n in os.listdir(store / "locks")):
            return
        time.sleep(0.002)


class RandomKiller:
    """SIGKILLs runs at random points of their real work: after the run takes its store lock,
    within `work_time` (a calibrated run's duration from lock to exit). The window shrinks when
    runs finish before their kill and grows back when kills land, because timing differs from
    machine to machine."""

    def __init__(self, seed: int, work_time: float, scale: float = 0.9) -> None:
        self.rng = random.Random(seed)
        self.work_time = work_time
        self.scale = scale
        self.kills = 0

    def run(self, proc: subprocess.Popen[str], store: Path) -> bool:
        """Wait for `proc` to lock `store`, kill it at a random moment (unless it finished
        first) and reap it. Returns whether it was killed."""
        wait_for_lock(store, proc)
        time.sleep(self.rng.uniform(0.0, self.scale * self.work_time))
        killed = proc.poll() is None
        if killed:
            os.kill(proc.pid, signal.SIGKILL)
            self.kills += 1
            self.scale = min(1.0, self.scale * 1.05)
        else:
            self.scale *= 0.7
        proc.communicate(timeout=60)
        return killed


def time_locked_work(proc: subprocess.Popen[str], store: Path) -> float:
    """Seconds `proc` runs from taking its lock on `store` to exiting (kill-loop calibration)."""
    wait_for_lock(store, proc)
    locked = time.monotonic()
    proc.communicate(timeout=60)
    return time.monotonic() - locked
