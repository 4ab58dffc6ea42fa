"""Transport-neutral request/response objects passed between ``server.py`` and the handlers,
so API semantics can be read (and tested) without the socket plumbing."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from email.message import Message
from typing import Any, BinaryIO

from . import behaviour
from .bodies import BodyReader
from .errors import ApiError, bad_request, invalid_path
from .paths import normalize_path

JSON_TYPE = "application/json; charset=utf-8"
_JSON_LIMIT = 1024 * 1024


@dataclass
class Request:
    method: str
    route: str
    mount_id: str | None
    url_path: str
    query: dict[str, str]
    headers: Message
    body: BodyReader

    def path_param(self, key: str = "path") -> str:
        """A normalised Koofr path from the query (400 if missing or invalid)."""
        raw = self.query.get(key)
        if raw is None:
            raise invalid_path(f"Missing {key}")
        return normalize_path(raw)

    def int_param(self, key: str) -> int | None:
        raw = self.query.get(key)
        if raw is None:
            return None
        try:
            return int(raw)
        except ValueError as exc:
            raise bad_request(f"Invalid {key}") from exc

    def json_body(self) -> dict[str, Any]:
        raw = self.body.read_all(_JSON_LIMIT)
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise bad_request("Invalid JSON") from exc
        if not isinstance(doc, dict):
            raise bad_request("Invalid JSON")
        return doc


@dataclass
class Response:
    """A complete answer: either ``body`` bytes or ``length`` bytes of ``stream`` from
    ``offset`` (file downloads, never loaded into memory)."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    stream: BinaryIO | None = None
    offset: int = 0
    length: int = 0
    corrupt: bool = False  # a fault: the first bytes sent are altered (see server.tear)

    @property
    def content_length(self) -> int:
        return self.length if self.stream is not None else len(self.body)

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()


def unauthorized() -> Response:
    """A bare 401 (empty body), as the real service and Koofr's fake answer [V][C]."""
    headers = (
        [("WWW-Authenticate", 'Basic realm="Koofr"')] if behaviour.SEND_WWW_AUTHENTICATE else []
    )
    return Response(401, headers)


def json_response(
    doc: Any, status: int = 200, headers: list[tuple[str, str]] | None = None
) -> Response:
    body = json.dumps(doc, ensure_ascii=False).encode("utf-8")
    return Response(status, [("Content-Type", JSON_TYPE), *(headers or [])], body)


def error_response(err: ApiError, request_id: str) -> Response:
    headers = [("Content-Type", JSON_TYPE), *err.headers.items()]
    return Response(err.status, headers, err.body(request_id))


def get_str(doc: dict[str, Any], key: str) -> str:
    """A required string member of a JSON body (400 otherwise)."""
    value = doc.get(key)
    if not isinstance(value, str):
        raise bad_request(f"Invalid {key}")
    return value


def get_opt_str(doc: dict[str, Any], key: str) -> str | None:
    return None if doc.get(key) is None else get_str(doc, key)


def get_int(doc: dict[str, Any], key: str) -> int | None:
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"Invalid {key}")
    return value
