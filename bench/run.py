"""Benchmark `kloset` against restic and borg on the same real-file corpus, in one run.

Usage::

    python bench/run.py [--corpus DIR] [--tools kloset,restic,borg] [--repeat N]
                        [--out docs/BENCHMARKS.md]

What it measures, per tool and side by side (issue 2, item 8):

1. first backup of the corpus into a fresh, encrypted repository;
2. incremental backup after a deterministic change set (a seeded ~2% of files appended to or
   overwritten in place, plus a few new and deleted files) -- every tool sees the identical tree;
3. full restore of the latest snapshot into an empty directory, verified against the tree.

Every command runs as a child process, the way users run these tools. For each one we record
wall time, CPU time, peak RSS of the largest process (``wait4`` rusage, what ``/usr/bin/time -v``
prints) and the sampled peak PSS of the whole process tree (kloset forks chunking workers, so the
largest process alone would flatter it). Store size is ``du -sb`` of the repository directory.

Fairness choices, each made so that no tool gets an advantage the others do not:

* each tool gets a fresh ``cp -a`` copy of the corpus (restic and borg key their change
  detection on inode and ctime, so re-using one tree across tools would not be neutral), then
  ``sync`` and one full read so the tree is hot in the page cache for everyone (we cannot drop
  the cache without root tricks, so all tools run warm instead);
* ``sync`` after every measured command so one command's dirty pages are not flushed during
  the next one's measurement;
* default settings for all tools (compression, chunking, KDF), encryption on for all;
  caches and temp files of every tool live under the work directory and start empty.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
DEFAULT_SOURCE = Path("/root/.pyenv/versions/3.11.7/lib/python3.11/site-packages")
DEFAULT_WORK = HERE / ".work"
PASSPHRASE = "bench-passphrase-not-secret"
BEGIN_MARK = "<!-- BEGIN GENERATED RESULTS (bench/run.py --out) -->"
END_MARK = "<!-- END GENERATED RESULTS -->"
MIB = 1024 * 1024
PHASES = ("init", "first", "incremental", "restore")
MEASURED = ("first", "incremental", "restore")


# --------------------------------------------------------------------------------------------
# Measuring one child process
# --------------------------------------------------------------------------------------------
@dataclass
class Measurement:
    """Cost of one command. Memory in KiB; `tree_pss_kib` is the sampled whole-tree peak."""

    cmd: list[str]
    wall_s: float
    user_s: float
    sys_s: float
    maxrss_kib: int
    tree_pss_kib: int
    tree_rss_kib: int
    returncode: int
    background_cores: float = 0.0


def _cpu_busy_s() -> float:
    """Seconds of CPU time the whole machine has spent busy since boot (all cores)."""
    with open("/proc/stat") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    busy = sum(fields[:8]) - idle  # guest time is already inside user/nice
    return busy / os.sysconf("SC_CLK_TCK")


def wait_for_quiet(max_cores: float, timeout: float) -> float:
    """Wait until other processes use less than `max_cores` CPUs over one second.

    Why: this machine is shared with other work; a command measured while a test suite runs
    next to it is slowed by an amount we cannot subtract. Returns the last load seen.
    """
    deadline = time.monotonic() + timeout
    while True:
        before = _cpu_busy_s()
        time.sleep(1.0)
        load = _cpu_busy_s() - before
        if load < max_cores or time.monotonic() >= deadline:
            return load


def _children(pid: int) -> list[int]:
    """Direct children of `pid` via /proc/PID/task/*/children (no psutil dependency)."""
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                out.extend(int(x) for x in fh.read().split())
        except (OSError, ValueError):
            continue
    return out


def _rollup(pid: int) -> tuple[int, int]:
    """(Pss, Rss) in KiB from smaps_rollup; PSS splits copy-on-write pages between forks."""
    pss = rss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss = int(line.split()[1])
    except (OSError, ValueError):
        pass
    return pss, rss


class TreeSampler(threading.Thread):
    """Samples the summed PSS/RSS of a process and all its descendants until stopped.

    Why: peak RSS from rusage is the largest *single* process; a tool that forks workers can use
    several times that. PSS is the honest sum because shared copy-on-write pages count once.
    """

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak_pss = 0
        self.peak_rss = 0
        self._stop_evt = threading.Event()

    def run(self) -> None:
        while not self._stop_evt.is_set():
            pss = rss = 0
            todo = [self.pid]
            seen: set[int] = set()
            while todo:
                p = todo.pop()
                if p in seen:
                    continue
                seen.add(p)
                a, b = _rollup(p)
                pss += a
                rss += b
                todo.extend(_children(p))
            self.peak_pss = max(self.peak_pss, pss)
            self.peak_rss = max(self.peak_rss, rss)
            self._stop_evt.wait(self.interval)

    def stop(self) -> None:
        self._stop_evt.set()
        self.join()


def run_measured(
    cmd: Sequence[str], *, cwd: Path, env: dict[str, str], log: Path, check: bool = True
) -> Measurement:
    """Run `cmd`, wait with wait4 to get *its* rusage (not the sum of all children so far)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"$ {' '.join(cmd)}\n".encode())
        out.flush()
        busy_before = _cpu_busy_s()
        started = time.perf_counter()
        proc = subprocess.Popen(list(cmd), cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        busy = _cpu_busy_s() - busy_before
        sampler.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)  # Popen must not wait again
    m = Measurement(
        cmd=list(cmd),
        wall_s=wall,
        user_s=usage.ru_utime,
        sys_s=usage.ru_stime,
        maxrss_kib=usage.ru_maxrss,
        tree_pss_kib=sampler.peak_pss,
        tree_rss_kib=sampler.peak_rss,
        returncode=proc.returncode,
        # CPU used by anything but the measured command (and this thin runner), in cores.
        background_cores=max(0.0, busy - usage.ru_utime - usage.ru_stime) / wall if wall else 0.0,
    )
    if check and m.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise RuntimeError(f"{cmd[0]} failed (exit {m.returncode}):\n" + "\n".join(tail))
    return m


def sync() -> None:
    """Flush dirty pages so they are not written back during the next measured command."""
    os.sync()


# --------------------------------------------------------------------------------------------
# Corpus: build, warm, change, fingerprint
# --------------------------------------------------------------------------------------------
def ensure_default_corpus(work: Path, source: Path = DEFAULT_SOURCE) -> Path:
    """Copy site-packages once into the work dir, so later pip installs cannot change it."""
    corpus = work / "corpus"
    stamp = work / "corpus.done"
    if corpus.is_dir() and stamp.exists():
        return corpus
    if not source.is_dir():
        raise SystemExit(f"default corpus source {source} not found: pass --corpus DIR")
    shutil.rmtree(corpus, ignore_errors=True)
    partial = work / "corpus.partial"
    shutil.rmtree(partial, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    log(f"copying {source} -> {corpus} (once)")
    subprocess.run(["cp", "-a", str(source), str(partial)], check=True)
    partial.rename(corpus)
    stamp.write_text(json.dumps({"source": str(source), "copied": now_iso()}) + "\n")
    return corpus


def iter_tree(root: Path) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """Every entry below `root` as (relative path, DirEntry), sorted, symlinks not followed."""
    stack = [""]
    while stack:
        rel = stack.pop()
        with os.scandir(root / rel if rel else root) as it:
            entries = sorted(it, key=lambda e: e.name)
        for de in entries:
            child = f"{rel}/{de.name}" if rel else de.name
            yield child, de
            if de.is_dir(follow_symlinks=False):
                stack.append(child)


def warm(root: Path) -> tuple[int, int]:
    """Read every file once so the tree is hot in the page cache for the tool that follows."""
    files = nbytes = 0
    buf = bytearray(1 << 20)
    for _rel, de in iter_tree(root):
        if de.is_file(follow_symlinks=False):
            with open(de.path, "rb", buffering=0) as fh:
                while n := fh.readinto(buf):
                    nbytes += n
            files += 1
    return files, nbytes


Manifest = dict[str, tuple[object, ...]]


def manifest(root: Path) -> Manifest:
    """Path -> (kind, size, sha1, mtime_ns) for files, ("l", target) for links, ("d",) for dirs.

    Directory mtimes are left out on purpose: restoring a child touches its parent, and the
    tools differ in whether they fix that afterwards; file content is what must be equal.
    """
    out: Manifest = {}
    for rel, de in iter_tree(root):
        if de.is_symlink():
            out[rel] = ("l", os.readlink(de.path))
        elif de.is_dir(follow_symlinks=False):
            out[rel] = ("d",)
        elif de.is_file(follow_symlinks=False):
            st = de.stat(follow_symlinks=False)
            with open(de.path, "rb") as fh:
                digest = hashlib.file_digest(fh, "sha1").hexdigest()
            out[rel] = ("f", st.st_size, digest, st.st_mtime_ns)
    return out


def manifest_digest(m: Manifest) -> str:
    """One hash of a whole tree (content only), to prove every tool saw the same tree."""
    h = hashlib.sha256()
    for rel in sorted(m):
        h.update(json.dumps([rel, list(m[rel][:3])]).encode())
    return h.hexdigest()


@dataclass
class Verification:
    """Outcome of comparing a restored tree with the tree that was backed up."""

    ok: bool
    entries: int
    missing: int
    extra: int
    content_diff: int
    mtime_diff: int
    examples: list[str] = field(default_factory=list)


def compare(expected: Manifest, restored: Manifest) -> Verification:
    """Structure and file content must match; differing file mtimes are counted, not fatal."""
    missing = sorted(set(expected) - set(restored))
    extra = sorted(set(restored) - set(expected))
    content = []
    mtimes = 0
    for rel in sorted(set(expected) & set(restored)):
        e, r = expected[rel], restored[rel]
        if e[:3] != r[:3]:
            content.append(rel)
        elif e[0] == "f" and e[3] != r[3]:
            mtimes += 1
    examples = [f"missing {p}" for p in missing[:3]] + [f"extra {p}" for p in extra[:3]]
    examples += [f"differs {p}" for p in content[:3]]
    return Verification(
        ok=not (missing or extra or content),
        entries=len(expected),
        missing=len(missing),
        extra=len(extra),
        content_diff=len(content),
        mtime_diff=mtimes,
        examples=examples,
    )


@dataclass
class ChangeSet:
    """What `apply_changes` did; identical for every tool given the same corpus and seed."""

    files_before: int
    modified: int
    modified_bytes: int
    appended: int
    overwritten: int
    added: int
    added_bytes: int
    deleted: int
    bytes_written: int


def apply_changes(tree: Path, seed: int, fraction: float) -> ChangeSet:
    """Deterministically change ~`fraction` of the files, add and delete a few.

    Modified files get an mtime one hour after their old one (instead of "now") so that the
    resulting trees are identical byte for byte *and* in metadata across tools, and every tool's
    change detection (size/mtime/ctime) sees them as changed.
    """
    rng = random.Random(seed)
    files = sorted(rel for rel, de in iter_tree(tree) if de.is_file(follow_symlinks=False))
    dirs = sorted(rel for rel, de in iter_tree(tree) if de.is_dir(follow_symlinks=False))
    n_mod = max(1, round(len(files) * fraction))
    n_few = max(3, round(len(files) * fraction / 20))  # ~0.1% added, ~0.1% deleted
    picked = rng.sample(files, min(len(files), n_mod + n_few))
    to_modify, to_delete = picked[:n_mod], picked[n_mod:]
    cs = ChangeSet(len(files), 0, 0, 0, 0, 0, 0, 0, 0)
    for rel in to_modify:
        path = tree / rel
        st = path.stat()
        n = rng.randint(16, 4096)
        payload = rng.randbytes(n)
        if st.st_size < n or rng.random() < 0.5:
            with open(path, "ab") as fh:
                fh.write(payload)
            cs.appended += 1
        else:
            offset = rng.randrange(0, st.st_size - n + 1)
            with open(path, "r+b") as fh:
                fh.seek(offset)
                fh.write(payload)
            cs.overwritten += 1
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 3600 * 10**9))
        cs.modified += 1
        cs.modified_bytes += st.st_size + n
        cs.bytes_written += n
    for rel in to_delete:
        (tree / rel).unlink()
        cs.deleted += 1
    for i in range(n_few):
        parent = tree / rng.choice(dirs) if dirs else tree
        size = rng.choice((0, 100, 4096, 64 * 1024, 700 * 1024, 3 * MIB))
        path = parent / f"bench-added-{i:04d}.bin"
        path.write_bytes(rng.randbytes(size))
        os.utime(path, ns=(1_700_000_000 * 10**9 + i, 1_700_000_000 * 10**9 + i))
        cs.added += 1
        cs.added_bytes += size
        cs.bytes_written += size
    return cs


def copy_tree(src: Path, dst: Path) -> None:
    """`cp -a`: keeps mtimes and modes, and symlinks as links."""
    shutil.rmtree(dst, ignore_errors=True)
    dst.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)


MetaManifest = dict[str, tuple[object, ...]]


def meta_manifest(root: Path) -> MetaManifest:
    """Path -> (kind, size, mtime_ns) or ("l", target): a stat-only view, cheap to compare."""
    out: MetaManifest = {}
    for rel, de in iter_tree(root):
        if de.is_symlink():
            out[rel] = ("l", os.readlink(de.path))
        elif de.is_dir(follow_symlinks=False):
            out[rel] = ("d",)
        else:
            st = de.stat(follow_symlinks=False)
            out[rel] = ("f", st.st_size, st.st_mtime_ns)
    return out


def revert_tree(tree: Path, corpus: Path, want: MetaManifest) -> int:
    """Make `tree` equal to `corpus` again by undoing only what differs; returns paths fixed.

    Why not delete the tree and copy it afresh: on this machine's journal-less ext4, creating
    files within ~5 minutes of deleting many others is up to 4x slower in the kernel (inode
    allocation skips "recently deleted" inodes one buffer lookup at a time: `recently_deleted`
    in fs/ext4/ialloc.c). A fresh 55k-file copy per tool would make the next measured restore
    pay for it. Undoing the change set touches ~1,200 files instead.
    """
    have = meta_manifest(tree)
    fixed = 0
    for rel in sorted(set(have) - set(want), key=lambda r: r.count("/"), reverse=True):
        path = tree / rel
        if have[rel][0] == "d":
            shutil.rmtree(path)
        else:
            path.unlink()
        fixed += 1
    for rel in sorted(want, key=lambda r: r.count("/")):
        if have.get(rel) == want[rel]:
            continue
        src, dst = corpus / rel, tree / rel
        if want[rel][0] == "d":
            dst.mkdir(exist_ok=True)
            shutil.copystat(src, dst)
        elif want[rel][0] == "l":
            if dst.is_symlink() or dst.exists():
                dst.unlink()
            os.symlink(os.readlink(src), dst)
        else:
            shutil.copy2(src, dst)  # rewrites the same inode: content, mode and mtime
        fixed += 1
    return fixed


def du_bytes(path: Path) -> int:
    """Apparent size of everything below `path` (what the store really holds)."""
    if not path.exists():
        return 0
    out = subprocess.run(["du", "-sb", str(path)], check=True, capture_output=True, text=True)
    return int(out.stdout.split()[0])


# --------------------------------------------------------------------------------------------
# Tools
# --------------------------------------------------------------------------------------------
@dataclass
class ToolEnv:
    """Where one tool's run keeps its repository, caches and temp files."""

    base: Path
    repo: Path
    cache: Path
    tmp: Path
    log: Path


class Tool:
    """How to drive one backup program. Commands run from `cwd` with `env`."""

    name = ""

    def available(self) -> bool:
        raise NotImplementedError

    def version(self) -> str:
        raise NotImplementedError

    def env(self, te: ToolEnv) -> dict[str, str]:
        env = dict(os.environ)
        env["TMPDIR"] = str(te.tmp)
        env["LC_ALL"] = "C.UTF-8"
        return env

    def init_cmd(self, te: ToolEnv) -> list[str]:
        raise NotImplementedError

    def backup_cmd(self, te: ToolEnv, tree: Path, label: str) -> tuple[list[str], Path]:
        raise NotImplementedError

    def restore_cmd(self, te: ToolEnv, target: Path, label: str) -> tuple[list[str], Path]:
        raise NotImplementedError

    def notes(self) -> str:
        return ""


class Restic(Tool):
    """restic: default repository v2 (zstd `auto`), AES-256 + Poly1305, scrypt KDF."""

    name = "restic"
    exe = "restic"

    def available(self) -> bool:
        return shutil.which(self.exe) is not None

    def version(self) -> str:
        return _first_line([self.exe, "version"])

    def env(self, te: ToolEnv) -> dict[str, str]:
        env = super().env(te)
        env.update(RESTIC_PASSWORD=PASSPHRASE, RESTIC_CACHE_DIR=str(te.cache))
        env.pop("RESTIC_REPOSITORY", None)
        return env

    def init_cmd(self, te: ToolEnv) -> list[str]:
        return [self.exe, "-r", str(te.repo), "init"]

    def backup_cmd(self, te: ToolEnv, tree: Path, label: str) -> tuple[list[str], Path]:
        # "." from inside the tree: the snapshot holds the tree's content at its root.
        return [
            self.exe,
            "-r",
            str(te.repo),
            "backup",
            ".",
            "--host",
            "bench",
            "--tag",
            label,
        ], tree

    def restore_cmd(self, te: ToolEnv, target: Path, label: str) -> tuple[list[str], Path]:
        return [self.exe, "-r", str(te.repo), "restore", "latest", "--target", str(target)], te.base


class Borg(Tool):
    """borg 1.2: `repokey-blake2` (AES-256-CTR + keyed BLAKE2b), default lz4 compression."""

    name = "borg"
    exe = "borg"

    def available(self) -> bool:
        return shutil.which(self.exe) is not None

    def version(self) -> str:
        return _first_line([self.exe, "--version"])

    def env(self, te: ToolEnv) -> dict[str, str]:
        env = super().env(te)
        env.update(
            BORG_PASSPHRASE=PASSPHRASE,
            BORG_BASE_DIR=str(te.cache),
            BORG_RELOCATED_REPO_ACCESS_IS_OK="yes",
            BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="no",
        )
        return env

    def init_cmd(self, te: ToolEnv) -> list[str]:
        return [self.exe, "init", "--encryption=repokey-blake2", str(te.repo)]

    def backup_cmd(self, te: ToolEnv, tree: Path, label: str) -> tuple[list[str], Path]:
        return [self.exe, "create", f"{te.repo}::{label}", "."], tree

    def restore_cmd(self, te: ToolEnv, target: Path, label: str) -> tuple[list[str], Path]:
        # borg extracts into the current directory.
        return [self.exe, "extract", f"{te.repo}::{label}"], target


class Kloset(Tool):
    """kloset: the real CLI when it has the verbs, else the engine driver (flagged in reports)."""

    name = "kloset"

    def __init__(self, driver: str = "auto", kdf_memory_kib: int | None = None) -> None:
        self.kdf_memory_kib = kdf_memory_kib
        self.exe = shutil.which("kloset") or ""
        if driver == "auto":
            driver = "cli" if self._cli_ready() else "engine"
        self.driver = driver
        if driver == "cli":
            if not self.exe:
                raise SystemExit("kloset CLI not on PATH (pip install -e .)")
            self.prefix = [self.exe]
        else:
            self.prefix = [sys.executable, str(HERE / "kloset_driver.py")]

    def _cli_ready(self) -> bool:
        if not self.exe:
            return False
        for verb in ("create", "backup", "restore"):
            res = subprocess.run(
                [self.exe, "at", "/nonexistent-kloset-probe", verb, "--help"],
                capture_output=True,
                text=True,
            )
            if res.returncode != 0:
                return False
        return True

    def available(self) -> bool:
        return True

    def version(self) -> str:
        try:
            from importlib.metadata import version

            ver = version("prefect-kloset")
        except Exception:  # noqa: BLE001 - not installed: still benchmarkable from the tree
            ver = "?"
        rev = _first_line(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"])
        dirty = subprocess.run(
            [
                "git",
                "-C",
                str(REPO_ROOT),
                "status",
                "--porcelain",
                "--untracked-files=no",
                "kloset",
            ],
            capture_output=True,
            text=True,
        ).stdout.strip()
        via = "CLI" if self.driver == "cli" else "engine driver (CLI verbs missing)"
        return f"kloset {ver} (git {rev}{'+dirty' if dirty else ''}), via {via}"

    def env(self, te: ToolEnv) -> dict[str, str]:
        env = super().env(te)
        env.update(
            KLOSET_PASSPHRASE=PASSPHRASE,
            XDG_CACHE_HOME=str(te.cache),
            PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])),
        )
        return env

    def init_cmd(self, te: ToolEnv) -> list[str]:
        cmd = [*self.prefix, "at", str(te.repo), "create"]
        if self.kdf_memory_kib:
            cmd += ["--kdf-memory-kib", str(self.kdf_memory_kib)]
        return cmd

    def backup_cmd(self, te: ToolEnv, tree: Path, label: str) -> tuple[list[str], Path]:
        return [*self.prefix, "at", str(te.repo), "backup", str(tree)], te.base

    def restore_cmd(self, te: ToolEnv, target: Path, label: str) -> tuple[list[str], Path]:
        return [*self.prefix, "at", str(te.repo), "restore", "-to", str(target), "latest"], te.base

    def notes(self) -> str:
        return "" if self.driver == "cli" else "kloset ran through bench/kloset_driver.py"


def _first_line(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return out.strip().splitlines()[0] if out.strip() else "?"


# --------------------------------------------------------------------------------------------
# One tool, one repetition
# --------------------------------------------------------------------------------------------
@dataclass
class ToolRun:
    """Everything measured for one tool in one repetition."""

    tool: str
    phases: dict[str, Measurement]
    store_first: int
    store_final: int
    cache_final: int
    tree_digest: str
    verification: Verification


def bench_tool(
    tool: Tool, corpus: Path, work: Path, rep: int, args: argparse.Namespace, want: MetaManifest
) -> tuple[ToolRun, ChangeSet]:
    """Pristine tree, fresh repo: first backup, change set, incremental, restore, verify.

    Nothing big is deleted here (see `revert_tree`): restore targets are parked under
    `work/restores` and removed at the end of the whole run.
    """
    base = work / "runs" / f"{tool.name}-{rep}"
    shutil.rmtree(base, ignore_errors=True)
    te = ToolEnv(base, base / "repo", base / "cache", base / "tmp", base / "commands.log")
    for d in (te.cache, te.tmp):
        d.mkdir(parents=True)
    tree = work / "tree"  # one path for every tool, so absolute paths in metadata are equal
    target = work / "restores" / f"{tool.name}-{rep}"
    shutil.rmtree(target, ignore_errors=True)
    env = tool.env(te)

    log(f"[{tool.name} #{rep}] preparing tree")
    if tree.is_dir():
        revert_tree(tree, corpus, want)
    else:
        copy_tree(corpus, tree)
    if meta_manifest(tree) != want:
        raise RuntimeError(f"{tree} differs from the corpus after reverting it")
    sync()
    warm(tree)

    def measure(cmd: list[str], cwd: Path) -> Measurement:
        if args.quiet_cores > 0:
            load = wait_for_quiet(args.quiet_cores, args.quiet_timeout)
            if load >= args.quiet_cores:
                log(f"machine still busy ({load:.2f} cores used by others); measuring anyway")
        return run_measured(cmd, cwd=cwd, env=env, log=te.log)

    phases: dict[str, Measurement] = {}
    phases["init"] = run_measured(tool.init_cmd(te), cwd=base, env=env, log=te.log)
    sync()

    cmd, cwd = tool.backup_cmd(te, tree, "first")
    log(f"[{tool.name} #{rep}] first backup")
    phases["first"] = measure(cmd, cwd)
    sync()
    store_first = du_bytes(te.repo)
    log(
        f"[{tool.name} #{rep}] first backup {phases['first'].wall_s:.1f}s, "
        f"store {store_first / MIB:.0f} MiB"
    )

    changes = apply_changes(tree, args.seed, args.change_fraction)
    sync()
    warm(tree)
    expected = manifest(tree)

    cmd, cwd = tool.backup_cmd(te, tree, "second")
    log(f"[{tool.name} #{rep}] incremental backup")
    phases["incremental"] = measure(cmd, cwd)
    sync()
    store_final = du_bytes(te.repo)
    log(f"[{tool.name} #{rep}] incremental {phases['incremental'].wall_s:.1f}s")

    target.mkdir(parents=True)
    cmd, cwd = tool.restore_cmd(te, target, "second")
    log(f"[{tool.name} #{rep}] restore")
    phases["restore"] = measure(cmd, cwd)
    sync()
    log(f"[{tool.name} #{rep}] restore {phases['restore'].wall_s:.1f}s; verifying")
    verification = compare(expected, manifest(target))
    if not verification.ok:
        log(f"[{tool.name} #{rep}] VERIFY FAILED: {verification}")

    run = ToolRun(
        tool=tool.name,
        phases=phases,
        store_first=store_first,
        store_final=store_final,
        cache_final=du_bytes(te.cache),
        tree_digest=manifest_digest(expected),
        verification=verification,
    )
    if not args.keep:
        # A repository is a few hundred files at most: deleting it now costs nothing later.
        shutil.rmtree(te.repo, ignore_errors=True)
        shutil.rmtree(te.cache, ignore_errors=True)
    return run, changes


def cleanup(work: Path, keep: bool) -> None:
    """Remove the working tree and parked restores, after all measurements."""
    if keep:
        return
    shutil.rmtree(work / "restores", ignore_errors=True)
    shutil.rmtree(work / "tree", ignore_errors=True)


def check_space(work: Path, corpus_bytes: int, copies: int) -> None:
    """Fail early rather than fill the disk halfway through (restores are kept to the end)."""
    need = int(corpus_bytes * 1.2) * copies
    free = shutil.disk_usage(work).free
    if free < need:
        raise SystemExit(
            f"need ~{need / 2**30:.1f} GiB free in {work} for {copies} copies of the corpus, "
            f"have {free / 2**30:.1f} GiB (use fewer --tools/--repeat or another --work)"
        )


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------
@dataclass
class Summary:
    """Per tool: median wall/CPU times and worst-case memory over the repetitions."""

    tool: str
    wall: dict[str, float]
    wall_range: dict[str, tuple[float, float]]
    user: dict[str, float]
    sys: dict[str, float]
    maxrss_mib: dict[str, float]
    tree_pss_mib: dict[str, float]
    store_first: int
    store_final: int
    cache_final: int
    verified: bool
    mtime_diff: int
    runs: int
    background: dict[str, float]


def summarize(runs: list[ToolRun]) -> Summary:
    """Median times (robust to one noisy run), maximum memory (the budget is a maximum)."""
    tool = runs[0].tool
    wall, rng, user, sys_, rss, pss, bg = {}, {}, {}, {}, {}, {}, {}
    for ph in MEASURED:
        walls = [r.phases[ph].wall_s for r in runs]
        wall[ph] = statistics.median(walls)
        rng[ph] = (min(walls), max(walls))
        user[ph] = statistics.median(r.phases[ph].user_s for r in runs)
        sys_[ph] = statistics.median(r.phases[ph].sys_s for r in runs)
        rss[ph] = max(r.phases[ph].maxrss_kib for r in runs) / 1024
        pss[ph] = max(r.phases[ph].tree_pss_kib for r in runs) / 1024
        bg[ph] = max(r.phases[ph].background_cores for r in runs)
    return Summary(
        tool=tool,
        wall=wall,
        wall_range=rng,
        user=user,
        sys=sys_,
        maxrss_mib=rss,
        tree_pss_mib=pss,
        store_first=int(statistics.median(r.store_first for r in runs)),
        store_final=int(statistics.median(r.store_final for r in runs)),
        cache_final=int(statistics.median(r.cache_final for r in runs)),
        verified=all(r.verification.ok for r in runs),
        mtime_diff=max(r.verification.mtime_diff for r in runs),
        runs=len(runs),
        background=bg,
    )


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "-"


PHASE_LABEL = {"first": "first backup", "incremental": "incremental backup", "restore": "restore"}


def render_table(summaries: list[Summary]) -> str:
    """Markdown table: one row per measure, one column per tool, then kloset/other ratios."""
    by = {s.tool: s for s in summaries}
    tools = [s.tool for s in summaries]
    others = [t for t in tools if t != "kloset"] if "kloset" in by else []
    head = ["measure", *tools] + [f"kloset/{o}" for o in others]
    rows: list[list[str]] = []

    def row(label: str, values: dict[str, float], fmt: str, ratios: bool = True) -> None:
        cells = [label] + [fmt.format(values[t]) for t in tools]
        cells += [_ratio(values["kloset"], values[o]) if ratios else "" for o in others]
        rows.append(cells)

    for ph in MEASURED:
        row(f"{PHASE_LABEL[ph]}: wall time (s)", {t: by[t].wall[ph] for t in tools}, "{:.2f}")
    for ph in MEASURED:
        row(f"{PHASE_LABEL[ph]}: user CPU (s)", {t: by[t].user[ph] for t in tools}, "{:.2f}")
    for ph in MEASURED:
        row(f"{PHASE_LABEL[ph]}: system CPU (s)", {t: by[t].sys[ph] for t in tools}, "{:.2f}")
    for ph in MEASURED:
        row(
            f"{PHASE_LABEL[ph]}: peak RSS, largest process (MiB)",
            {t: by[t].maxrss_mib[ph] for t in tools},
            "{:.0f}",
        )
    for ph in MEASURED:
        row(
            f"{PHASE_LABEL[ph]}: peak PSS, whole process tree (MiB)",
            {t: by[t].tree_pss_mib[ph] for t in tools},
            "{:.0f}",
        )
    row(
        "store size after first backup (MiB)", {t: by[t].store_first / MIB for t in tools}, "{:.1f}"
    )
    row("store size after incremental (MiB)", {t: by[t].store_final / MIB for t in tools}, "{:.1f}")
    row(
        "added by incremental (MiB)",
        {t: (by[t].store_final - by[t].store_first) / MIB for t in tools},
        "{:.2f}",
    )
    row(
        "local cache outside the store (MiB)", {t: by[t].cache_final / MIB for t in tools}, "{:.1f}"
    )
    for ph in MEASURED:
        row(
            f"{PHASE_LABEL[ph]}: CPU used by other processes meanwhile (cores, max)",
            {t: by[t].background[ph] for t in tools},
            "{:.2f}",
            ratios=False,
        )
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    verified = [
        f"{s.tool}: {'identical' if s.verified else 'MISMATCH'}"
        + (f" ({s.mtime_diff} file mtimes differ)" if s.mtime_diff else "")
        for s in summaries
    ]
    lines.append("")
    lines.append(
        "Restore verified against the backed-up tree (paths, types, sizes, SHA-1 of "
        "content, link targets): " + "; ".join(verified) + "."
    )
    return "\n".join(lines)


def render_targets(summaries: list[Summary]) -> str:
    """The issue's targets, checked: time <= restic's on all three, peak memory < 512 MiB."""
    by = {s.tool: s for s in summaries}
    if "kloset" not in by:
        return ""
    k = by["kloset"]
    out = []
    if "restic" in by:
        r = by["restic"]
        for ph in MEASURED:
            kw, rw = k.wall[ph], r.wall[ph]
            out.append(
                f"- {PHASE_LABEL[ph]} time <= restic: **{'met' if kw <= rw else 'NOT met'}** "
                f"({kw:.2f} s vs {rw:.2f} s, ratio {_ratio(kw, rw)})"
            )
    worst_rss = max(k.maxrss_mib.values())
    worst_pss = max(k.tree_pss_mib.values())
    ok = worst_rss < 512 and worst_pss < 512
    out.append(
        f"- peak memory < 512 MiB: **{'met' if ok else 'NOT met'}** (largest process "
        f"{worst_rss:.0f} MiB, whole tree {worst_pss:.0f} MiB PSS)"
    )
    return "\n".join(out)


def machine_info(work: Path) -> dict[str, str]:
    """What the numbers depend on, recorded next to them."""
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / MIB:.1f} GiB"
    fstype = _first_line(["stat", "-f", "-c", "%T", str(work)])
    return {
        "cpu": cpu,
        "cores": str(len(os.sched_getaffinity(0))),
        "memory": mem,
        "kernel": platform.release(),
        "filesystem": f"{fstype} (work dir {work})",
        "python": platform.python_version(),
    }


def render_section(
    summaries: list[Summary],
    changes: ChangeSet,
    corpus_desc: dict[str, object],
    versions: dict[str, str],
    machine: dict[str, str],
    args: argparse.Namespace,
    notes: list[str],
) -> str:
    """The generated part of docs/BENCHMARKS.md, between the markers."""
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"### Results of {date}",
        "",
        f"Command: `python bench/run.py {' '.join(args.argv)}`".rstrip(),
        "",
        f"Machine: {machine['cores']} cores ({machine['cpu']}), {machine['memory']} RAM, "
        f"Linux {machine['kernel']}, {machine['filesystem']}, Python {machine['python']}.",
        "",
        "Tools: " + "; ".join(f"{versions[s.tool]}" for s in summaries) + ".",
        "",
        f"Corpus: {corpus_desc['desc']} -- {corpus_desc['files']} files, {corpus_desc['dirs']} "
        f"directories, {corpus_desc['bytes'] / MIB:.0f} MiB.",
        "",
        f"Change set (seed {args.seed}): {changes.modified} files modified "
        f"({changes.appended} appended to, {changes.overwritten} overwritten in place; "
        f"{changes.modified_bytes / MIB:.1f} MiB of files to re-read), {changes.added} added "
        f"({changes.added_bytes / MIB:.1f} MiB), {changes.deleted} deleted; "
        f"{changes.bytes_written / MIB:.2f} MiB of new bytes in total.",
        "",
        f"Repetitions: {summaries[0].runs} (times are medians, memory is the maximum).",
        "",
        render_table(summaries),
        "",
    ]
    targets = render_targets(summaries)
    if targets:
        lines += ["Targets (issue 2):", "", targets, ""]
    if summaries[0].runs > 1:
        lines.append(
            "Wall-time ranges (min-max): "
            + "; ".join(
                f"{s.tool} "
                + ", ".join(
                    f"{PHASE_LABEL[p]} {s.wall_range[p][0]:.2f}-{s.wall_range[p][1]:.2f}"
                    for p in MEASURED
                )
                for s in summaries
            )
            + "."
        )
        lines.append("")
    for n in notes:
        lines.append(f"Note: {n}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


DOC_TEMPLATE = """# Benchmarks

Generated section below is rewritten by `python bench/run.py --out docs/BENCHMARKS.md`.

{begin}
{end}
"""


def update_doc(path: Path, section: str) -> None:
    """Replace the text between the markers, leaving the hand-written rest of the file alone."""
    text = (
        path.read_text() if path.exists() else DOC_TEMPLATE.format(begin=BEGIN_MARK, end=END_MARK)
    )
    if BEGIN_MARK not in text or END_MARK not in text:
        text = text.rstrip() + f"\n\n## Results\n\n{BEGIN_MARK}\n{END_MARK}\n"
    pattern = re.compile(re.escape(BEGIN_MARK) + r".*?" + re.escape(END_MARK), re.S)
    new = pattern.sub(lambda _m: f"{BEGIN_MARK}\n{section}{END_MARK}", text, count=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new)


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------
def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--corpus",
        type=Path,
        help="directory to back up (default: a one-time copy "
        f"of {DEFAULT_SOURCE} in bench/.work/corpus); never modified",
    )
    p.add_argument("--tools", default="kloset,restic,borg", help="comma-separated, in run order")
    p.add_argument("--repeat", type=int, default=1, help="repetitions per tool (median reported)")
    p.add_argument("--out", type=Path, help="markdown file whose results section is regenerated")
    p.add_argument(
        "--work", type=Path, default=DEFAULT_WORK, help="scratch dir (default bench/.work)"
    )
    p.add_argument("--seed", type=int, default=20240601, help="seed of the change set")
    p.add_argument("--change-fraction", type=float, default=0.02, help="share of files modified")
    p.add_argument("--keep", action="store_true", help="keep repositories and caches afterwards")
    p.add_argument(
        "--kloset-driver",
        choices=("auto", "cli", "engine"),
        default="auto",
        help="run the kloset CLI, or bench/kloset_driver.py (engine API); auto = CLI if ready",
    )
    p.add_argument(
        "--kloset-kdf-memory-kib",
        type=int,
        default=None,
        help="Argon2id memory for `kloset create` (default: kloset's own default)",
    )
    p.add_argument(
        "--quiet-cores",
        type=float,
        default=0.25,
        help="before each measured command wait until other processes use fewer CPU "
        "cores than this (0 = do not wait)",
    )
    p.add_argument(
        "--quiet-timeout",
        type=float,
        default=300.0,
        help="longest wait for a quiet machine, seconds",
    )
    p.add_argument("--json", type=Path, help="also write raw measurements as JSON here")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def make_tools(names: list[str], args: argparse.Namespace) -> list[Tool]:
    tools: list[Tool] = []
    for name in names:
        if name == "kloset":
            tools.append(Kloset(args.kloset_driver, args.kloset_kdf_memory_kib))
        elif name == "restic":
            tools.append(Restic())
        elif name == "borg":
            tools.append(Borg())
        else:
            raise SystemExit(f"unknown tool {name!r} (known: kloset, restic, borg)")
    missing = [t.name for t in tools if not t.available()]
    if missing:
        raise SystemExit(f"not installed: {', '.join(missing)}")
    return tools


def describe_corpus(corpus: Path, default: bool) -> dict[str, object]:
    files = dirs = links = nbytes = 0
    for _rel, de in iter_tree(corpus):
        if de.is_symlink():
            links += 1
        elif de.is_dir(follow_symlinks=False):
            dirs += 1
        elif de.is_file(follow_symlinks=False):
            files += 1
            nbytes += de.stat(follow_symlinks=False).st_size
    desc = (
        f"a frozen copy of this machine's Python {platform.python_version()} site-packages "
        "(source, bytecode, shared libraries, a few large binaries)"
        if default
        else f"`{corpus}`"
    )
    return {"desc": desc, "files": files, "dirs": dirs, "links": links, "bytes": nbytes}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work: Path = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    tools = make_tools([t.strip() for t in args.tools.split(",") if t.strip()], args)
    corpus = args.corpus.resolve() if args.corpus else ensure_default_corpus(work)
    if not corpus.is_dir():
        raise SystemExit(f"corpus {corpus} is not a directory")
    if work == corpus or work.is_relative_to(corpus):
        raise SystemExit("the work directory must not be inside the corpus")
    corpus_desc = describe_corpus(corpus, args.corpus is None)
    log(f"corpus {corpus}: {corpus_desc['files']} files, {corpus_desc['bytes'] / MIB:.0f} MiB")
    versions = {t.name: t.version() for t in tools}
    for v in versions.values():
        log(v)

    leftovers = [p for p in (work / "restores", work / "tree") if p.exists()]
    if leftovers:
        log("removing leftovers of an earlier run (restores measured soon after may be slower)")
        for p in leftovers:
            shutil.rmtree(p, ignore_errors=True)
        sync()
    check_space(work, int(corpus_desc["bytes"]), len(tools) * args.repeat + 2)
    want = meta_manifest(corpus)

    runs: dict[str, list[ToolRun]] = {t.name: [] for t in tools}
    changes: ChangeSet | None = None
    try:
        for rep in range(args.repeat):
            for tool in tools:
                run, cs = bench_tool(tool, corpus, work, rep, args, want)
                runs[tool.name].append(run)
                if changes is not None and cs != changes:
                    raise RuntimeError("change set differs between tools: the benchmark is unfair")
                changes = cs
    finally:
        cleanup(work, args.keep)
    assert changes is not None

    digests = {r.tree_digest for rs in runs.values() for r in rs}
    if len(digests) != 1:
        raise RuntimeError("tools backed up different trees: the benchmark is not fair")

    summaries = [summarize(runs[t.name]) for t in tools]
    notes = [n for n in (t.notes() for t in tools) if n]
    section = render_section(
        summaries, changes, corpus_desc, versions, machine_info(work), args, notes
    )
    print(section)
    if args.out:
        update_doc(args.out, section)
        log(f"wrote {args.out}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {t: [asdict(r) for r in rs] for t, rs in runs.items()}, indent=1, default=str
            )
        )
    return 0 if all(s.verified for s in summaries) else 1


if __name__ == "__main__":
    sys.exit(main())
