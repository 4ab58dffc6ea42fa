"""Reading the session server's event feed: what the UI's Event Feed and automations see."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx


def drain_events() -> None:
    """Send what this process's events worker still queues (flows called in the test)."""
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all()


def read_events(api_url: str, prefix: str = "kloset.", resource_id: str | None = None) -> list:
    """Events named ``prefix*`` (of one resource, if given), newest first."""
    flt: dict[str, Any] = {"event": {"prefix": [prefix]}}
    if resource_id:
        flt["resource"] = {"id": [resource_id]}
    answer = httpx.post(f"{api_url}/events/filter", json={"filter": flt, "limit": 50}, timeout=10)
    answer.raise_for_status()
    return list(answer.json()["events"])


def wait_for(
    probe: Callable[[], Any], what: str, timeout: float = 30.0, interval: float = 0.5
) -> Any:
    """Poll `probe` until it returns something truthy (the server stores events in batches)."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def related(event: dict[str, Any], role: str) -> dict[str, str]:
    """The event's first related resource in `role`."""
    return next(r for r in event["related"] if r.get("prefect.resource.role") == role)
