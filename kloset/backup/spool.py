"""A backup's run directory (see kloset.rundir): its plan, its claims, and packs being sealed.

Sealed packs do not wait here: each goes into the store as soon as it is sealed
(`kloset.backup.sink`), so what a killed run leaves in this directory is at most the packs
sealed in the moment before the kill (adopted by the next run, `kloset.backup.adopt`).
"""

from __future__ import annotations

import os

from kloset.rundir import plan_path, read_msgpack, remove_run, write_msgpack

__all__ = ["claims_path", "plan_path", "read_msgpack", "remove_run", "write_msgpack"]


def claims_path(run_dir: str) -> str:
    return os.path.join(run_dir, "claims.sqlite")
