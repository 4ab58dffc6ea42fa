"""A backup's run directory (see kloset.rundir): its per-batch results, claims and sealed packs."""

from __future__ import annotations

import os

from kloset.rundir import batch_name, plan_path, read_msgpack, remove_run, write_msgpack

__all__ = [
    "batch_dir",
    "batch_name",
    "chunks_path",
    "claims_path",
    "plan_path",
    "read_msgpack",
    "remove_run",
    "uploaded_marker",
    "write_msgpack",
]


def chunks_path(run_dir: str, batch_no: int) -> str:
    return os.path.join(run_dir, f"chunks-{batch_name(batch_no)}")


def claims_path(run_dir: str) -> str:
    return os.path.join(run_dir, "claims.sqlite")


def uploaded_marker(run_dir: str, batch_no: int) -> str:
    return os.path.join(run_dir, f"uploaded-{batch_name(batch_no)}")


def batch_dir(run_dir: str, batch_no: int) -> str:
    path = os.path.join(run_dir, f"batch-{batch_name(batch_no)}")
    os.makedirs(path, exist_ok=True)
    return path
