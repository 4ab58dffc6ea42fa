"""Credentials: HTTP Basic (email + app password) and ``Token`` sessions from ``/token``.

rclone and the Java SDK send Basic on every request [C][V]; go-koofrclient/OpenDAL exchange
credentials at ``POST /token`` and send ``Token token=X`` (Java quotes it, legacy clients send
``Token X``) [C]. All forms are accepted; anything else is a bare 401.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import secrets
import threading

from . import behaviour

_TOKEN_RE = re.compile(r'^token\s+(?:token\s*=\s*)?"?([^"\s]+)"?\s*$', re.IGNORECASE)


class Authenticator:
    """Checks ``Authorization`` headers for one account and issues session tokens."""

    def __init__(self, email: str, password: str) -> None:
        self.email = email
        self.password = password
        self._tokens: set[str] = set()
        self._lock = threading.Lock()

    def credentials_ok(self, email: str, password: str) -> bool:
        a, b = email, self.email
        if behaviour.EMAIL_CASE_INSENSITIVE:
            a, b = a.lower(), b.lower()
        email_ok = hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))
        pw_ok = hmac.compare_digest(password.encode("utf-8"), self.password.encode("utf-8"))
        return email_ok and pw_ok

    def issue_token(self) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens.add(token)
        return token

    def revoke_all(self) -> None:
        with self._lock:
            self._tokens.clear()

    def header_ok(self, header: str | None) -> bool:
        """True if ``header`` carries valid Basic credentials or a token we issued."""
        if not header:
            return False
        scheme, _, rest = header.strip().partition(" ")
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(rest.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return False
            email, sep, password = decoded.partition(":")
            return bool(sep) and self.credentials_ok(email, password)
        m = _TOKEN_RE.match(header.strip())
        if m is None:
            return False
        with self._lock:
            return m.group(1) in self._tokens
