"""Retention policy: restic's `forget` semantics, checked against an independent model."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kloset.errors import KlosetError
from kloset.retention import RetentionPolicy, Within, apply_policy, apply_to_group

HOUR_NS = 3600 * 10**9
DAY_NS = 24 * HOUR_NS
BASE_NS = 1_700_000_000 * 10**9  # Nov 2023
NOW_NS = BASE_NS + 4000 * DAY_NS


@dataclass
class Snap:
    id: bytes
    time_ns: int
    source: str = "/src"
    tags: list[str] = field(default_factory=list)


def snaps_strategy(max_size: int = 40) -> st.SearchStrategy[list[Snap]]:
    offsets = st.lists(
        st.integers(min_value=0, max_value=900 * DAY_NS), min_size=0, max_size=max_size
    )
    tags = st.lists(st.sampled_from(["a", "b", "c"]), max_size=2)
    sources = st.sampled_from(["/src", "/other"])
    return offsets.flatmap(
        lambda offs: st.lists(st.tuples(tags, sources), min_size=len(offs), max_size=len(offs)).map(
            lambda extras: [
                Snap(i.to_bytes(4, "big"), BASE_NS + off, src, tg)
                for i, (off, (tg, src)) in enumerate(zip(offs, extras, strict=True))
            ]
        )
    )


def kept_ids(snaps: list[Snap], policy: RetentionPolicy) -> set[bytes]:
    return {s.id for s in apply_policy(snaps, policy, NOW_NS).keep}


def newest_first(snaps: list[Snap]) -> list[Snap]:
    return sorted(snaps, key=lambda s: (s.time_ns, s.id), reverse=True)


BUCKETS = {
    "hourly": lambda d: (d.year, d.month, d.day, d.hour),
    "daily": lambda d: (d.year, d.month, d.day),
    "weekly": lambda d: d.isocalendar()[:2],
    "monthly": lambda d: (d.year, d.month),
    "yearly": lambda d: d.year,
}


def model_bucket(group: list[Snap], rule: str, n: int) -> set[bytes]:
    """Independent statement of the rule: the newest snapshot of each of the n most recent
    periods, plus the oldest snapshot while periods are fewer than n (restic >= 0.16)."""
    ordered = newest_first(group)
    if not ordered or n == 0:
        return set()
    key = BUCKETS[rule]
    kept: set[bytes] = set()
    seen: list[object] = []
    for s in ordered:
        k = key(datetime.fromtimestamp(s.time_ns / 1e9))
        if k not in seen:
            seen.append(k)
            if n == -1 or len(seen) <= n:
                kept.add(s.id)
    before_oldest = {key(datetime.fromtimestamp(s.time_ns / 1e9)) for s in ordered[:-1]}
    if n == -1 or len(before_oldest) < n:
        kept.add(ordered[-1].id)
    return kept


def by_source(snaps: list[Snap]) -> dict[str, list[Snap]]:
    out: dict[str, list[Snap]] = {}
    for s in snaps:
        out.setdefault(s.source, []).append(s)
    return out


@settings(max_examples=150, deadline=None)
@given(snaps_strategy(), st.integers(min_value=0, max_value=12))
def test_keep_last_keeps_exactly_the_n_newest_per_source(snaps: list[Snap], n: int) -> None:
    kept = kept_ids(snaps, RetentionPolicy(last=n)) if n else {s.id for s in snaps}
    expected = {s.id for g in by_source(snaps).values() for s in newest_first(g)[:n]} if n else kept
    assert kept == expected


@settings(max_examples=150, deadline=None)
@given(
    snaps_strategy(),
    st.sampled_from(sorted(BUCKETS)),
    st.integers(min_value=-1, max_value=8),
)
def test_bucket_rules_match_the_model(snaps: list[Snap], rule: str, n: int) -> None:
    if n == 0:
        return
    kept = kept_ids(snaps, RetentionPolicy(**{rule: n}))
    expected = set().union(*(model_bucket(g, rule, n) for g in by_source(snaps).values()))
    assert kept == expected


@settings(max_examples=150, deadline=None)
@given(
    snaps_strategy(),
    st.fixed_dictionaries(
        {
            "last": st.integers(0, 5),
            "daily": st.integers(0, 5),
            "weekly": st.integers(0, 3),
            "monthly": st.integers(0, 3),
        }
    ),
    st.lists(st.sampled_from(["a", "b", "a,b"]), max_size=2),
)
def test_rules_are_independent_and_partition(snaps: list[Snap], counts: dict, tags: list) -> None:
    policy = RetentionPolicy(**counts, tags=tags)
    result = apply_policy(snaps, policy, NOW_NS)
    keep = {s.id for s in result.keep}
    remove = {s.id for s in result.remove}
    assert keep.isdisjoint(remove) and keep | remove == {s.id for s in snaps}
    if policy.empty:
        assert keep == {s.id for s in snaps}
        return
    union: set[bytes] = set()
    for name, n in counts.items():
        if n:
            union |= kept_ids(snaps, RetentionPolicy(**{name: n}))
    if tags:
        union |= kept_ids(snaps, RetentionPolicy(tags=tags))
    assert keep == union
    for d in result.decisions:
        assert bool(d.reasons) == d.keep


@settings(max_examples=100, deadline=None)
@given(snaps_strategy(), st.integers(1, 6), st.integers(1, 6))
def test_more_count_never_keeps_less(snaps: list[Snap], a: int, b: int) -> None:
    lo, hi = sorted((a, b))
    for rule in ("last", "daily", "monthly"):
        assert kept_ids(snaps, RetentionPolicy(**{rule: lo})) <= kept_ids(
            snaps, RetentionPolicy(**{rule: hi})
        )


@settings(max_examples=100, deadline=None)
@given(snaps_strategy(), st.sampled_from(["a", "b", "a,b"]))
def test_keep_tag_keeps_exactly_the_tagged(snaps: list[Snap], spec: str) -> None:
    want = spec.split(",")
    expected = {s.id for s in snaps if all(t in s.tags for t in want)}
    assert kept_ids(snaps, RetentionPolicy(tags=[spec])) == expected


@settings(max_examples=100, deadline=None)
@given(snaps_strategy(), st.integers(1, 400))
def test_keep_within_days(snaps: list[Snap], days: int) -> None:
    kept = kept_ids(snaps, RetentionPolicy(within=Within.parse(f"{days}d")))
    expected: set[bytes] = set()
    for group in by_source(snaps).values():
        latest = max(s.time_ns for s in group)
        cutoff = datetime.fromtimestamp(latest / 1e9) - timedelta(days=days)
        expected |= {s.id for s in group if datetime.fromtimestamp(s.time_ns / 1e9) > cutoff}
    assert kept == expected


def test_daily_example_with_reasons() -> None:
    # Three snapshots a day for ten days; keep-daily 3 keeps the evening one of the last 3 days.
    snaps = [
        Snap(bytes([d, h]), BASE_NS + d * DAY_NS + h * HOUR_NS)
        for d in range(10)
        for h in (8, 12, 20)
    ]
    decisions = apply_to_group(snaps, RetentionPolicy(daily=3, last=1), NOW_NS)
    kept = [(d.snapshot.id, d.reasons) for d in decisions if d.keep]
    assert kept == [
        (bytes([9, 20]), ["last snapshot", "daily snapshot"]),
        (bytes([8, 20]), ["daily snapshot"]),
        (bytes([7, 20]), ["daily snapshot"]),
    ]


def test_short_history_keeps_its_oldest() -> None:
    snaps = [Snap(bytes([d]), BASE_NS + d * DAY_NS) for d in range(3)]
    decisions = apply_to_group(snaps, RetentionPolicy(monthly=6), NOW_NS)
    assert [d.reasons for d in decisions] == [["monthly snapshot"], [], ["oldest monthly snapshot"]]


def test_future_snapshot_does_not_anchor_within() -> None:
    snaps = [Snap(b"past", NOW_NS - 10 * DAY_NS), Snap(b"future", NOW_NS + 100 * DAY_NS)]
    kept = kept_ids(snaps, RetentionPolicy(within=Within.parse("2d")))
    assert kept == {b"past", b"future"}
    only_future = [Snap(b"f1", NOW_NS + DAY_NS), Snap(b"f2", NOW_NS + 300 * DAY_NS)]
    assert kept_ids(only_future, RetentionPolicy(within=Within.parse("2d"))) == {b"f1", b"f2"}


def test_within_parse_and_month_overflow() -> None:
    assert Within.parse("1y2m3d4h") == Within(1, 2, 3, 4)
    assert str(Within.parse("36h")) == "36h"
    # Like Go's AddDate: March 31 minus one month is "February 31", i.e. March 3 (or 2).
    assert Within(months=1).before(datetime(2023, 3, 31, 12)) == datetime(2023, 3, 3, 12)
    for bad in ("", "7", "3w", "1d2x", "-1d"):
        with pytest.raises(KlosetError):
            Within.parse(bad)
    with pytest.raises(KlosetError):
        RetentionPolicy(last=-2)
