"""Gitignore-like exclude patterns, matched against paths relative to the backup root."""

from __future__ import annotations

import re
from functools import lru_cache

from kloset.globs import translate


@lru_cache(maxsize=1024)
def _compile(pattern: str) -> tuple[re.Pattern[str], bool, bool]:
    """(regex, anchored, dir_only) for one pattern.

    `*` and `?` stay inside one path segment, `**` crosses segments; a pattern with a `/`
    (other than a trailing one) is anchored at the root, otherwise it matches at any depth.
    """
    dir_only = pattern.endswith("/")
    pat = pattern.rstrip("/")
    anchored = "/" in pat
    pat = pat.lstrip("/")
    return re.compile(translate(pat) + r"(?:/.*)?\Z", re.DOTALL), anchored, dir_only


class Excluder:
    """Decides whether a path is excluded; `!pattern` re-includes, last match wins."""

    def __init__(self, patterns: list[str] | None = None) -> None:
        self.rules: list[tuple[bool, str]] = []
        for p in patterns or []:
            p = p.strip()
            if not p or p.startswith("#"):
                continue
            if p.startswith("!"):
                self.rules.append((False, p[1:]))
            else:
                self.rules.append((True, p))

    def __bool__(self) -> bool:
        return bool(self.rules)

    def excluded(self, relpath: str, is_dir: bool) -> bool:
        """`relpath` uses `/` separators and no leading slash."""
        result = False
        for exclude, pattern in self.rules:
            regex, anchored, dir_only = _compile(pattern)
            if dir_only and not is_dir:
                continue
            if anchored:
                hit = regex.match(relpath) is not None
            else:
                name = relpath.rsplit("/", 1)[-1]
                hit = regex.match(name) is not None
            if hit:
                result = exclude
        return result
