"""Retention: which snapshots a `--keep-*` policy keeps, with restic's `forget` semantics.

Snapshots are grouped by source (a Koofr folder backed up from two workers is one history) and
each group is judged on its own, newest first. A bucket rule (`hourly`, `daily`, ...) keeps the
newest snapshot of each of its last N distinct periods; `last` treats every snapshot as its own
period. Like restic ≥ 0.16, a rule whose count is not used up also keeps the group's oldest
snapshot, so a short history is not thinned out before it is long enough to need it. A count
of -1 means "no limit". Tags and `within` keep snapshots without counting.

The result says *why* each snapshot stays, because a retention policy nobody can read is one
nobody dares to run.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from kloset.errors import KlosetError


class Dated(Protocol):
    """What retention needs to know about a snapshot (SnapshotHeader satisfies it)."""

    id: bytes
    time_ns: int
    source: str
    tags: list[str]


S = TypeVar("S", bound=Dated)

_WITHIN = re.compile(r"(\d+)([yYmdhH])")


@dataclass(frozen=True)
class Within:
    """A calendar duration like restic's `--keep-within 1y2m3d4h` (months are calendar months)."""

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0

    @classmethod
    def parse(cls, text: str) -> Within:
        text = text.strip()
        if not text or _WITHIN.sub("", text):
            raise KlosetError(f"bad duration '{text}' (use e.g. 7d, 2m, 1y6m, 36h)")
        parts = {"y": 0, "m": 0, "d": 0, "h": 0}
        for num, unit in _WITHIN.findall(text):
            parts[unit.lower() if unit != "M" else "m"] += int(num)
        return cls(parts["y"], parts["m"], parts["d"], parts["h"])

    @property
    def zero(self) -> bool:
        return not (self.years or self.months or self.days or self.hours)

    def before(self, moment: datetime) -> datetime:
        """`moment` minus this duration; an overflowing day rolls over like Go's AddDate."""
        month_index = moment.year * 12 + (moment.month - 1) - self.years * 12 - self.months
        year, month0 = divmod(month_index, 12)
        # Go turns "Mar 31 minus one month" into Feb 31 = Mar 3; restic inherits that.
        first = moment.replace(year=year, month=month0 + 1, day=1)
        shifted = first + timedelta(days=moment.day - 1)
        return shifted - timedelta(days=self.days, hours=self.hours)

    def __str__(self) -> str:
        out = "".join(
            f"{n}{u}"
            for n, u in ((self.years, "y"), (self.months, "m"), (self.days, "d"), (self.hours, "h"))
            if n
        )
        return out or "0h"


@dataclass
class RetentionPolicy:
    """What to keep. Counts: 0 = rule off, -1 = unlimited. `tags`: each item is one tag, or
    several joined by commas that must all be present."""

    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    tags: list[str] = field(default_factory=list)
    within: Within | None = None

    @classmethod
    def from_keep(
        cls,
        *,
        last: int = 0,
        hourly: int = 0,
        daily: int = 0,
        weekly: int = 0,
        monthly: int = 0,
        yearly: int = 0,
        tag: list[str] | None = None,
        within: str | None = None,
    ) -> RetentionPolicy:
        """The policy from user-facing `keep-*` options (CLI flags, flow and task parameters)."""
        return cls(
            last=last,
            hourly=hourly,
            daily=daily,
            weekly=weekly,
            monthly=monthly,
            yearly=yearly,
            tags=list(tag or []),
            within=Within.parse(within) if within else None,
        )

    def __post_init__(self) -> None:
        for name in ("last", "hourly", "daily", "weekly", "monthly", "yearly"):
            if getattr(self, name) < -1:
                raise KlosetError(f"--keep-{name} must be a count, or -1 for unlimited")

    @property
    def empty(self) -> bool:
        counts = (self.last, self.hourly, self.daily, self.weekly, self.monthly, self.yearly)
        return not any(counts) and not self.tags and (self.within is None or self.within.zero)

    def describe(self) -> str:
        parts = []
        for name in ("last", "hourly", "daily", "weekly", "monthly", "yearly"):
            n = getattr(self, name)
            if n:
                parts.append(f"{'all' if n == -1 else n} {name}")
        if self.tags:
            parts.append("tagged " + " or ".join(self.tags))
        if self.within is not None and not self.within.zero:
            parts.append(f"within {self.within} of the newest")
        return "keep " + ", ".join(parts) if parts else "keep everything (empty policy)"


@dataclass
class Decision:
    """One snapshot's fate and the rules that decided it."""

    snapshot: Dated
    keep: bool
    reasons: list[str]


@dataclass
class RetentionResult:
    """Per snapshot, newest first within each group; `keep`/`remove` are flat conveniences."""

    decisions: list[Decision]

    @property
    def keep(self) -> list[Dated]:
        return [d.snapshot for d in self.decisions if d.keep]

    @property
    def remove(self) -> list[Dated]:
        return [d.snapshot for d in self.decisions if not d.keep]


# Period keys per rule: equal keys mean the same hour/day/ISO week/month/year.
_BUCKETS: list[tuple[str, str, Callable[[datetime, int], int]]] = [
    ("last", "last snapshot", lambda _d, nr: nr),
    (
        "hourly",
        "hourly snapshot",
        lambda d, _n: ((d.year * 100 + d.month) * 100 + d.day) * 100 + d.hour,
    ),
    ("daily", "daily snapshot", lambda d, _n: (d.year * 100 + d.month) * 100 + d.day),
    ("weekly", "weekly snapshot", lambda d, _n: d.isocalendar()[0] * 100 + d.isocalendar()[1]),
    ("monthly", "monthly snapshot", lambda d, _n: d.year * 100 + d.month),
    ("yearly", "yearly snapshot", lambda d, _n: d.year),
]


def _local(time_ns: int) -> datetime:
    """Snapshot times are judged in local wall-clock time, as restic does."""
    return datetime.fromtimestamp(time_ns / 1e9)


def _has_tags(snapshot: Dated, spec: str) -> bool:
    wanted = [t.strip() for t in spec.split(",") if t.strip()]
    return bool(wanted) and all(t in snapshot.tags for t in wanted)


def apply_to_group(
    snapshots: Sequence[S], policy: RetentionPolicy, now_ns: int | None = None
) -> list[Decision]:
    """Judge one group (one source). Returns decisions newest first."""
    ordered = sorted(snapshots, key=lambda s: (s.time_ns, s.id), reverse=True)
    if policy.empty:
        return [Decision(s, True, ["policy is empty"]) for s in ordered]
    if not ordered:
        return []
    now_ns = time.time_ns() if now_ns is None else now_ns
    # `within` counts back from the newest snapshot that is not in the future; if all are in
    # the future, restic keeps them all, and so do we.
    past = [s.time_ns for s in ordered if s.time_ns <= now_ns]
    cutoff = None
    if policy.within is not None and not policy.within.zero:
        cutoff = policy.within.before(_local(max(past))) if past else datetime.min
    counts = {name: getattr(policy, name) for name, _r, _f in _BUCKETS}
    last_seen: dict[str, int | None] = {name: None for name in counts}
    out: list[Decision] = []
    for nr, snap in enumerate(ordered):
        when = _local(snap.time_ns)
        reasons = [f"has tags {spec}" for spec in policy.tags if _has_tags(snap, spec)]
        if cutoff is not None and when > cutoff:
            reasons.append(f"within {policy.within}")
        for name, reason, bucket in _BUCKETS:
            if counts[name] == 0:
                continue
            key = bucket(when, nr)
            fresh = key != last_seen[name]
            # An unused count also keeps the oldest snapshot: the longest history survives.
            if fresh or nr == len(ordered) - 1:
                last_seen[name] = key
                if counts[name] > 0:
                    counts[name] -= 1
                reasons.append(reason if fresh else f"oldest {reason}")
        out.append(Decision(snap, bool(reasons), reasons))
    return out


def group_by_source(snapshots: Iterable[S]) -> dict[str, list[S]]:
    groups: dict[str, list[S]] = {}
    for s in snapshots:
        groups.setdefault(s.source, []).append(s)
    return groups


def apply_policy(
    snapshots: Iterable[S], policy: RetentionPolicy, now_ns: int | None = None
) -> RetentionResult:
    """Group by source, judge each group, and return every decision (groups in source order)."""
    groups = group_by_source(snapshots)
    decisions: list[Decision] = []
    for source in sorted(groups):
        decisions.extend(apply_to_group(groups[source], policy, now_ns))
    return RetentionResult(decisions)
