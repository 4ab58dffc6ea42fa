"""Koofr as a source and a destination: `kloset` against `rclone copy`, through the emulator.

Usage::

    python bench/koofr.py [--files 1000] [--latency 0.02,0.1] [--repeat 3] [--out FILE]

Real Koofr cannot be reached from here, so the Koofr emulator (a real HTTP server on
127.0.0.1) stands in, with ``--latency`` seconds added to every request (20 ms: nearby;
100 ms: Koofr from far away; one table each): that latency, not bandwidth, is what makes a
cloud backup of many small files slow. The tree (default 1,000 files in 40 folders: mostly
documents of 2-200 KiB, a few photos of 1-4 MiB) is written straight into the emulator's
store, so seeding costs no requests. Then, side by side in each
round, with fresh stores and target folders:

* **backup from Koofr**: ``kloset at STORE backup @bench:/tree`` (a local encrypted store; KDF
  made cheap so the key derivation is not timed) vs ``rclone copy bench:/tree DIR`` (a plain
  copy to local disk, rclone's defaults: 4 transfers, 8 checkers);
* **unchanged re-run**: the same two commands again (kloset's incremental backup; rclone's
  copy that finds nothing to do). The emulator's counters show how many file downloads each made;
* **restore to Koofr**: ``kloset at STORE restore -to @bench:/restored latest`` vs
  ``rclone copy DIR bench:/uploaded``.

Both tools reach the emulator through the same rclone remote (kloset imports it with
``kloset source import --rclone-config``). Times are wall-clock medians; ratios are kloset/rclone.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from report import update_doc  # noqa: E402
from tools import compile_bytecode, python_env  # noqa: E402

from koofr_emulator import FaultRule, KoofrEmulator  # noqa: E402
from koofr_emulator.sample import write_file  # noqa: E402
from koofrfs.rclone import obscure  # noqa: E402

BEGIN = "<!-- BEGIN KOOFR RESULTS (bench/koofr.py --out) -->"
END = "<!-- END KOOFR RESULTS -->"
PASSPHRASE = "bench-passphrase-not-secret"
FAST_KDF = ["--kdf-memory-kib", "64", "--kdf-iterations", "1"]
PHASES = ("backup from Koofr", "unchanged re-run", "restore to Koofr")


def seed_tree(emu: KoofrEmulator, files: int, rng: random.Random) -> int:
    """Documents and a few photos under /tree; returns the bytes written."""
    total = 0
    folders = max(1, files // 25)
    for i in range(files):
        size = rng.randint(1 << 20, 4 << 20) if i % 50 == 0 else rng.randint(2 << 10, 200 << 10)
        text = i % 3 == 0  # a third compress well, like documents; the rest do not, like media
        data = (b"quarterly report line %d\n" % i * (size // 20 + 1))[:size] if text else None
        data = data if data is not None else rng.randbytes(size)
        path = f"/tree/folder{i % folders:03d}/file{i:05d}.{'txt' if text else 'bin'}"
        write_file(emu.store, path, data, modified_ms=1_700_000_000_000 + i * 1000)
        total += size
    return total


def run(cmd: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    elapsed = time.perf_counter() - started
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr.strip()[-2000:]}")
    return elapsed


def one_round(emu: KoofrEmulator, work: Path, env: dict[str, str], n: int) -> dict[str, float]:
    kloset = [sys.executable, "-m", "kloset.cli.main"]
    rclone = ["rclone", "--config", env["RCLONE_CONFIG"]]
    store = work / f"store-{n}"
    local = work / f"copy-{n}"
    run([*kloset, "at", str(store), "create", *FAST_KDF], env)
    out: dict[str, float] = {}

    def timed(key: str, cmd: list[str]) -> None:
        before = emu.counters.get("files/get", 0)
        out[key] = run(cmd, env)
        out[key + " gets"] = emu.counters.get("files/get", 0) - before

    backup = [*kloset, "at", str(store), "backup", "@bench:/tree"]
    timed("kloset backup from Koofr", backup)
    timed("rclone backup from Koofr", [*rclone, "copy", "bench:/tree", str(local)])
    timed("kloset unchanged re-run", backup)
    timed("rclone unchanged re-run", [*rclone, "copy", "bench:/tree", str(local)])
    timed(
        "kloset restore to Koofr",
        [*kloset, "at", str(store), "restore", "-to", f"@bench:/restored-{n}", "latest"],
    )
    timed("rclone restore to Koofr", [*rclone, "copy", str(local), f"bench:/uploaded-{n}"])
    return out


TARGETS = {"backup from Koofr": 0.5, "unchanged re-run": 1.0, "restore to Koofr": 0.3}  # issue 10


def report(tables: dict[float, list[dict[str, float]]], args: argparse.Namespace, size: int) -> str:
    """One table per latency, each row a phase: medians, ratio, downloads, issue 10's target."""
    lines = [
        f"### Koofr (emulated) results of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"Command: `python bench/koofr.py --files {args.files} --latency {args.latency} "
        f"--repeat {args.repeat}`",
        "",
        f"Tree: {args.files} files, {size / 2**20:.1f} MiB; {os.cpu_count()} cores; rclone "
        f"{rclone_version()}; medians of {args.repeat} rounds per latency.",
    ]
    for latency, rounds in tables.items():

        def med(key: str, rounds: list[dict[str, float]] = rounds) -> float:
            return statistics.median(r[key] for r in rounds)

        lines += [
            "",
            f"{latency * 1000:.0f} ms added to every request:",
            "",
            "| measure | kloset (s) | rclone copy (s) | kloset/rclone | target | "
            "downloads kloset / rclone |",
            "|---|---|---|---|---|---|",
        ]
        for phase in PHASES:
            k, r = med(f"kloset {phase}"), med(f"rclone {phase}")
            gets = f"{med(f'kloset {phase} gets'):.0f} / {med(f'rclone {phase} gets'):.0f}"
            limit = TARGETS[phase]
            verdict = "met" if k / r <= limit else "NOT met"
            lines.append(
                f"| {phase} | {k:.2f} | {r:.2f} | **{k / r:.2f}** | <= {limit} {verdict} | {gets} |"
            )
    return "\n".join(lines) + "\n"


def rclone_version() -> str:
    res = subprocess.run(["rclone", "version"], capture_output=True, text=True)
    return res.stdout.split("\n", 1)[0].replace("rclone ", "") if res.returncode == 0 else "?"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--files", type=int, default=1000, help="files in the tree")
    p.add_argument(
        "--latency",
        default="0.02,0.1",
        help="seconds added to each request; several (comma-separated) make one table each",
    )
    p.add_argument("--repeat", type=int, default=3, help="rounds (medians are reported)")
    p.add_argument("--seed", type=int, default=20241125, help="seed of the tree's contents")
    p.add_argument("--work", type=Path, help="scratch directory (default: a temporary one)")
    p.add_argument("--out", type=Path, help="markdown file whose Koofr section is regenerated")
    args = p.parse_args()
    if shutil.which("rclone") is None:
        raise SystemExit("rclone is not installed (apt-get install rclone)")
    work = Path(args.work or tempfile.mkdtemp(prefix="kloset-koofr-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    with KoofrEmulator(work / "koofr", seed=1) as emu:
        size = seed_tree(emu, args.files, random.Random(args.seed))
        conf = work / "rclone.conf"
        conf.write_text(
            f"[bench]\ntype = koofr\nprovider = other\nendpoint = {emu.url}\n"
            f"user = {emu.user}\npassword = {obscure(emu.password)}\n"
        )
        compile_bytecode()
        env = {
            **python_env(dict(os.environ)),
            "RCLONE_CONFIG": str(conf),
            "KLOSET_PASSPHRASE": PASSPHRASE,
            "KLOSET_CONFIG_DIR": str(work / "kloset-config"),
            "XDG_CACHE_HOME": str(work / "cache"),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        cmd = [sys.executable, "-m", "kloset.cli.main", "source", "import"]
        run([*cmd, "--rclone-config", str(conf), "--name", "bench"], env)
        tables: dict[float, list[dict[str, float]]] = {}
        n = 0
        for latency in [float(x) for x in str(args.latency).split(",") if x.strip()]:
            emu.clear_faults()
            if latency > 0:
                emu.add_fault(FaultRule(kind="latency", seconds=latency, rate=1.0))
            rounds = tables.setdefault(latency, [])
            for i in range(args.repeat):
                rounds.append(one_round(emu, work, env, n))
                n += 1
                print(
                    f"{latency * 1000:.0f} ms, round {i + 1}/{args.repeat}: "
                    + ", ".join(
                        f"{k} {v:.2f}" for k, v in rounds[-1].items() if not k.endswith("gets")
                    ),
                    flush=True,
                )
    section = report(tables, args, size)
    print("\n" + section)
    if args.out:
        update_doc(args.out, section, BEGIN, END)
        print(f"wrote {args.out}")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
