"""The README's main job, end to end on one machine: ``./demo`` (or ``python -m flows.demo``).

1. start the Koofr emulator on 127.0.0.1 with sample data;
2. run `backup_flow` from it into ``./backup`` on Prefect's embedded default (no server
   configured: Prefect starts its temporary one; ``./demo`` points PREFECT_HOME at
   ``./.demo/prefect-home``);
3. list the snapshot with the CLI (``kloset at ./backup ls``);
4. run `restore_flow` into ``./.demo/restored``;
5. compare every restored file with the emulator's copy, and say where to look next.

Rerunning is safe: the second backup is incremental (nothing is read again) and the store
keeps both snapshots.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

DEMO_PASSPHRASE = "kloset-demo-passphrase"
# A fixed port when free: the endpoint is part of the snapshot's source name, so a rerun finds
# its parent snapshot and reads nothing again.
DEMO_PORT = 17487


def _step(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m", flush=True)


def _compare(fs: object, restored: Path) -> tuple[int, int, list[str]]:
    """(files, bytes, problems): every emulator file must be in `restored` byte for byte."""
    files = nbytes = 0
    problems: list[str] = []
    for name, info in sorted(fs.find("", detail=True).items()):  # type: ignore[attr-defined]
        if info.get("type") == "directory":
            continue
        rel = str(name).strip("/")
        local = restored.joinpath(*rel.split("/"))
        want = bytes(fs.cat_file(rel))  # type: ignore[attr-defined]
        if not local.is_file():
            problems.append(f"missing: /{rel}")
        elif local.read_bytes() != want:
            problems.append(f"differs: /{rel}")
        else:
            files += 1
            nbytes += len(want)
    return files, nbytes, problems


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="demo", description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="./backup", help="store location (default ./backup)")
    parser.add_argument("--restore-to", default="./.demo/restored", help="restore target")
    args = parser.parse_args(argv)
    demo_dir = Path(".demo").absolute()
    demo_dir.mkdir(exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(demo_dir / "prefect-home"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

    passphrase = os.environ.get("KLOSET_PASSPHRASE")
    if not passphrase:
        passphrase = DEMO_PASSPHRASE
        os.environ["KLOSET_PASSPHRASE"] = passphrase  # the CLI below reads it too
        print(
            f"Store passphrase (demo only, set KLOSET_PASSPHRASE to choose your own):\n"
            f"    {passphrase}"
        )

    # Imported here: PREFECT_HOME and friends must be set before Prefect is first imported.
    from pydantic import SecretStr

    from blocks import KlosetRepository, KoofrCredentials, KoofrStorage
    from flows import backup_flow, restore_flow
    from koofr_emulator import KoofrEmulator, seed_sample_data

    _step("1/5 Starting the Koofr emulator on 127.0.0.1 with sample data")
    try:
        emu = KoofrEmulator(demo_dir / "koofr", host="127.0.0.1", port=DEMO_PORT).start()
    except OSError:
        emu = KoofrEmulator(demo_dir / "koofr", host="127.0.0.1", port=0).start()
    try:
        seed_sample_data(emu)
        print(f"    {emu.url} (user {emu.user})")
        credentials = KoofrCredentials(
            email=emu.user,
            app_password=SecretStr(emu.password),
            provider="other",
            endpoint=emu.url,
        )
        source = KoofrStorage(credentials=credentials, base_folder="")
        store = KlosetRepository(
            location=str(Path(args.store).absolute()), passphrase=SecretStr(passphrase)
        )

        _step(f"2/5 backup_flow: Koofr → {args.store} (Prefect starts a temporary server)")
        started = time.monotonic()
        state = backup_flow(source, store, tags=["demo"], create_store=True, return_state=True)
        if not state.is_completed():
            print(f"\nbackup failed: {state.message}", file=sys.stderr)
            return 1
        result = state.result()
        stats = result["stats"]
        print(
            f"    snapshot {result['snapshot_id'][:12]}: {stats['files']} files, "
            f"{stats['bytes']} bytes, {stats['bytes_added']} bytes added "
            f"({time.monotonic() - started:.1f} s including Prefect's start-up)"
        )

        _step(f"3/5 kloset at {args.store} ls")
        listing = subprocess.run(
            [sys.executable, "-m", "kloset.cli.main", "at", args.store, "ls"], check=False
        )
        if listing.returncode != 0:
            print("    (the CLI could not list the store)", file=sys.stderr)
            return 1

        restored = Path(args.restore_to).absolute()
        shutil.rmtree(restored, ignore_errors=True)
        _step(f"4/5 restore_flow: latest snapshot → {args.restore_to}")
        state = restore_flow(
            store, str(restored), snapshot=result["snapshot_id"], return_state=True
        )
        if not state.is_completed():
            print(f"\nrestore failed: {state.message}", file=sys.stderr)
            return 1

        _step("5/5 Comparing the restored files with the emulator's")
        files, nbytes, problems = _compare(source.filesystem, restored)
        for problem in problems:
            print(f"    {problem}", file=sys.stderr)
        if problems:
            return 1
        print(f"    {files} files, {nbytes} bytes: identical")
    finally:
        emu.stop()

    print(f"""
Done. Where to look:
    kloset at {args.store} ls                  # snapshots (KLOSET_PASSPHRASE={passphrase})
    kloset at {args.store} ls latest:/         # what is inside the latest one
    kloset at {args.store} ui                  # browse, search, diff and restore in a browser
    {restored}    # the restored files
Next: docs/PREFECT.md (prefect server, blocks, deployments, workers, Dask).""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
