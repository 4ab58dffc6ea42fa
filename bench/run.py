"""Benchmark `kloset` against restic and borg on the same real-file corpus, in one run.

Usage::

    python bench/run.py [--corpus DIR] [--tools kloset,restic,borg] [--repeat N]
                        [--out docs/BENCHMARKS.md]

What it measures, per tool and side by side (issues 2 and 10):

1. first backup of the corpus into a fresh, encrypted repository;
2. incremental backup after a deterministic change set (a seeded ~2% of files appended to or
   overwritten in place, plus a few new and deleted files) -- every tool sees the identical tree;
3. unchanged re-run: the same backup again with nothing changed (the nightly job's usual case);
4. full restore of the latest snapshot into an empty directory, verified against the tree.

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
import json
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

from corpus import (
    DEFAULT_SOURCE,
    ChangeSet,
    MetaManifest,
    apply_changes,
    compare,
    copy_tree,
    describe_corpus,
    du_bytes,
    ensure_default_corpus,
    manifest,
    manifest_digest,
    meta_manifest,
    revert_tree,
    warm,
)
from measure import MIB, Measurement, log, run_measured, sync, wait_for_quiet
from report import ToolRun, machine_info, render_section, summarize, update_doc
from tools import Borg, Kloset, Restic, Tool, ToolEnv

HERE = Path(__file__).resolve().parent
DEFAULT_WORK = HERE / ".work"


# --------------------------------------------------------------------------------------------
# One tool, one repetition
# --------------------------------------------------------------------------------------------
def bench_tool(
    tool: Tool, corpus: Path, work: Path, rep: int, args: argparse.Namespace, want: MetaManifest
) -> tuple[ToolRun, ChangeSet]:
    """Pristine tree, fresh repo: first backup, change set, incremental, unchanged re-run,
    restore, verify.

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

    cmd, cwd = tool.backup_cmd(te, tree, "third")
    log(f"[{tool.name} #{rep}] unchanged re-run")
    phases["unchanged"] = measure(cmd, cwd)  # the nightly job when nothing changed
    sync()
    log(f"[{tool.name} #{rep}] unchanged re-run {phases['unchanged'].wall_s:.1f}s")

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
# Main
# --------------------------------------------------------------------------------------------
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
