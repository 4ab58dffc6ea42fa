"""Koofr API errors as Python exceptions, so the store can fail with the exact HTTP outcome."""

from __future__ import annotations

import json
import uuid


class ApiError(Exception):
    """An error answered as ``{"error": {"code", "message"}, "requestId"}`` with ``status``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def body(self, request_id: str | None = None) -> bytes:
        """The JSON error document (Koofr fake / Java SDK / Vault agree on this shape)."""
        doc = {
            "error": {"code": self.code, "message": self.message},
            "requestId": request_id or str(uuid.uuid4()),
        }
        return json.dumps(doc).encode("utf-8")


class ClientGone(Exception):
    """The client closed the connection or sent a truncated/malformed body mid-request."""


def not_found(message: str = "File not found") -> ApiError:
    return ApiError(404, "NotFound", message)


def bad_request(message: str, code: str = "BadRequest") -> ApiError:
    return ApiError(400, code, message)


def invalid_path(message: str = "Invalid path") -> ApiError:
    return ApiError(400, "InvalidPath", message)


def invalid_name(message: str = "Invalid name") -> ApiError:
    return ApiError(400, "BadRequest", message)


def not_dir() -> ApiError:
    return ApiError(400, "NotDir", "Directory expected")


def not_file() -> ApiError:
    return ApiError(400, "NotFile", "Not a file")


def conflict(message: str = "Conflict") -> ApiError:
    return ApiError(409, "Conflict", message)


def already_exists(status: int = 409) -> ApiError:
    return ApiError(status, "AlreadyExists", "File already exists")
