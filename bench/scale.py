"""How kloset's cost grows with the work: synthetic trees of many small files, and a big store.

Usage::

    python bench/scale.py [--files 10000,100000,1000000] [--blobs 10000000] [--out FILE]

For each tree size (`--files`), a synthetic tree of that many small files (100 files a
folder, 100 folders a folder, 200 B - 4 KiB each, every file different) is made once under the
work directory and kept for later runs. Then, into a fresh store (default settings, encryption
on), each measured as a separate `kloset` process (wall time and peak RSS of the largest
process; kloset forks chunking workers, so the whole tree's peak PSS too):

* **first backup** of the tree; **unchanged incremental** (the same command again);
* **ls** of the snapshot's root folder; **restore of one file** into an empty folder;
* **store open**: open the store and load its index (`bench/kloset_driver.py open`).

`--blobs N` then adds a **generated store**: a real store with a real snapshot of the smallest
tree, plus index files naming N more blobs in packs that are not there (as a store of
N x 1 MiB = 10 TB for 10 million would have them), so opening it, looking things up in it
and backing up into it cost what they cost at that size. Its data cannot be read: `check`
would report the missing packs; nothing here reads them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from measure import Measurement, log, run_measured, sync  # noqa: E402
from report import update_doc  # noqa: E402
from tools import PASSPHRASE, Kloset, ToolEnv  # noqa: E402

BEGIN = "<!-- BEGIN SCALE RESULTS (bench/scale.py --out) -->"
END = "<!-- END SCALE RESULTS -->"
OPS = (
    "first backup",
    "unchanged incremental",
    "ls of a snapshot",
    "restore one file",
    "store open",
)
BLOBS_PER_INDEX = 10_000  # one index file per backup batch of ~10k small files
BLOBS_PER_PACK = 16  # 16 MiB packs of 1 MiB chunks


def make_tree(root: Path, files: int) -> Path:
    """`files` small, distinct files, 100 a folder; made once, reused (`.done` stamp)."""
    tree = root / f"tree-{files}"
    stamp = root / f"tree-{files}.done"
    if tree.is_dir() and stamp.exists():
        return tree
    shutil.rmtree(tree, ignore_errors=True)
    log(f"making a tree of {files} files in {tree} (once)")
    started = time.monotonic()
    for i in range(files):
        folder = tree / f"d{i // 10_000:03d}" / f"e{i // 100 % 100:02d}"
        if i % 100 == 0:
            folder.mkdir(parents=True, exist_ok=True)
        line = b"file %08d of a synthetic tree, line %%d\n" % i
        size = 200 + (i * 7919) % 3900
        body = b"".join(line % n for n in range(size // len(line) + 1))[:size]
        with open(folder / f"f{i % 100:02d}.txt", "wb") as fh:
            fh.write(body)
        if i and i % 100_000 == 0:
            log(f"  {i} files, {time.monotonic() - started:.0f} s")
    stamp.write_text(f"{files}\n")
    return tree


def generate_index(repo_dir: Path, blobs: int) -> int:
    """Add index files naming `blobs` random blobs in absent packs; returns files written."""
    from kloset.index import LOC, IndexRun, encode_run, id_prefix, seal_index
    from kloset.locations import open_storage
    from kloset.repository import Repository

    repo = Repository.open(open_storage(str(repo_dir)), PASSPHRASE)
    chunk, sealed_len = 1 << 20, (1 << 20) + 29
    pack_size = BLOBS_PER_PACK * sealed_len + 1024
    written = 0
    for start in range(0, blobs, BLOBS_PER_INDEX):
        n = min(BLOBS_PER_INDEX, blobs - start)
        raw = os.urandom(32 * n)
        ids = sorted((raw[i : i + 32] for i in range(0, len(raw), 32)), key=id_prefix)
        locs = b"".join(
            LOC.pack(i // BLOBS_PER_PACK, i % BLOBS_PER_PACK * sealed_len, sealed_len, chunk, 0)
            for i in range(n)
        )
        packs = [(os.urandom(32), pack_size) for _ in range((n - 1) // BLOBS_PER_PACK + 1)]
        name, sealed = seal_index(repo.cipher, encode_run(IndexRun(packs, b"".join(ids), locs)), 3)
        repo.storage.write(name, sealed)
        written += 1
    return written


def measure_ops(kloset: Kloset, te: ToolEnv, tree: Path, probe: str) -> dict[str, Measurement]:
    """The five operations, each a process of its own, on the store at `te.repo`."""
    env = kloset.env(te)
    driver = [sys.executable, str(HERE / "kloset_driver.py"), "at", str(te.repo)]

    def run(cmd: list[str]) -> Measurement:
        m = run_measured(cmd, cwd=te.base, env=env, log=te.log)
        sync()
        return m

    out: dict[str, Measurement] = {}
    backup, _cwd = kloset.backup_cmd(te, tree, "")
    out["first backup"] = run(backup)
    out["unchanged incremental"] = run(backup)
    out["ls of a snapshot"] = run([*kloset.prefix, "at", str(te.repo), "ls", "latest"])
    target = te.base / "one-file"
    target.mkdir()
    restore = [*kloset.prefix, "at", str(te.repo), "restore", "-to", str(target), probe]
    out["restore one file"] = run(restore)
    out["store open"] = run([*driver, "open"])
    return out


def fresh_store(kloset: Kloset, base: Path) -> ToolEnv:
    shutil.rmtree(base, ignore_errors=True)
    te = ToolEnv(base, base / "repo", base / "cache", base / "tmp", base / "commands.log")
    for d in (te.cache, te.tmp):
        d.mkdir(parents=True)
    run_measured(kloset.init_cmd(te), cwd=base, env=kloset.env(te), log=te.log)
    return te


def table(rows: dict[str, dict[str, Measurement]]) -> str:
    head = "| operation | " + " | ".join(rows) + " |"
    lines = [head, "|" + "---|" * (len(rows) + 1)]
    for op in OPS:
        cells = []
        for ms in rows.values():
            m = ms[op]
            cells.append(
                f"{m.wall_s:.2f} s, {m.maxrss_kib / 1024:.0f} MiB"
                + (f" ({m.tree_pss_kib / 1024:.0f} PSS)" if op == "first backup" else "")
            )
        lines.append(f"| {op} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--files", default="10000,100000", help="tree sizes, comma-separated")
    p.add_argument("--blobs", type=int, default=0, help="blobs of the generated store (0: none)")
    p.add_argument("--work", type=Path, default=HERE / ".work" / "scale")
    p.add_argument("--out", type=Path, help="markdown file whose scale section is regenerated")
    p.add_argument("--keep", action="store_true", help="keep the stores afterwards")
    p.add_argument("--kloset-kdf-memory-kib", type=int, help="Argon2id memory (default: kloset's)")
    args = p.parse_args(argv)
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    kloset = Kloset("cli", args.kloset_kdf_memory_kib)
    sizes = [int(s) for s in args.files.split(",") if s.strip()]
    rows: dict[str, dict[str, Measurement]] = {}
    for files in sizes:
        tree = make_tree(work, files)
        te = fresh_store(kloset, work / f"store-{files}")
        log(f"{files} files: measuring")
        rows[f"{files:,} files"] = measure_ops(kloset, te, tree, "latest:/d000/e00/f00.txt")
        log(", ".join(f"{op} {m.wall_s:.1f}s" for op, m in rows[f"{files:,} files"].items()))
        if not args.keep:
            shutil.rmtree(te.base, ignore_errors=True)
    if args.blobs:
        files = min(sizes) if sizes else 10_000
        tree = make_tree(work, files)
        te = fresh_store(kloset, work / "store-generated")
        log(f"generated store: backing up {files} files, then adding {args.blobs} blobs")
        backup, _cwd = kloset.backup_cmd(te, tree, "")
        run_measured(backup, cwd=te.base, env=kloset.env(te), log=te.log)
        started = time.monotonic()
        n_index = generate_index(te.repo, args.blobs)
        log(f"  {n_index} index files in {time.monotonic() - started:.0f} s")
        # "first backup" here backs up a second copy of the tree under a new path: new
        # source, every chunk looked up in the 10M-blob index and found (deduplicated).
        copy = work / "tree-copy"
        if not copy.exists():
            shutil.copytree(tree, copy, symlinks=True)
        rows[f"store of {args.blobs:,} blobs"] = measure_ops(
            kloset, te, copy, "latest:/d000/e00/f00.txt"
        )
        if not args.keep:
            shutil.rmtree(te.base, ignore_errors=True)
    section = render(rows, args, kloset)
    print(section)
    if args.out:
        update_doc(args.out, section, BEGIN, END)
        log(f"wrote {args.out}")
    return 0


def render(rows: dict[str, dict[str, Measurement]], args: argparse.Namespace, k: Kloset) -> str:
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    cmd = f"python bench/scale.py --files {args.files}" + (
        f" --blobs {args.blobs}" if args.blobs else ""
    )
    return (
        f"### Scale results of {date}\n\nCommand: `{cmd}`; {k.version()}; "
        f"{len(os.sched_getaffinity(0))} cores. Each cell: wall time, peak RSS of the largest "
        "process (first backup: and the whole process tree's peak PSS, with the chunking "
        "workers).\n\n" + table(rows) + "\n"
    )


if __name__ == "__main__":
    sys.exit(main())
