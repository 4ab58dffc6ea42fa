"""A run directory: where one backup, restore or rewrite keeps its plan and per-batch state on
local disk while it runs.

Files are written atomically and named by batch number, so every stage can be retried and can
run in another process. msgpack with surrogateescape keeps paths that are not valid UTF-8.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import msgpack


def batch_name(batch_no: int) -> str:
    return f"{batch_no:05d}"


def write_msgpack(path: str, obj: Any) -> None:
    # surrogateescape: paths that are not valid UTF-8 on disk must survive the spool unchanged.
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as fh:
        fh.write(msgpack.packb(obj, unicode_errors="surrogateescape"))
    os.replace(tmp, path)


def read_msgpack(path: str) -> Any:
    with open(path, "rb") as fh:
        return msgpack.unpackb(fh.read(), strict_map_key=False, unicode_errors="surrogateescape")


def plan_path(run_dir: str) -> str:
    return os.path.join(run_dir, "plan")


def remove_run(run_dir: str) -> None:
    shutil.rmtree(run_dir, ignore_errors=True)
