"""A Koofr run does not import httpx's command-line tool, nor load the CA bundle for http."""

from __future__ import annotations

import ssl
import subprocess
import sys

from koofrfs.client import _tls_context

PROBE = """
import sys
import koofrfs.client, httpx
print(sorted(m for m in ("click", "pygments", "rich") if m in sys.modules))
try:
    httpx.main(["--help"])
except SystemExit as exc:
    print("exit", exc.code, type(sys.modules["httpx._main"].Client).__name__)
"""


def test_httpx_cli_stays_unimported_until_called() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    ).stdout.splitlines()
    assert out[0] == "[]"
    assert out[-1] == "exit 0 type"  # the real tool ran: the stand-in handed over to it


def test_plain_http_trusts_no_certificate_and_https_verifies() -> None:
    ctx = _tls_context("http://127.0.0.1:8080")
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.get_ca_certs() == []
    assert _tls_context("https://app.koofr.net") is True
