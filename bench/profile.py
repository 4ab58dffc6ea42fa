"""Profile the kloset CLI on the benchmark's phases with py-spy, and say where the time goes.

Usage::

    pip install py-spy
    python bench/profile.py [--corpus DIR] [--phases first,incremental,restore] [--top 30]

Why a separate script: profiling slows the profiled process down, so its numbers must never mix
with `bench/run.py`'s. This one replays the same scenario (same corpus copy, same seeded change
set, same CLI commands) under ``py-spy record --subprocesses`` and prints, per phase, the
functions with the most inclusive and self samples across the main process and its forked
workers. The collapsed stacks stay in the work dir (``profile-<phase>.txt``) for flame graphs.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# The benchmark's own helpers, so the scenario is identical.
from corpus import apply_changes, copy_tree, ensure_default_corpus, warm  # noqa: E402
from measure import run_measured, sync  # noqa: E402
from run import DEFAULT_WORK  # noqa: E402
from tools import Kloset, ToolEnv  # noqa: E402


def _frame_key(frame: str) -> str:
    """'func (path/to/mod.py:12)' -> 'func (mod.py)': aggregate over lines of one function."""
    if " (" not in frame:
        return frame
    func, _, where = frame.partition(" (")
    return f"{func} ({where.split(':')[0].rsplit('/', 1)[-1].rstrip(')')})"


def summarize_collapsed(path: Path, rate: int, top: int) -> str:
    """Inclusive and self time per function from py-spy's collapsed ('raw') output."""
    incl: collections.Counter[str] = collections.Counter()
    self_: collections.Counter[str] = collections.Counter()
    procs: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        procs[frames[0][:80]] += n
        for key in {_frame_key(f) for f in frames[1:]}:
            incl[key] += n
        self_[_frame_key(frames[-1])] += n
    if not total:
        return "no samples"

    def fmt(counter: collections.Counter[str]) -> list[str]:
        return [
            f"  {n / rate:7.2f} s {100 * n / total:5.1f}%  {key}"
            for key, n in counter.most_common(top)
        ]

    lines = [f"{total / rate:.2f} s of samples (all processes and threads, busy only)"]
    lines += ["by process:"] + [f"  {n / rate:7.2f} s  {p}" for p, n in procs.most_common(6)]
    lines += ["inclusive:"] + fmt(incl) + ["self:"] + fmt(self_)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--corpus", type=Path)
    p.add_argument("--work", type=Path, default=DEFAULT_WORK)
    p.add_argument("--phases", default="first,incremental,unchanged,restore")
    p.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--seed", type=int, default=20240601)
    p.add_argument("--change-fraction", type=float, default=0.02)
    p.add_argument("--kloset-driver", choices=("auto", "cli", "engine"), default="auto")
    args = p.parse_args(argv)
    pyspy = shutil.which("py-spy")
    if not pyspy:
        raise SystemExit("py-spy not found: pip install py-spy")
    work = args.work.resolve()
    corpus = args.corpus.resolve() if args.corpus else ensure_default_corpus(work)
    phases = set(args.phases.split(","))
    tool = Kloset(args.kloset_driver)
    base = work / "profile"
    shutil.rmtree(base, ignore_errors=True)
    te = ToolEnv(base, base / "repo", base / "cache", base / "tmp", base / "commands.log")
    for d in (te.cache, te.tmp):
        d.mkdir(parents=True)
    env = tool.env(te)
    tree = work / "tree"
    copy_tree(corpus, tree)
    sync()
    warm(tree)
    run_measured(tool.init_cmd(te), cwd=base, env=env, log=te.log)

    def step(phase: str, cmd: list[str], cwd: Path) -> None:
        if phase not in phases:
            run_measured(cmd, cwd=cwd, env=env, log=te.log)
            return
        out = work / f"profile-{phase}.txt"
        full = [pyspy, "record", "--subprocesses", "--rate", str(args.rate), "--format", "raw",
                "--output", str(out), "--", *cmd]  # fmt: skip
        m = run_measured(full, cwd=cwd, env=env, log=te.log)
        print(f"\n== {phase}: {m.wall_s:.2f} s wall under py-spy, {m.user_s + m.sys_s:.2f} s CPU")
        print(summarize_collapsed(out, args.rate, args.top))

    cmd, cwd = tool.backup_cmd(te, tree, "first")
    step("first", cmd, cwd)
    apply_changes(tree, args.seed, args.change_fraction)
    sync()
    warm(tree)
    cmd, cwd = tool.backup_cmd(te, tree, "second")
    step("incremental", cmd, cwd)
    step("unchanged", cmd, cwd)
    target = base / "restore"
    target.mkdir()
    cmd, cwd = tool.restore_cmd(te, target, "second")
    step("restore", cmd, cwd)
    shutil.rmtree(tree, ignore_errors=True)
    shutil.rmtree(base, ignore_errors=True)
    os.sync()
    return 0


if __name__ == "__main__":
    sys.exit(main())
