"""Where a passphrase comes from: KLOSET_PASSPHRASE, a file, or a prompt that never echoes."""

from __future__ import annotations

import getpass
import os
import sys

from kloset.errors import KlosetError, PassphraseRequired


def from_file(path: str) -> str:
    try:
        with open(os.path.expanduser(path), encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise KlosetError(f"cannot read passphrase file {path}: {exc.strerror or exc}") from exc
    secret = text.rstrip("\r\n")
    if not secret:
        raise KlosetError(f"passphrase file {path} is empty")
    return secret


def resolve(passphrase_file: str | None = None) -> str | None:
    """The passphrase if one was given without asking, else None."""
    if passphrase_file:
        return from_file(passphrase_file)
    env = os.environ.get("KLOSET_PASSPHRASE")
    if env:
        return env
    env_file = os.environ.get("KLOSET_PASSPHRASE_FILE")
    if env_file:
        return from_file(env_file)
    return None


def prompt(confirm: bool = False) -> str:
    """Ask on the terminal; refuse when there is no terminal to ask on."""
    if not sys.stdin.isatty():
        raise PassphraseRequired(
            "this store is encrypted: set KLOSET_PASSPHRASE or pass --passphrase-file"
        )
    first = getpass.getpass("passphrase: ")
    if confirm:
        again = getpass.getpass("repeat passphrase: ")
        if again != first:
            raise KlosetError("passphrases do not match")
    if not first:
        raise KlosetError("empty passphrase")
    return first
