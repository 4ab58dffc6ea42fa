"""Fault injection: make chosen requests fail with a status, a dropped connection or delay, or
make downloads come back torn (cut short or with altered bytes) while looking complete.

Rules fire either by probability (``rate``) or deterministically on the first ``count``
matching requests, so retry logic can be tested both statistically and exactly.
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import asdict, dataclass, fields
from typing import Any

from .routes import ROUTE_NAMES

FAULT_KINDS = ("status", "drop", "latency", "truncate", "corrupt")
#: Kinds that change a download's body but still answer it completely and well-framed.
BODY_KINDS = ("truncate", "corrupt")


@dataclass
class FaultRule:
    """One fault. ``kind``: ``status`` (answer ``status`` + JSON error, ``Retry-After`` for
    429/503), ``drop`` (close the socket: mid-body for files/get, mid-request for files/put,
    before any answer elsewhere), ``latency`` (sleep ``seconds``, then serve normally), or, for
    ``files/get`` only, ``truncate`` (send the first half of the body, framed as if it were all
    of it: what a misbehaving proxy does) and ``corrupt`` (same length, altered bytes: what a
    file rewritten while it is read looks like). Those two leave other routes untouched.

    Selection: ``route`` (e.g. ``"files/get"``), ``method`` and ``path_regex`` (``re.search``
    against the decoded ``path`` query parameter *or* the URL path) must all match when set.
    Firing: with ``count`` set the rule fires on each of the first ``count`` matching requests
    (``rate`` is then ignored); otherwise on a random ``rate`` fraction of them.
    """

    kind: str
    status: int = 429
    retry_after: float | None = 1.0
    rate: float = 0.1
    count: int | None = None
    path_regex: str | None = None
    route: str | None = None
    method: str | None = None
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {FAULT_KINDS}, not {self.kind!r}")
        if not 0.0 <= float(self.rate) <= 1.0:
            raise ValueError("rate must be within [0, 1]")
        if self.count is not None and int(self.count) < 0:
            raise ValueError("count must be >= 0")
        if self.kind == "status" and not 100 <= int(self.status) <= 599:
            raise ValueError("status must be an HTTP status code")
        if self.route is not None and self.route not in ROUTE_NAMES:
            raise ValueError(f"unknown route {self.route!r}; known: {sorted(ROUTE_NAMES)}")
        if self.path_regex is not None:
            re.compile(self.path_regex)
        if self.seconds < 0:
            raise ValueError("seconds must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> FaultRule:
        """Build from JSON, ignoring bookkeeping keys such as ``id``/``fired``."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in known})


@dataclass
class FaultDecision:
    """What to do with one request."""

    delay: float = 0.0
    status: FaultRule | None = None
    drop: bool = False
    body: str | None = None  # one of BODY_KINDS


@dataclass
class _Active:
    id: int
    rule: FaultRule
    pattern: re.Pattern[str] | None
    remaining: int | None
    matched: int = 0
    fired: int = 0


class FaultInjector:
    """Thread-safe rule set consulted once per API request."""

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._rules: dict[int, _Active] = {}
        self._next_id = 1
        self._rng = random.Random(seed)

    def add(self, rule: FaultRule) -> int:
        with self._lock:
            rule_id = self._next_id
            self._next_id += 1
            pattern = re.compile(rule.path_regex) if rule.path_regex else None
            self._rules[rule_id] = _Active(rule_id, rule, pattern, rule.count)
            return rule_id

    def remove(self, rule_id: int) -> bool:
        with self._lock:
            return self._rules.pop(rule_id, None) is not None

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def describe(self) -> list[dict[str, Any]]:
        """Rules as JSON-able dicts with ``id``, ``matched``, ``fired`` and ``remaining``."""
        with self._lock:
            return [
                {
                    "id": a.id,
                    **a.rule.to_dict(),
                    "matched": a.matched,
                    "fired": a.fired,
                    "remaining": a.remaining,
                }
                for a in self._rules.values()
            ]

    def _fires(self, active: _Active) -> bool:
        if active.remaining is not None:
            if active.remaining <= 0:
                return False
            active.remaining -= 1
            return True
        return self._rng.random() < active.rule.rate

    def decide(
        self, route: str, method: str, url_path: str, file_path: str | None
    ) -> FaultDecision:
        decision = FaultDecision()
        with self._lock:
            for active in self._rules.values():
                rule = active.rule
                if rule.route is not None and rule.route != route:
                    continue
                if rule.method is not None and rule.method.upper() != method.upper():
                    continue
                if active.pattern is not None and not (
                    active.pattern.search(url_path)
                    or (file_path is not None and active.pattern.search(file_path))
                ):
                    continue
                if rule.kind != "latency" and (decision.status or decision.drop or decision.body):
                    continue
                if rule.kind in BODY_KINDS and route != "files/get":
                    continue
                active.matched += 1
                if not self._fires(active):
                    continue
                active.fired += 1
                if rule.kind == "latency":
                    decision.delay += rule.seconds
                elif rule.kind == "drop":
                    decision.drop = True
                elif rule.kind in BODY_KINDS:
                    decision.body = rule.kind
                else:
                    decision.status = rule
        return decision
