"""Which failures the tasks retry: unit checks of `kloset_tasks.failures` (no server)."""

from __future__ import annotations

import httpx
import pytest

from kloset.errors import CorruptObject, LocationError, StoreNotFound, WrongPassphrase
from kloset_tasks.failures import explain, retry_helps
from koofrfs.errors import (
    KoofrAuthError,
    KoofrHTTPError,
    KoofrNotFound,
    KoofrPermissionError,
    KoofrRetryError,
)


def _wrapped(outer: BaseException, cause: BaseException) -> BaseException:
    try:
        raise outer from cause
    except BaseException as exc:  # noqa: BLE001 - building a chained exception
        return exc


@pytest.mark.parametrize(
    ("exc", "retry"),
    [
        (WrongPassphrase("wrong passphrase for this store"), False),
        (KoofrAuthError("401", status=401), False),
        (KoofrPermissionError("403", status=403), False),
        (KoofrNotFound("no folder", status=404), False),
        (LocationError("source koofr://x/Photos does not exist"), False),
        (CorruptObject("pack abc failed authentication"), False),
        (_wrapped(StoreNotFound("no kloset store at /x"), FileNotFoundError("CONFIG")), False),
        (KoofrHTTPError("429", status=429), True),
        (KoofrHTTPError("400", status=400), False),
        (KoofrRetryError("503 after 5 attempts", status=503), True),
        # The engine wraps an outage while reading CONFIG: the cause decides.
        (_wrapped(StoreNotFound("cannot open store"), KoofrRetryError("503", status=503)), True),
        (ConnectionResetError("reset"), True),
        (httpx.ConnectError("refused"), True),
        (ValueError("a bug"), False),
    ],
)
def test_retry_only_where_it_helps(exc: BaseException, retry: bool) -> None:
    assert retry_helps(exc) is retry


def test_explain_says_what_to_fix_in_one_line() -> None:
    text = explain(_wrapped(StoreNotFound("no kloset store at /srv/x"), FileNotFoundError()))
    assert text.startswith("StoreNotFound: no kloset store at /srv/x. Fix: create the store")
    assert "create_store=true" in text and "\n" not in text
    assert explain(ValueError("plain")) == "ValueError: plain"


def test_an_outage_is_not_mistaken_for_a_missing_store() -> None:
    outage = _wrapped(StoreNotFound("cannot open store at @k:/s"), KoofrRetryError("503"))
    assert "run it again later" in explain(outage) and "create" not in explain(outage)
