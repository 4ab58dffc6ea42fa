"""What a check found, and which packs a `--read-data-subset` selects."""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field
from typing import Any

from kloset.errors import KlosetError


@dataclass
class CheckReport:
    """What a check found. `errors` are one line each and name the damaged object."""

    ok: bool = True
    snapshots: int = 0
    trees: int = 0
    blobs: int = 0  # distinct data blobs referenced by the checked snapshots
    index_files: int = 0
    packs: int = 0  # packs in the index
    packs_read: int = 0
    blobs_read: int = 0
    bytes_read: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    damaged_packs: list[str] = field(default_factory=list)
    unreferenced_packs: list[str] = field(default_factory=list)
    affected: dict[str, list[str]] = field(default_factory=dict)  # snapshot hex -> paths
    affected_counts: dict[str, int] = field(default_factory=dict)
    duration: float = 0.0

    def error(self, message: str) -> None:
        self.ok = False
        self.errors.append(message)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_subset(subset: str) -> tuple[int, int] | float:
    """`n/m` → (n, m); `N%` → fraction in (0, 1]."""
    text = subset.strip()
    try:
        if text.endswith("%"):
            pct = float(text[:-1])
            if 0 < pct <= 100:
                return pct / 100
        elif "/" in text:
            n, m = (int(x) for x in text.split("/", 1))
            if 1 <= n <= m <= 256:  # groups are by a pack id's first byte
                return n, m
    except ValueError:
        pass
    raise KlosetError(
        f"bad --read-data-subset '{subset}' (use n/m with 1 <= n <= m <= 256, or N% up to 100%)"
    )


def select_packs(pack_ids: list[bytes], subset: str | None) -> list[bytes]:
    """Which packs to read: all, the n-th of m groups (by first byte), or a random sample."""
    ids = sorted(pack_ids)
    if subset is None:
        return ids
    spec = parse_subset(subset)
    if isinstance(spec, tuple):
        n, m = spec
        return [p for p in ids if p[0] % m == n - 1]
    if not ids:
        return []
    count = min(len(ids), max(1, math.ceil(len(ids) * spec)))
    return sorted(random.sample(ids, count))
