"""Which failures a retry can fix, and what the user must fix for the others.

A task retry costs minutes of backoff; spent on a wrong passphrase, a revoked app password, a
missing folder or a damaged store it only delays the one message the user needs. Koofr's client
already retries each request (429/5xx/dropped connections, honouring Retry-After); a task retry
is the second line for outages longer than that, so only those failures are retried here.
"""

from __future__ import annotations

from typing import Any

from kloset.errors import (
    CorruptObject,
    KlosetError,
    PassphraseRequired,
    SourceChanged,
    StoreLocked,
    StoreNotFound,
    WrongPassphrase,
)
from koofrfs.errors import (
    KoofrAuthError,
    KoofrChangedError,
    KoofrHTTPError,
    KoofrMountError,
    KoofrNotFound,
    KoofrPermissionError,
    KoofrQuotaExceeded,
    KoofrRetryError,
    KoofrUploadError,
)

# Koofr answers these when it is busy or briefly broken; anything else 4xx is about the request.
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and its causes, outermost first (the engine wraps backend errors in its own)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 16:
        seen.append(current)
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return seen


def _verdict(exc: BaseException) -> bool | None:
    """True: a retry may help; False: it cannot; None: this link of the chain does not say."""
    if isinstance(exc, KoofrRetryError | KoofrChangedError | KoofrUploadError):
        return True
    if isinstance(exc, StoreLocked | SourceChanged):
        return True
    if isinstance(exc, KoofrHTTPError):
        return exc.status in TRANSIENT_STATUSES
    if isinstance(exc, KoofrAuthError | KoofrPermissionError | KoofrMountError):
        return False
    if isinstance(exc, KoofrQuotaExceeded | FileNotFoundError | NotADirectoryError):
        return False
    if isinstance(exc, PermissionError | IsADirectoryError):
        return False
    if isinstance(exc, KlosetError):
        return False  # wrong passphrase, no store, corrupt object, bad location...
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    try:
        import httpx
    except ImportError:  # pragma: no cover - httpx is a dependency
        return None
    if isinstance(exc, httpx.TransportError):
        return True
    return None


def retry_helps(exc: BaseException) -> bool:
    """Whether running the task again may succeed.

    The innermost cause decides (a `StoreNotFound` wrapping a 503 is an outage, one wrapping
    a missing CONFIG is not). Unknown errors are bugs or bad input: not retried.
    """
    for link in reversed(_chain(exc)):
        verdict = _verdict(link)
        if verdict is not None:
            return verdict
    return False


def retry_condition(task: Any, task_run: Any, state: Any) -> bool:
    """`retry_condition_fn` of every Kloset task: retry only what `retry_helps`."""
    exc = getattr(state, "data", None)
    if not isinstance(exc, BaseException):
        try:
            exc = state.result(raise_on_failure=False)
        except Exception as error:  # noqa: BLE001 - the failure itself is what we classify
            exc = error
    return isinstance(exc, BaseException) and retry_helps(exc)


def fix_for(exc: BaseException) -> str | None:
    """What the user must change so the next run succeeds; None when nothing obvious."""
    if retry_helps(exc):  # e.g. a StoreNotFound that is really a 503 reading CONFIG
        return "Koofr (or the store's disk) was busy or unreachable: run it again later"
    for link in _chain(exc):
        hint = _hint(link)
        if hint:
            return hint
    return None


def _hint(exc: BaseException) -> str | None:
    if isinstance(exc, WrongPassphrase):
        return (
            "set the store's passphrase on its Kloset Repository block "
            "(or KLOSET_PASSPHRASE on the worker)"
        )
    if isinstance(exc, PassphraseRequired):
        return "save the passphrase on the Kloset Repository block, or set KLOSET_PASSPHRASE"
    if isinstance(exc, KoofrAuthError):
        return (
            "Koofr refused the log-in: put an application password (Koofr → Preferences → "
            "Password) into the Koofr Credentials block"
        )
    if isinstance(exc, KoofrPermissionError):
        return "the Koofr account may not write there: pick a folder it owns"
    if isinstance(exc, KoofrNotFound | KoofrMountError):
        return "check the base folder (and mount) of the Koofr Storage block"
    if isinstance(exc, KoofrQuotaExceeded):
        return "the Koofr account is full: free space or prune the store"
    if isinstance(exc, StoreNotFound):
        return store_missing_hint()
    if isinstance(exc, CorruptObject):
        return (
            "the store is damaged: run the kloset-verify flow (or `kloset at STORE check`) "
            "to see what is affected"
        )
    if isinstance(exc, StoreLocked):
        return "another run holds the store's lock: wait for it, or remove a stale lock"
    return None


def store_missing_hint() -> str:
    """One line on how to create a store, for the UI and the API alike."""
    return (
        "create the store once: run the deployment with create_store=true "
        "(Run → Custom run), or `kloset at STORE create`"
    )


def explain(exc: BaseException) -> str:
    """``<error>. Fix: <what to do>`` in one line, for a failed run's message."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    hint = fix_for(exc)
    return f"{text}. Fix: {hint}" if hint else text
