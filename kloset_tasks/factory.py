"""`kloset_task`: the one header every Kloset task shares.

Every task is idempotent and its inputs are small specs, so every task gets the same policy:
no caching (results describe a store that changes under them), exponential backoff with jitter
(parallel batches must not retry against Koofr in lockstep), retries only for failures a retry
can fix (`kloset_tasks.failures`), and the engine's bulk-work GC thresholds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from kloset_tasks.failures import retry_condition
from kloset_tasks.spec import bulk

_F = TypeVar("_F", bound=Callable[..., Any])
JITTER = 0.5


def kloset_task(
    name: str, *, retries: int, backoff: float = 2.0, delay: float | None = None
) -> Callable[[_F], Any]:
    """``@task`` for an engine stage: `retries` attempts more, waiting ``backoff·2^n`` seconds
    (or a flat `delay`), and only when `kloset_tasks.failures.retry_helps` says so."""
    wait: Any = delay if delay is not None else exponential_backoff(backoff_factor=backoff)

    def decorate(fn: _F) -> Any:
        return task(
            name=name,
            cache_policy=NO_CACHE,
            retries=retries,
            retry_delay_seconds=wait,
            retry_jitter_factor=None if delay is not None else JITTER,
            retry_condition_fn=retry_condition,
        )(bulk(fn))

    return decorate
