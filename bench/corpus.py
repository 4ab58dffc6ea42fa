"""The corpus side of the benchmark: build, warm, change, revert and fingerprint a tree.

Every tool must see the byte-identical tree, hot in the page cache, with the same seeded change
set; the manifests here prove it and verify every restore.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import random
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from measure import MIB, log

DEFAULT_SOURCE = Path("/root/.pyenv/versions/3.11.7/lib/python3.11/site-packages")


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


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


def describe_corpus(corpus: Path, default: bool) -> dict[str, object]:
    """Counts and a one-line description of the corpus, for the report."""
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
