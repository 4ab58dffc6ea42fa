"""Reading a large file out of a store on (emulated) Koofr: the FUSE mount and WebDAV against
`kloset cat`, and the mount with its readahead turned off.

Usage::

    python bench/mount_read.py [--mib 64] [--latency 0.02] [--repeat 3]

A "video" of ``--mib`` MiB of random bytes is backed up into a store on the Koofr emulator
(``--latency`` seconds added to every request), then read sequentially, 128 KiB at a time
like a player or ``cp``, side by side in each round:

* ``kloset at @bench:/store cat latest:/video.bin`` (windows of 8 chunks, coalesced), minus
  the time ``cat`` of a one-byte file takes (start-up, opening the store on Koofr), so that
  only the read is compared;
* ``/latest/video.bin`` through ``kloset … mount`` (kernel readahead + kloset's);
* the same mount with kloset's readahead off (``READAHEAD_CHUNKS = 0``): one chunk at a time;
* ``rclone cat`` through ``kloset … serve webdav``.

Each mount or server is started fresh for its measurement (a cold cache) and only the read
is timed. Times are the best of the rounds; MB/s are 10^6 bytes per second.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools import python_env  # noqa: E402

from koofr_emulator import FaultRule, KoofrEmulator  # noqa: E402
from koofrfs.rclone import obscure  # noqa: E402

PASSPHRASE = "bench-passphrase-not-secret"
BLOCK = 128 * 1024
NO_READAHEAD = (
    "import sys, kloset.reader as r; r.READAHEAD_CHUNKS = 0; "
    "from kloset.cli.main import main; sys.exit(main(sys.argv[1:]))"
)


def kloset(*args: str, code: str | None = None) -> list[str]:
    return [sys.executable, *(["-c", code] if code else ["-m", "kloset.cli.main"]), *args]


def read_file(path: Path) -> float:
    started = time.perf_counter()
    with open(path, "rb", buffering=0) as fh:
        while fh.read(BLOCK):
            pass
    return time.perf_counter() - started


def through_mount(env: dict[str, str], work: Path, code: str | None) -> float:
    mnt = work / "mnt"
    mnt.mkdir(exist_ok=True)
    proc = subprocess.Popen(kloset("at", "@bench:/store", "mount", str(mnt), code=code), env=env)
    try:
        deadline = time.monotonic() + 60
        while not os.path.ismount(mnt):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the mount did not come up")
            time.sleep(0.05)
        return read_file(mnt / "latest" / "video.bin")
    finally:
        subprocess.run(["fusermount3", "-u", "-z", str(mnt)], capture_output=True, timeout=30)
        proc.wait(timeout=30)


def through_webdav(env: dict[str, str]) -> float:
    proc = subprocess.Popen(
        kloset("at", "@bench:/store", "serve", "webdav"), env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        fields = {}
        while "password" not in fields:
            key, _, value = proc.stdout.readline().strip().partition(" ")
            fields[key] = value.strip()
        remote = f":webdav,url='{fields['url']}',user=kloset,pass='{obscure(fields['password'])}':"
        started = time.perf_counter()
        subprocess.run(
            ["rclone", "--config", "/dev/null", "cat", remote + "latest/video.bin"],
            stdout=subprocess.DEVNULL, check=True, timeout=3600,
        )  # fmt: skip
        return time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def through_cat(env: dict[str, str], path: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        kloset("at", "@bench:/store", "cat", f"latest:{path}"),
        env=env, stdout=subprocess.DEVNULL, check=True, timeout=3600,
    )  # fmt: skip
    return time.perf_counter() - started


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--mib", type=int, default=64, help="size of the file read")
    p.add_argument("--latency", type=float, default=0.02, help="seconds added to each request")
    p.add_argument("--repeat", type=int, default=3, help="rounds (medians are reported)")
    args = p.parse_args()
    for tool in ("rclone", "fusermount3"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed")
    work = Path(tempfile.mkdtemp(prefix="kloset-mount-bench-"))
    try:
        with KoofrEmulator(work / "koofr", seed=1) as emu:
            conf = work / "rclone.conf"
            conf.write_text(
                f"[bench]\ntype = koofr\nprovider = other\nendpoint = {emu.url}\n"
                f"user = {emu.user}\npassword = {obscure(emu.password)}\n"
            )
            env = {
                **python_env(dict(os.environ)),
                "KLOSET_PASSPHRASE": PASSPHRASE,
                "KLOSET_CONFIG_DIR": str(work / "kloset-config"),
                "XDG_CACHE_HOME": str(work / "cache"),
                "PYTHONPATH": os.pathsep.join(
                    filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])
                ),
            }
            imp = kloset("store", "import", "--rclone-config", str(conf), "--name", "bench")
            subprocess.run(imp, env=env, check=True, capture_output=True)
            src = work / "src"
            src.mkdir()
            (src / "video.bin").write_bytes(random.Random(1).randbytes(args.mib << 20))
            (src / "one-byte").write_bytes(b"x")
            setup = [("create", "--kdf-memory-kib", "64", "--kdf-iterations", "1"),
                     ("backup", str(src))]  # fmt: skip
            for verb in setup:
                subprocess.run(kloset("at", "@bench:/store", *verb), env=env, check=True,
                               capture_output=True)  # fmt: skip
            emu.add_fault(FaultRule(kind="latency", seconds=args.latency, rate=1.0))
            ways = {
                "kloset cat": lambda: through_cat(env, "/video.bin"),
                "kloset cat, one byte": lambda: through_cat(env, "/one-byte"),
                "mount": lambda: through_mount(env, work, None),
                "mount, no kloset readahead": lambda: through_mount(env, work, NO_READAHEAD),
                "webdav (rclone cat)": lambda: through_webdav(env),
            }
            times: dict[str, list[float]] = {k: [] for k in ways}
            for i in range(args.repeat):
                for name, way in ways.items():
                    times[name].append(way())
                print(
                    f"round {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items())
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    # Best of the rounds: on a shared machine the minimum is the least disturbed measurement.
    best = {name: min(values) for name, values in times.items()}
    best["kloset cat"] -= best.pop("kloset cat, one byte")  # start-up and opening the store
    size = (args.mib << 20) / 1e6
    cat = best["kloset cat"]
    print(f"\n{args.mib} MiB, {args.latency * 1000:.0f} ms per request, best of {args.repeat}:")
    print("| read | s | MB/s | time / kloset cat |\n|---|---|---|---|")
    for name, t in best.items():
        print(f"| {name} | {t:.2f} | {size / t:.1f} | {t / cat:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
