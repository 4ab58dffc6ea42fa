"""Per-route request counters and a short request log, for tests that assert on traffic."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

from .routes import ROUTE_NAMES

_LOG_SIZE = 10_000


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    route: str
    path: str | None
    status: int | None
    fault: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Counters:
    """Counts every API request (faulted or not) by route name plus ``total``; requests to
    unknown URLs count under ``other``. Admin (``/_emulator``) requests are not counted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._log: deque[LoggedRequest] = deque(maxlen=_LOG_SIZE)
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._counts = {name: 0 for name in sorted(ROUTE_NAMES)}
            self._counts["other"] = 0
            self._counts["total"] = 0
            self._log.clear()

    def hit(self, route: str) -> None:
        with self._lock:
            self._counts[route] = self._counts.get(route, 0) + 1
            self._counts["total"] += 1

    def log(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._log.append(entry)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def requests(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._log)
