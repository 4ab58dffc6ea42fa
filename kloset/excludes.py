"""Gitignore-like exclude patterns, matched against paths relative to the backup root."""

from __future__ import annotations

import re
from functools import lru_cache


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
    out = []
    i = 0
    while i < len(pat):
        c = pat[i]
        if pat.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pat.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pat.find("]", i + 1)
            if j == -1:
                out.append(re.escape(c))
            else:
                body = pat[i + 1 : j].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"(?:/.*)?\Z", re.DOTALL), anchored, dir_only


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
