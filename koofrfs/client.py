"""HTTP transport to Koofr: Basic auth, a bounded pool, a concurrency limit and retries.

One :class:`KoofrClient` per (endpoint, user, settings) per process, shared by every filesystem
instance that uses the same account (fsspec caches instances per *thread*, so without sharing the
concurrency limit would multiply by the number of worker threads and defeat its purpose: staying
under Koofr's rate limits). The underlying ``httpx.Client`` is created lazily and re-created after
a fork, so filesystem objects can be pickled to Dask/Prefect workers and used there.
"""

from __future__ import annotations

import json
import os
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from koofrfs import __version__
from koofrfs.errors import (
    KoofrAuthError,
    KoofrError,
    KoofrExists,
    KoofrHTTPError,
    KoofrIsADirectory,
    KoofrMountOffline,
    KoofrNotADirectory,
    KoofrNotFound,
    KoofrPermissionError,
    KoofrQuotaExceeded,
    KoofrRetryError,
)
from koofrfs.retry import RetryPolicy

USER_AGENT = f"prefect-kloset/{__version__}"
PROVIDER_ENDPOINTS = {"koofr": "https://app.koofr.net", "digistorage": "https://storage.rcs-rds.ro"}
# Failures that a new attempt can fix; a malformed request or URL will fail the same way again.
PERMANENT_TRANSPORT_ERRORS = (httpx.UnsupportedProtocol, httpx.LocalProtocolError)
_ERROR_BODY_LIMIT = 10 * 1024
#: Koofr error codes that no retry can fix, whatever the status they come with [C koofr/vault].
PERMANENT_CODES = frozenset({"DeviceOffline"})

BodyFactory = Callable[[int], Iterable[bytes]]
"""Called once per attempt (1-based) to produce a request body; raising stops the retries."""


def resolve_endpoint(provider: str | None, endpoint: str | None) -> tuple[str, str]:
    """Return (provider, endpoint) the way rclone settles them.

    ``koofr`` and ``digistorage`` force their well-known endpoints; without a provider it is
    guessed from the endpoint (empty or app.koofr.net means Koofr); ``other`` needs an endpoint.
    """
    endpoint = (endpoint or "").strip()
    if provider is None or provider == "":
        if not endpoint or endpoint.startswith(PROVIDER_ENDPOINTS["koofr"]):
            provider = "koofr"
        elif endpoint.startswith(PROVIDER_ENDPOINTS["digistorage"]):
            provider = "digistorage"
        else:
            provider = "other"
    provider = provider.lower()
    if provider in PROVIDER_ENDPOINTS:
        return provider, PROVIDER_ENDPOINTS[provider]
    if provider != "other":
        raise ValueError(f"unknown Koofr provider {provider!r}: use koofr, digistorage or other")
    if not endpoint:
        raise ValueError("provider 'other' needs an endpoint URL, e.g. https://koofr.example.com")
    if not endpoint.startswith(("http://", "https://")):
        raise ValueError(f"Koofr endpoint must be an http(s) URL, got {endpoint!r}")
    return provider, endpoint.rstrip("/")


@dataclass(frozen=True)
class ClientConfig:
    """Everything that identifies a client; equal configs share one client in a process."""

    endpoint: str
    user: str
    password: str
    max_connections: int = 8
    max_concurrency: int = 8
    timeout: float = 60.0
    retries: int = 8
    backoff_base: float = 0.25
    backoff_max: float = 30.0

    def __repr__(self) -> str:  # never leak the password into logs or tracebacks
        return f"ClientConfig(endpoint={self.endpoint!r}, user={self.user!r}, password='***')"


def _error_detail(response: httpx.Response) -> tuple[str | None, str]:
    """Koofr's error code and message from its JSON error body, else the start of the body."""
    text = response.text[:_ERROR_BODY_LIMIT] if response.content else ""
    try:
        data = json.loads(text) if text else None
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        err = data["error"]
        return err.get("code"), str(err.get("message") or err.get("code") or "")
    return None, " ".join(text.split())[:200]


def _tls_context(endpoint: str) -> ssl.SSLContext | bool:
    """httpx's default (verify against the CA bundle) for https; for a plain-http endpoint (the
    emulator, a local gateway) a context that trusts nothing: it is never used for http, loading
    the CA bundle cost ~0.1 s of every run, and any TLS it were ever asked for fails closed."""
    if endpoint.startswith("http://"):
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, with no CA: trusts nothing
    return True


class KoofrClient:
    """Thread-safe Koofr HTTP client; see the module docstring for why it is shared and lazy."""

    _shared: dict[tuple[int, ClientConfig], KoofrClient] = {}
    _shared_lock = threading.Lock()

    def __init__(
        self,
        config: ClientConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.config = config
        self.policy = policy or RetryPolicy(config.retries, config.backoff_base, config.backoff_max)
        self._transport = transport
        self._lock = threading.Lock()
        self._http: httpx.Client | None = None
        self._sem = threading.BoundedSemaphore(max(1, config.max_concurrency))
        self._pid = os.getpid()

    @classmethod
    def shared(cls, config: ClientConfig) -> KoofrClient:
        """The process-wide client for ``config``, created on first use."""
        key = (os.getpid(), config)
        with cls._shared_lock:
            client = cls._shared.get(key)
            if client is None:
                client = cls._shared[key] = cls(config)
            return client

    # -- plumbing -----------------------------------------------------------------------------

    def _client(self) -> httpx.Client:
        if self._http is not None and self._pid == os.getpid():
            return self._http
        if self._pid != os.getpid():  # forked: the parent's locks and sockets are not ours
            self._lock = threading.Lock()
            self._sem = threading.BoundedSemaphore(max(1, self.config.max_concurrency))
            self._http = None
            self._pid = os.getpid()
        with self._lock:
            if self._http is None:
                cfg = self.config
                self._http = httpx.Client(
                    base_url=cfg.endpoint + "/",
                    auth=httpx.BasicAuth(cfg.user, cfg.password),
                    headers={"User-Agent": USER_AGENT},
                    limits=httpx.Limits(
                        max_connections=cfg.max_connections,
                        max_keepalive_connections=cfg.max_connections,
                    ),
                    timeout=httpx.Timeout(cfg.timeout),
                    verify=_tls_context(cfg.endpoint),
                    transport=self._transport,
                    follow_redirects=False,
                )
            return self._http

    def close(self) -> None:
        """Close pooled connections; the client reopens lazily if used again."""
        with self._lock:
            if self._http is not None:
                self._http.close()
                self._http = None

    def _error(self, response: httpx.Response, method: str, where: str) -> KoofrError:
        """Map a non-retryable error response to the matching exception."""
        status = response.status_code
        code, message = _error_detail(response)
        if status == 401:
            return KoofrAuthError(
                f"Koofr rejected the credentials for user {self.config.user} at "
                f"{self.config.endpoint}: use an application password",
                status=status,
                method=method,
                path=where,
                code=code,
            )
        cls: type[KoofrError] = KoofrHTTPError
        if code == "DeviceOffline":
            cls = KoofrMountOffline
        elif status == 403:
            cls = KoofrPermissionError
        elif status == 413 or code == "QuotaExceeded":
            cls = KoofrQuotaExceeded
        elif status == 404 or code == "NotFound":
            cls = KoofrNotFound
        elif status == 409 or code == "AlreadyExists":
            cls = KoofrExists
        elif code == "NotDir":
            cls = KoofrNotADirectory
        elif code == "NotFile":
            cls = KoofrIsADirectory
        reason = f"{status} {response.reason_phrase}".strip()
        detail = f": {message}" if message else ""
        return cls(
            f"Koofr {method} {where} failed: {reason}{detail}",
            status=status,
            method=method,
            path=where,
            code=code,
        )

    def exhausted(
        self, method: str, where: str, attempts: int, last: str, status: int | None
    ) -> KoofrRetryError:
        """The error for a request whose retryable failures outlasted every attempt."""
        return KoofrRetryError(
            f"Koofr {method} {where} failed after {attempts} attempts: {last}",
            status=status,
            method=method,
            path=where,
        )

    def _send(
        self,
        method: str,
        url: str,
        *,
        where: str,
        params: Sequence[tuple[str, str]] | None,
        headers: dict[str, str] | None,
        json_body: Any,
        body: BodyFactory | None,
        expected: Sequence[int],
        ok_on_retry: Sequence[int],
        read_body: bool,
    ) -> tuple[httpx.Response, Callable[[], None]]:
        """One logical request with retries; returns the response and its release function.

        The semaphore slot is held from sending until the caller releases (after reading the
        body), so "concurrency" counts bytes in flight, not just requests being set up.
        """
        http = self._client()
        attempts = self.policy.attempts
        failures = 0
        while True:
            attempt = failures + 1
            self._sem.acquire()
            released = False

            def release(sem: threading.BoundedSemaphore = self._sem) -> None:
                nonlocal released
                if not released:
                    released = True
                    sem.release()

            response: httpx.Response | None = None
            try:
                request = http.build_request(
                    method,
                    url,
                    params=params,
                    headers=headers,
                    json=json_body,
                    content=body(attempt) if body is not None else None,
                )
                response = http.send(request, stream=True)
                if read_body or response.status_code not in expected:
                    response.read()
            except PERMANENT_TRANSPORT_ERRORS:
                release()
                raise
            except httpx.TransportError as exc:
                if response is not None:
                    response.close()
                release()
                failures += 1
                last = f"{type(exc).__name__}: {exc}".rstrip(": ")
                if failures >= attempts:
                    raise self.exhausted(method, where, failures, last, None) from exc
                self.policy.wait(failures)
                continue
            except BaseException:
                if response is not None:
                    response.close()
                release()
                raise
            status = response.status_code
            if status in expected or (failures and status in ok_on_retry):
                if read_body:
                    response.close()
                    release()
                return response, release
            response.close()
            release()
            if (
                not self.policy.is_retryable_status(status)
                or _error_detail(response)[0] in PERMANENT_CODES
            ):
                raise self._error(response, method, where)
            failures += 1
            if failures >= attempts:
                last = f"{status} {response.reason_phrase}".strip()
                raise self.exhausted(method, where, failures, last, status)
            self.policy.wait(failures, response.headers.get("Retry-After"))

    # -- public API ---------------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        path: str | None = None,
        params: Sequence[tuple[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        json_body: Any = None,
        body: BodyFactory | None = None,
        expected: Sequence[int] = (200,),
        ok_on_retry: Sequence[int] = (),
    ) -> httpx.Response:
        """Send a request and read its body, retrying transient failures.

        ``path`` is the Koofr object path used in error messages (defaults to ``url``).
        ``ok_on_retry`` lists statuses that count as success only after an earlier attempt may
        already have done the work (e.g. 404 on a repeated delete).
        """
        response, _ = self._send(
            method,
            url,
            where=path or "/" + url.lstrip("/"),
            params=params,
            headers=headers,
            json_body=json_body,
            body=body,
            expected=expected,
            ok_on_retry=ok_on_retry,
            read_body=True,
        )
        return response

    def get_json(
        self, url: str, *, path: str | None = None, params: Sequence[tuple[str, str]] | None = None
    ) -> Any:
        """GET a JSON resource."""
        response = self.request(
            "GET", url, path=path, params=params, headers={"Accept": "application/json"}
        )
        return response.json()

    @contextmanager
    def stream(
        self,
        method: str,
        url: str,
        *,
        path: str | None = None,
        params: Sequence[tuple[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        expected: Sequence[int] = (200,),
    ) -> Iterator[httpx.Response]:
        """Send a request and yield the response with its body unread (retries up to headers)."""
        response, release = self._send(
            method,
            url,
            where=path or "/" + url.lstrip("/"),
            params=params,
            headers=headers,
            json_body=None,
            body=None,
            expected=expected,
            ok_on_retry=(),
            read_body=False,
        )
        try:
            yield response
        finally:
            response.close()
            release()
