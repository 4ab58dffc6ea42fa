"""HTTP/1.1 plumbing on ``http.server``: keep-alive, body framing, auth, faults, streaming.

``ThreadingHTTPServer`` is used on purpose: one thread per connection and raw socket access
make "drop the connection half-way through a body" faults exact, and it adds no dependency.
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from . import behaviour
from .api import KoofrApi
from .auth import Authenticator
from .bodies import BodyReader
from .errors import ApiError, ClientGone, bad_request
from .faults import FaultInjector, FaultRule
from .http_types import Request, Response, error_response, unauthorized
from .routes import match_route
from .stats import Counters, LoggedRequest

log = logging.getLogger("koofr_emulator")
_SEND_CHUNK = 256 * 1024
_INVERT = bytes(255 - b for b in range(256))
_DROP_UPLOAD_READ = 64 * 1024


@dataclass
class ServerContext:
    """Everything a request handler needs; owned by ``KoofrEmulator``."""

    api: KoofrApi
    auth: Authenticator
    faults: FaultInjector
    counters: Counters
    latency: float
    admin: Callable[[str, str, bytes], Response]


class _Dropped(Exception):
    """A drop fault fired: abandon the connection without (finishing) a response."""


def fault_response(rule: FaultRule, request_id: str) -> Response:
    headers: dict[str, str] = {}
    if rule.retry_after is not None and rule.status in behaviour.RETRY_AFTER_STATUSES:
        headers["Retry-After"] = str(max(0, math.ceil(rule.retry_after)))
    code = behaviour.FAULT_ERROR_CODES.get(rule.status, "Other")
    err = ApiError(rule.status, code, f"Injected fault ({rule.status})", headers)
    return error_response(err, request_id)


def tear(resp: Response, kind: str) -> None:
    """Make a download torn but well-framed: ``truncate`` halves it (and says so in
    ``Content-Range``, so nothing at the HTTP level is wrong), ``corrupt`` alters its first
    bytes. ``X-File-Info`` still describes the whole, unchanged file."""
    if resp.status not in (200, 206) or resp.length < 2:
        return
    if kind == "corrupt":
        resp.corrupt = True
        return
    resp.length //= 2
    start = resp.offset
    resp.headers = [
        (k, f"bytes {start}-{start + resp.length - 1}/{v.rsplit('/', 1)[1]}")
        if k == "Content-Range"
        else (k, v)
        for k, v in resp.headers
    ]


class RequestHandler(BaseHTTPRequestHandler):
    """One connection; ``handle_one_request`` loops for keep-alive."""

    protocol_version = "HTTP/1.1"
    server_version = "KoofrEmulator"
    sys_version = ""
    disable_nagle_algorithm = True
    timeout = behaviour.KEEPALIVE_TIMEOUT_S
    server: EmulatorHTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s %s", self.address_string(), format % args)

    # -- request entry ------------------------------------------------------------------------

    def _body(self) -> BodyReader:
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        raw_length = self.headers.get("Content-Length")
        length = None
        if raw_length is not None and not chunked:
            if not raw_length.strip().isdigit():
                raise bad_request("Invalid Content-Length")
            length = int(raw_length)
        return BodyReader(self.rfile, length, chunked)  # type: ignore[arg-type]

    def _dispatch(self) -> None:
        ctx: ServerContext = self.server.ctx
        request_id = str(uuid.uuid4())
        split = urlsplit(self.path)
        try:
            body = self._body()
        except ApiError as err:
            self.close_connection = True
            self._send(error_response(err, request_id), request_id, None)
            return
        if split.path.startswith("/_emulator/"):
            try:
                resp = ctx.admin(self.command, split.path, body.read_all(1024 * 1024))
            except ApiError as err:
                resp = error_response(err, request_id)
            except (ClientGone, ConnectionError, TimeoutError):
                self._abort()
                return
            self._send(resp, request_id, body)
            return
        match = match_route(split.path)
        route = match.name if match else "other"
        ctx.counters.hit(route)
        file_path: str | None = None
        fault: str | None = None
        drop_midway = False
        torn: str | None = None
        try:
            try:
                pairs = parse_qsl(split.query, keep_blank_values=True, errors="strict")
            except UnicodeDecodeError as exc:
                raise bad_request("Invalid query string") from exc
            query: dict[str, str] = {}
            for key, value in pairs:
                query.setdefault(key, value)
            file_path = query.get("path")
            if ctx.latency > 0:
                time.sleep(ctx.latency)
            if match is None:
                raise ApiError(404, "NotFound", "Not found")
            if self.command not in match.methods:
                allow = ", ".join(sorted(match.methods))
                raise ApiError(
                    behaviour.METHOD_NOT_ALLOWED_STATUS,
                    "BadRequest",
                    "Method not allowed",
                    {"Allow": allow},
                )
            if route != "token" and not ctx.auth.header_ok(self.headers.get("Authorization")):
                resp = unauthorized()
            else:
                decision = ctx.faults.decide(route, self.command, split.path, file_path)
                if decision.delay > 0:
                    fault = "latency"
                    time.sleep(decision.delay)
                if decision.drop:
                    fault = "drop"
                    if route == "files/put":
                        self._drop_upload(body)
                    if route != "files/get":
                        raise _Dropped()
                    drop_midway = True
                torn = decision.body
                if torn is not None:
                    fault = torn
                if decision.status is not None:
                    fault = "status"
                    resp = fault_response(decision.status, request_id)
                else:
                    req = Request(
                        self.command, route, match.mount_id, split.path, query, self.headers, body
                    )
                    resp = ctx.api.handle(req)
        except ApiError as err:
            resp = error_response(err, request_id)
        except (_Dropped, ClientGone, ConnectionError, TimeoutError) as exc:
            ctx.counters.log(
                LoggedRequest(self.command, route, file_path, None, fault or type(exc).__name__)
            )
            self._abort()
            return
        except Exception:
            log.exception("emulator error on %s %s", self.command, self.path)
            resp = error_response(ApiError(500, "Other", "Internal server error"), request_id)
        ctx.counters.log(LoggedRequest(self.command, route, file_path, resp.status, fault))
        self._send(resp, request_id, body, drop_midway=drop_midway, torn=torn)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _dispatch

    # -- responses ----------------------------------------------------------------------------

    def _drop_upload(self, body: BodyReader) -> None:
        """Read part of the request body, then give up (the caller aborts)."""
        with contextlib.suppress(ClientGone):
            body.read(_DROP_UPLOAD_READ)

    def _abort(self) -> None:
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _send(
        self,
        resp: Response,
        request_id: str,
        body: BodyReader | None,
        drop_midway: bool = False,
        torn: str | None = None,
    ) -> None:
        try:
            if body is not None and not body.done:
                try:
                    if not body.drain(behaviour.DRAIN_LIMIT_BYTES):
                        self.close_connection = True
                except ClientGone:
                    self._abort()
                    return
            if torn is not None and resp.stream is not None:
                tear(resp, torn)
            length = resp.content_length
            if drop_midway and length < 2:
                self._abort()
                return
            self.send_response(resp.status)
            for key, value in resp.headers:
                self.send_header(key, value)
            self.send_header("X-Request-Id", request_id)
            self.send_header("Content-Length", str(length))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command == "HEAD":
                return
            limit = length // 2 if drop_midway else length
            if resp.stream is None:
                self.wfile.write(resp.body[:limit])
            else:
                self._copy_stream(resp, limit)
            if drop_midway:
                self._abort()
        except (ConnectionError, TimeoutError, OSError):
            self.close_connection = True
        finally:
            resp.close()

    def _copy_stream(self, resp: Response, limit: int) -> None:
        assert resp.stream is not None
        resp.stream.seek(resp.offset)
        left = limit
        while left > 0:
            data = resp.stream.read(min(_SEND_CHUNK, left))
            if not data:  # file shrank behind our back: the client sees a short body
                self.close_connection = True
                return
            if resp.corrupt and left == limit:
                data = data.translate(_INVERT)
            self.wfile.write(data)
            left -= len(data)


class EmulatorHTTPServer(ThreadingHTTPServer):
    """Threaded server that remembers open connections so ``stop()`` can cut them."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 256
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], ctx: ServerContext) -> None:
        self.ctx = ctx
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, RequestHandler)

    def track(self, sock: socket.socket, alive: bool) -> None:
        with self._conns_lock:
            if alive:
                self._conns.add(sock)
            else:
                self._conns.discard(sock)

    def open_connections(self) -> int:
        with self._conns_lock:
            return len(self._conns)

    def close_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for sock in conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
