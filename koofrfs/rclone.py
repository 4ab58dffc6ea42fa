"""Import Koofr remotes from rclone: config parsing and rclone's password (de)obscuring.

People who already use Koofr with rclone have a working remote; asking them to type the app
password again is friction and a chance for typos. rclone stores it *obscured* (AES-CTR with a
key compiled into rclone: obfuscation, not encryption), so we can reveal it exactly as
``rclone reveal`` does. ``rclone config show NAME`` masks the password, so that form is detected
and answered with what to run instead.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from koofrfs.client import resolve_endpoint
from koofrfs.errors import RcloneConfigError

# rclone fs/config/obscure: the fixed AES-256 key every rclone binary uses.
_OBSCURE_KEY = bytes.fromhex("9c935b48730a554d6bfd7c63c886a92bd390198eb8128afbf4de162b8b95f638")
_IV_SIZE = 16
MASKED_PASSWORD = "*** ENCRYPTED ***"
_ENCRYPTED_CONFIG_MARK = "RCLONE_ENCRYPT_V0:"


def _ctr(iv: bytes, data: bytes) -> bytes:
    cipher = Cipher(algorithms.AES(_OBSCURE_KEY), modes.CTR(iv))
    ctx = cipher.encryptor()  # CTR: encrypting and decrypting are the same operation
    return ctx.update(data) + ctx.finalize()


def obscure(plain: str) -> str:
    """Obscure a password the way ``rclone obscure`` does (random IV, so output varies)."""
    iv = secrets.token_bytes(_IV_SIZE)
    raw = iv + _ctr(iv, plain.encode("utf-8"))
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def reveal(obscured: str) -> str:
    """Reveal an rclone-obscured password (inverse of :func:`obscure`, like ``rclone reveal``)."""
    text = obscured.strip()
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RcloneConfigError(
            "base64 decode failed when revealing password - is it obscured?"
        ) from exc
    if len(raw) < _IV_SIZE:
        raise RcloneConfigError("input too short when revealing password - is it obscured?")
    try:
        return _ctr(raw[:_IV_SIZE], raw[_IV_SIZE:]).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RcloneConfigError("revealed password is not UTF-8 - is it obscured?") from exc


def _parse_ini(text: str) -> dict[str, dict[str, str]]:
    """rclone's INI dialect: ``[name]`` headers, ``key = value`` lines, ``#``/``;`` comments.

    Written by hand rather than with configparser because rclone values are raw (a ``%`` or a
    leading ``;`` in a value is data) and because pasted terminal output carries decoration.
    """
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for number, raw_line in enumerate(text.splitlines(), 1):
        line = raw_line.strip()
        if not line or line[0] in "#;" or set(line) == {"-"}:
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1].strip(), {})
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise RcloneConfigError(
                f"line {number} of the rclone config is neither [name] nor key = value: {line!r}"
            )
        if current is None:
            raise RcloneConfigError(
                f"line {number} of the rclone config comes before any [name] header: {line!r}"
            )
        current[key.strip()] = value.strip()
    return sections


def parse_rclone_config(text: str) -> dict[str, dict[str, str]]:
    """Sections of an rclone config: ``rclone config show`` (all or one) or ``config dump`` JSON."""
    stripped = text.strip().lstrip("\ufeff")
    if not stripped:
        raise RcloneConfigError("the rclone config is empty")
    if _ENCRYPTED_CONFIG_MARK in stripped:
        raise RcloneConfigError(
            "this rclone config file is encrypted with a config password: pipe the output of "
            '"rclone config dump" (rclone asks for the password) instead'
        )
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except ValueError as exc:
            raise RcloneConfigError(f"rclone config dump output is not valid JSON: {exc}") from exc
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            raise RcloneConfigError('expected "rclone config dump" JSON: {"name": {...}, ...}')
        return {
            str(name): {str(k): "" if v is None else str(v) for k, v in section.items()}
            for name, section in data.items()
        }
    sections = _parse_ini(stripped)
    if not sections:
        raise RcloneConfigError("no [name] sections found in the rclone config")
    return sections


def read_rclone_config_file(path: str | os.PathLike[str]) -> dict[str, dict[str, str]]:
    """Parse an rclone config file (e.g. ``~/.config/rclone/rclone.conf``)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RcloneConfigError(f"cannot read rclone config {path}: {exc.strerror or exc}") from exc
    return parse_rclone_config(text)


def default_rclone_config_path() -> Path:
    """Where rclone looks for its config by default (``$RCLONE_CONFIG`` first)."""
    if os.environ.get("RCLONE_CONFIG"):
        return Path(os.environ["RCLONE_CONFIG"])
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "rclone" / "rclone.conf"


@dataclass(frozen=True)
class KoofrRemote:
    """A Koofr account as rclone describes it, with the password revealed."""

    name: str
    endpoint: str
    provider: str
    user: str
    password: str = field(repr=False)
    mountid: str | None = None
    setmtime: bool = True

    def summary(self) -> dict[str, Any]:
        """Everything but the password, for listings and logs."""
        data = asdict(self)
        del data["password"]
        return data

    def storage_options(self) -> dict[str, Any]:
        """Keyword arguments for ``fsspec.filesystem("koofr", **options)``."""
        options: dict[str, Any] = {
            "user": self.user,
            "password": self.password,
            "endpoint": self.endpoint,
            "provider": self.provider,
        }
        if self.mountid:
            options["mountid"] = self.mountid
        if not self.setmtime:
            options["setmtime"] = False
        return options


def _describe(sections: dict[str, dict[str, str]]) -> str:
    return ", ".join(f"{n} ({s.get('type', '?')})" for n, s in sections.items()) or "none"


def _as_bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in ("true", "1", "yes", "on")


def koofr_remote(sections: dict[str, dict[str, str]], name: str | None = None) -> KoofrRemote:
    """Pick a Koofr remote (the only one, or ``name``) and reveal its password."""
    if name is not None:
        if name not in sections:
            raise RcloneConfigError(
                f"no rclone remote named {name!r} in the config; remotes: {_describe(sections)}"
            )
    else:
        koofr = [n for n, s in sections.items() if s.get("type") == "koofr"]
        if not koofr:
            raise RcloneConfigError(
                f"no koofr remote in the rclone config; remotes: {_describe(sections)}"
            )
        if len(koofr) > 1:
            raise RcloneConfigError(
                f"several koofr remotes in the rclone config ({', '.join(koofr)}): "
                "choose one with --name NAME"
            )
        name = koofr[0]
    section = sections[name]
    kind = section.get("type")
    if kind != "koofr":
        raise RcloneConfigError(f"rclone remote {name!r} is of type {kind or 'unknown'}, not koofr")
    user = section.get("user", "").strip()
    if not user:
        raise RcloneConfigError(f"rclone remote {name!r} has no user (the Koofr e-mail)")
    obscured = section.get("password", "").strip()
    if not obscured:
        raise RcloneConfigError(f"rclone remote {name!r} has no password")
    if obscured == MASKED_PASSWORD:
        raise RcloneConfigError(
            f'rclone config show {name} masks the password: pipe "rclone config show" (no name) '
            f'or "rclone config dump" instead, or use --rclone-config PATH --name {name}'
        )
    try:
        password = reveal(obscured)
    except RcloneConfigError as exc:
        raise RcloneConfigError(f"password of rclone remote {name!r}: {exc}") from None
    try:
        provider, endpoint = resolve_endpoint(
            section.get("provider") or None, section.get("endpoint") or None
        )
    except ValueError as exc:
        raise RcloneConfigError(f"rclone remote {name!r}: {exc}") from None
    return KoofrRemote(
        name=name,
        endpoint=endpoint,
        provider=provider,
        user=user,
        password=password,
        mountid=section.get("mountid") or None,
        setmtime=_as_bool(section.get("setmtime"), True),
    )
