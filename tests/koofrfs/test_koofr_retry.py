"""Retry policy and Retry-After parsing, with a fake clock and a seeded random generator."""

from __future__ import annotations

import email.utils
import random

import pytest

from koofrfs.retry import RETRYABLE_STATUSES, RetryPolicy, parse_retry_after

NOW = 1_700_000_000.0


def policy(**kwargs: object) -> tuple[RetryPolicy, list[float]]:
    slept: list[float] = []
    p = RetryPolicy(sleep=slept.append, now=lambda: NOW, rng=random.Random(7), **kwargs)  # type: ignore[arg-type]
    return p, slept


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", 3.0),
        ("0.5", 0.5),
        (" 12 ", 12.0),
        ("-4", 0.0),
        ("", None),
        (None, None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_parse_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_parse_retry_after_http_date() -> None:
    future = email.utils.formatdate(NOW + 42, usegmt=True)
    past = email.utils.formatdate(NOW - 42, usegmt=True)
    assert parse_retry_after(future, NOW) == pytest.approx(42.0)
    assert parse_retry_after(past, NOW) == 0.0


def test_retryable_statuses() -> None:
    assert {429, 499, 500, 502, 503, 504} == set(RETRYABLE_STATUSES)
    p, _ = policy()
    assert p.is_retryable_status(503)
    assert not p.is_retryable_status(404)
    assert not p.is_retryable_status(401)


def test_full_jitter_stays_within_exponential_cap() -> None:
    p, _ = policy(backoff_base=0.5, backoff_max=4.0)
    for failures, cap in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (10, 4.0), (60, 4.0)]:
        draws = [p.backoff(failures) for _ in range(200)]
        assert all(0.0 <= d <= cap for d in draws)
        assert max(draws) > cap * 0.8  # jitter actually spreads over the range


def test_retry_after_overrides_backoff_and_is_capped() -> None:
    p, slept = policy(backoff_base=0.25, backoff_max=30.0)
    assert p.wait(1, "2") == 2.0
    assert p.wait(1, "3600") == 30.0
    assert p.wait(1, email.utils.formatdate(NOW + 5, usegmt=True)) == pytest.approx(5.0)
    assert slept == [2.0, 30.0, pytest.approx(5.0)]


def test_garbage_retry_after_falls_back_to_backoff() -> None:
    p, _ = policy(backoff_base=1.0, backoff_max=8.0)
    assert 0.0 <= p.delay(2, "whenever") <= 2.0


def test_attempts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RetryPolicy(attempts=0)
