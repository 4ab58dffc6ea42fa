"""The viewer's web application: token check, the page, its static assets and the JSON API.

Access needs the per-run token. The printed URL carries it as `?token=`; the first page load
trades it for an HttpOnly, SameSite=Strict cookie and redirects to a clean URL, so the token
leaves the address bar and never travels in a Referer. Scripts and tools may instead send
`Authorization: Bearer TOKEN` (or `?token=` on any API call). State-changing calls made with
the cookie must also carry `X-Kloset: 1`, a header no other site can make a browser send.
"""

from __future__ import annotations

import contextlib
import hmac
import os
from collections.abc import AsyncIterator, Sequence
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from kloset.errors import (
    AmbiguousSnapshot,
    KlosetError,
    LocationError,
    PathNotFound,
    SnapshotNotFound,
    UnsafePath,
)
from kloset.repository import Repository
from kloset.ui import api
from kloset.ui.catalog import Catalog
from kloset.ui.jobs import JobManager, RestoreTarget, parse_targets
from kloset.ui.params import BadRequest

STATIC_DIR = os.path.join(os.path.dirname(__file__), "static")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self'; frame-src 'self'; object-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
_UNAUTHORIZED_PAGE = """<!doctype html><meta charset="utf-8"><title>Kloset: token needed</title>
<body style="font:16px system-ui;margin:4em auto;max-width:36em;color:#223">
<h1>Token needed</h1><p>This viewer only answers requests that carry its per-run token.
Open the full URL printed by <code>kloset at STORE ui</code>
(it ends in <code>?token=…</code>).</p>"""


def cookie_name(scope: Scope) -> str:
    """One cookie per port: two viewers on 127.0.0.1 must not overwrite each other's token."""
    server = scope.get("server") or ("", 0)
    return f"kloset_token_{server[1] or 0}"


class TokenAuth:
    """ASGI middleware: every request needs the token (header, query or cookie)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        if len(token) < 16:
            raise ValueError("the access token must be at least 16 characters")
        self.app = app
        self.token = token.encode()

    def _ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        auth = request.headers.get("authorization", "")
        cookies = SimpleCookie()
        with contextlib.suppress(Exception):
            cookies.load(request.headers.get("cookie", ""))
        name = cookie_name(scope)
        via: str | None = None
        if auth.lower().startswith("bearer ") and self._ok(auth[7:].strip()):
            via = "bearer"
        elif self._ok(request.query_params.get("token")):
            via = "query"
        elif name in cookies and self._ok(cookies[name].value):
            via = "cookie"
        if via is None:
            await _unauthorized(scope["path"])(scope, receive, send)
            return
        if (
            via == "cookie"
            and request.method not in SAFE_METHODS
            and request.headers.get("x-kloset") != "1"
        ):
            resp: Response = JSONResponse({"error": "missing X-Kloset: 1 header"}, status_code=403)
            await resp(scope, receive, send)
            return
        if via == "query" and request.method == "GET" and not scope["path"].startswith("/api/"):
            # Trade the URL token for a cookie and drop it from the address bar.
            rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            target = scope["path"] + ("?" + urlencode(rest) if rest else "")
            resp = RedirectResponse(
                target, status_code=303, headers={"Referrer-Policy": "no-referrer"}
            )
            resp.set_cookie(
                name,
                self.token.decode(),
                httponly=True,
                samesite="strict",
                path="/",
                secure=scope.get("scheme") == "https",
            )
            await resp(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _unauthorized(path: str) -> Response:
    headers = {"WWW-Authenticate": 'Bearer realm="kloset"', "Cache-Control": "no-store"}
    if path.startswith("/api/"):
        return JSONResponse(
            {"error": "missing or wrong access token"}, status_code=401, headers=headers
        )
    return HTMLResponse(_UNAUTHORIZED_PAGE, status_code=401, headers=headers)


_STATUS = [
    ((SnapshotNotFound, PathNotFound), 404),
    ((AmbiguousSnapshot, UnsafePath, LocationError), 400),
]


async def _kloset_error(request: Request, exc: Exception) -> Response:
    status = next((code for kinds, code in _STATUS if isinstance(exc, kinds)), 500)
    return JSONResponse({"error": str(exc), "kind": type(exc).__name__}, status_code=status)


async def _bad_request(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": str(exc)}, status_code=400)


async def index(request: Request) -> Response:
    return FileResponse(
        os.path.join(STATIC_DIR, "index.html"),
        media_type="text/html; charset=utf-8",
        headers={
            "Content-Security-Policy": PAGE_CSP,
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-cache",
        },
    )


def create_app(
    repo: Repository,
    *,
    token: str,
    restore_targets: Sequence[RestoreTarget | str] = (),
) -> Starlette:
    """The viewer for one opened store. `restore_targets` are the only places restores may
    write (paths or `@NAME[:/sub]`, or already parsed targets)."""
    targets = [t for t in restore_targets if isinstance(t, RestoreTarget)]
    targets += parse_targets([t for t in restore_targets if isinstance(t, str)])
    targets = [RestoreTarget(f"t{i}", t.label, t.location) for i, t in enumerate(targets)]
    jobs = JobManager(repo, targets)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        jobs.shutdown()

    routes: list[Any] = [
        Route("/", index),
        *api.routes,
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            KlosetError: _kloset_error,
            BadRequest: _bad_request,
        },
        lifespan=lifespan,
    )
    app.state.repo = repo
    app.state.catalog = Catalog(repo)
    app.state.jobs = jobs
    app.add_middleware(TokenAuth, token=token)
    return app
