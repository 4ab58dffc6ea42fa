"""The state a check builds up as it goes: what it saw and what is damaged.

Structure, data and damage tracing are separate steps (`structure`, `data`, `damage`) that
share this one record, so each step can run alone (verify runs a subset of them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kloset.check.report import CheckReport
from kloset.pack import pack_name
from kloset.repository import Repository
from kloset.snapshot import SnapshotHeader

ProgressFn = Callable[[str, dict[str, Any]], None]


@dataclass
class Findings:
    """The checked snapshots, every tree and data blob they reach, and the damaged ones."""

    repo: Repository
    emit: ProgressFn
    report: CheckReport = field(default_factory=CheckReport)
    headers: list[SnapshotHeader] = field(default_factory=list)
    data_ids: set[bytes] = field(default_factory=set)
    tree_ids: set[bytes] = field(default_factory=set)
    bad_blobs: set[bytes] = field(default_factory=set)
    bad_trees: set[bytes] = field(default_factory=set)

    def damaged(self, pid: bytes, message: str, blobs: list[bytes] | None = None) -> None:
        """Report a damaged pack once and mark its blobs (all of them unless told which)."""
        self.report.error(message)
        name = pack_name(pid)
        if name not in self.report.damaged_packs:
            self.report.damaged_packs.append(name)
        if blobs is None:
            blobs = [bid for bid, loc in self.repo.index.items() if loc.pack_id == pid]
        self.bad_blobs.update(blobs)
