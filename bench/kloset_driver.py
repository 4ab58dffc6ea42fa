"""Stand-in for the `kloset` CLI, driving the engine API directly, for `bench/run.py`.

Why it exists: the benchmark has to measure `kloset` exactly as users run it (a separate
process, like restic and borg), but the CLI verbs were being written in parallel with the
benchmark. This driver accepts the same argument shape (``at STORE create|backup SRC|restore
-to DIR SNAP``, plus ``open``: open the store and load its index, which no CLI verb does alone)
and calls the very functions the CLI calls (`run_backup`, `run_restore`), so
numbers taken with it differ from the CLI's only by the CLI's own start-up and output cost.
`bench/run.py` uses it only when the real CLI lacks a verb, and says so in its report.
"""

from __future__ import annotations

import argparse
import os
import sys

from kloset.backup import BackupOptions
from kloset.backup.pipeline import run_backup
from kloset.crypto import KdfParams
from kloset.errors import KlosetError
from kloset.locations import canonical, open_destination, open_source, open_storage
from kloset.repository import Repository
from kloset.restore import run_restore


def _passphrase() -> str:
    secret = os.environ.get("KLOSET_PASSPHRASE")
    if not secret:
        raise KlosetError("set KLOSET_PASSPHRASE")
    return secret


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kloset_driver", description=__doc__)
    p.add_argument("at", choices=["at"])
    p.add_argument("store")
    verbs = p.add_subparsers(dest="verb", required=True)
    create = verbs.add_parser("create")
    create.add_argument("--kdf-memory-kib", type=int, default=None)
    create.add_argument("--no-encryption", action="store_true")
    backup = verbs.add_parser("backup")
    backup.add_argument("src")
    verbs.add_parser("open", help="open the store and load its index (what every verb pays)")
    restore = verbs.add_parser("restore")
    restore.add_argument("-to", dest="to", required=True)
    restore.add_argument("snap")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one verb; returns the process exit code (one error line, like the CLI)."""
    args = _parser().parse_args(argv)
    try:
        storage = open_storage(args.store)
        if args.verb == "create":
            kdf = KdfParams.fresh(memory_kib=args.kdf_memory_kib) if args.kdf_memory_kib else None
            Repository.create(
                storage,
                None if args.no_encryption else _passphrase(),
                encrypted=not args.no_encryption,
                kdf=kdf,
            )
            print(f"created store at {args.store}")
            return 0
        repo = Repository.open(storage, _passphrase)
        if args.verb == "open":
            index = repo.index
            print(f"{len(index.files)} index files, {len(index.pack_sizes)} packs")
            return 0
        if args.verb == "backup":
            source = open_source(canonical(args.src))
            report = run_backup(repo, source, BackupOptions(batch_bytes=64 << 20, batch_files=4000))
            print(f"snapshot {report.commit.snapshot_id} created")
            return 1 if report.commit.errors else 0
        header = repo.resolve_snapshot(args.snap)
        rep = run_restore(repo, header, "/", open_destination(args.to))
        print(f"restored {rep.files_written} files, {rep.bytes_written} bytes")
        return 1 if rep.errors else 0
    except KlosetError as exc:
        print(f"kloset: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
