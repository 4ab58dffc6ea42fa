"""``/_emulator/*`` control endpoints (no auth; they exist only on the emulator).

* ``GET /_emulator/faults`` -> rules; ``POST`` one rule object or a list -> ``{"ids": [...]}``;
  ``DELETE /_emulator/faults`` clears all, ``DELETE /_emulator/faults/{id}`` one rule.
* ``GET /_emulator/counters``, ``POST /_emulator/counters/reset``.
* ``GET /_emulator/requests`` (recent request log), ``GET /_emulator/health``.
* ``POST /_emulator/trash/empty`` (what Koofr's web app does) -> ``{"freed": bytes}``.
* ``POST /_emulator/mounts/{slug or name}/offline`` (or ``/online``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from .errors import ApiError, bad_request
from .faults import FaultInjector, FaultRule
from .http_types import Response, json_response
from .stats import Counters


class AdminApi:
    def __init__(
        self,
        faults: FaultInjector,
        counters: Counters,
        health: Callable[[], dict[str, Any]],
        empty_trash: Callable[[], int],
        set_online: Callable[[str, bool], None],
    ) -> None:
        self.faults = faults
        self.counters = counters
        self.health = health
        self.empty_trash = empty_trash
        self.set_online = set_online

    def __call__(self, method: str, path: str, body: bytes) -> Response:
        path = path.rstrip("/")
        if path == "/_emulator/faults":
            if method == "GET":
                return json_response(self.faults.describe())
            if method == "POST":
                return json_response({"ids": [self.faults.add(r) for r in _rules(body)]})
            if method == "DELETE":
                self.faults.clear()
                return json_response({"ok": True})
        elif path.startswith("/_emulator/faults/") and method == "DELETE":
            try:
                rule_id = int(path.rsplit("/", 1)[1])
            except ValueError as exc:
                raise bad_request("Invalid rule id") from exc
            if not self.faults.remove(rule_id):
                raise ApiError(404, "NotFound", "No such rule")
            return json_response({"ok": True})
        elif path == "/_emulator/counters" and method == "GET":
            return json_response(self.counters.snapshot())
        elif path == "/_emulator/counters/reset" and method == "POST":
            self.counters.reset()
            return json_response({"ok": True})
        elif path == "/_emulator/requests" and method == "GET":
            return json_response([r.to_dict() for r in self.counters.requests()])
        elif path == "/_emulator/health" and method == "GET":
            return json_response(self.health())
        elif path == "/_emulator/trash/empty" and method == "POST":
            return json_response({"freed": self.empty_trash()})
        elif path.startswith("/_emulator/mounts/") and method == "POST":
            which, _, state = unquote(path[len("/_emulator/mounts/") :]).rpartition("/")
            if state not in ("online", "offline"):
                raise bad_request("use /_emulator/mounts/NAME/online or /offline")
            try:
                self.set_online(which, state == "online")
            except KeyError as exc:
                raise ApiError(404, "NotFound", "No such mount") from exc
            return json_response({"ok": True})
        raise ApiError(404, "NotFound", "Unknown emulator endpoint")


def _rules(body: bytes) -> list[FaultRule]:
    try:
        doc = json.loads(body.decode("utf-8") or "null")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_request("Invalid JSON") from exc
    items = doc if isinstance(doc, list) else [doc]
    rules = []
    for item in items:
        if not isinstance(item, dict):
            raise bad_request("A fault rule must be a JSON object")
        try:
            rules.append(FaultRule.from_dict(item))
        except (TypeError, ValueError) as exc:
            raise bad_request(f"Invalid fault rule: {exc}") from exc
    return rules
