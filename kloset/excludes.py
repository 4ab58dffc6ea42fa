"""Gitignore-like exclude patterns, matched against paths relative to the backup root, and the
backup scan's other filters (size limit, list of paths)."""

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

    def excluded(self, relpath: str, is_dir: bool, size: int | None = None) -> bool:
        """`relpath` uses `/` separators and no leading slash (`size` is for ScanFilter)."""
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


class ScanFilter(Excluder):
    """What a backup scan skips: exclude patterns (`--exclude`, `--exclude-file`), files larger
    than a size (`--exclude-larger-than`), everything not on a list (`--files-from`), and
    what lies on other file systems (`--one-file-system`, which a local source applies).

    Sources call `excluded(relpath, is_dir, size)` before descending into a folder or
    recording a file, so a skipped folder costs no listing. With a list, a folder is entered
    only if it is listed, lies below a listed path, or leads to one.
    """

    def __init__(
        self,
        patterns: list[str] | None = None,
        *,
        larger_than: int | None = None,
        only: list[str] | None = None,
        one_file_system: bool = False,
    ) -> None:
        super().__init__(patterns)
        self.larger_than = larger_than
        self.one_file_system = one_file_system
        self.only: set[str] | None = None
        self.seen: set[str] = set()  # listed paths the scan reached
        self._leads_to: set[str] = set()
        if only is not None:
            self.only = {p.strip("/") for p in only if p.strip("/")}
            for path in self.only:
                parts = path.split("/")
                self._leads_to.update("/".join(parts[:i]) for i in range(1, len(parts)))

    def __bool__(self) -> bool:
        return bool(self.rules) or self.larger_than is not None or self.only is not None

    def excluded(self, relpath: str, is_dir: bool, size: int | None = None) -> bool:
        if self.only is not None and not self._listed(relpath, is_dir):
            return True
        if not is_dir and self.larger_than is not None and (size or 0) > self.larger_than:
            return True
        return super().excluded(relpath, is_dir)

    def _listed(self, relpath: str, is_dir: bool) -> bool:
        assert self.only is not None
        if relpath in self.only:
            self.seen.add(relpath)
            return True
        if is_dir and relpath in self._leads_to:
            return True
        parts = relpath.split("/")
        return any("/".join(parts[:i]) in self.only for i in range(1, len(parts)))

    def missing(self) -> list[str]:
        """Listed paths the scan never reached: not in the source (or below an excluded folder)."""
        return sorted(self.only - self.seen) if self.only is not None else []
