"""Retry policy: which failures to retry and how long to wait between attempts.

Kept free of I/O so it can be tested with a fake clock: the policy owns ``sleep``, ``now`` and its
random generator, and the HTTP client only asks it questions.

Backoff is exponential with *full jitter* (a uniform draw between 0 and the exponential cap), the
scheme that spreads a thundering herd of parallel workers best. A ``Retry-After`` header from the
server wins over the computed delay, capped at ``backoff_max`` so a confused server cannot park a
backup for an hour.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

#: Statuses that mean "try again later": rate limiting, transient server trouble and Koofr's
#: 499 "Client Disconnect" (OpenDAL treats it as temporary too).
RETRYABLE_STATUSES: frozenset[int] = frozenset({429, 499, 500, 502, 503, 504})


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait according to a ``Retry-After`` header, or ``None`` if absent or garbage.

    Accepts both forms of RFC 9110: delay-seconds (we also tolerate fractions) and an HTTP-date.
    A date in the past means "now" (0.0).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        current = time.time() if now is None else now
        return max(0.0, when.timestamp() - current)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return None
    return max(0.0, seconds)


@dataclass
class RetryPolicy:
    """How many attempts a request gets and how long to sleep between them.

    ``attempts`` counts every try, the first included, so ``attempts=8`` means "give up after the
    8th failure" and error messages can say "failed after 8 attempts".
    """

    attempts: int = 8
    backoff_base: float = 0.25
    backoff_max: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    now: Callable[[], float] = time.time
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"retries must be at least 1 (attempts in total), got {self.attempts}")
        if self.backoff_base < 0 or self.backoff_max < 0:
            raise ValueError("backoff_base and backoff_max must not be negative")

    def is_retryable_status(self, status: int) -> bool:
        """Whether an HTTP status is worth another attempt."""
        return status in RETRYABLE_STATUSES

    def backoff(self, failures: int) -> float:
        """Full-jitter delay after ``failures`` consecutive failures (1 = after the first)."""
        cap = min(self.backoff_max, self.backoff_base * (2 ** max(0, failures - 1)))
        return self.rng.uniform(0.0, cap)

    def delay(self, failures: int, retry_after: str | None = None) -> float:
        """The delay before the next attempt; ``Retry-After`` (capped) overrides the backoff."""
        hinted = parse_retry_after(retry_after, self.now())
        if hinted is not None:
            return min(hinted, self.backoff_max)
        return self.backoff(failures)

    def wait(self, failures: int, retry_after: str | None = None) -> float:
        """Sleep before the next attempt and return how long we slept."""
        seconds = self.delay(failures, retry_after)
        if seconds > 0:
            self.sleep(seconds)
        return seconds
