"""Which paths of a snapshot a restore covers: `--include` and `--exclude` globs.

Patterns are the gitignore-like globs of `backup --exclude` (`*`/`?` within a name, `**`
across folders, a pattern with a `/` anchored at the snapshot root, a trailing `/` for folders
only, `!` to take an exclusion back), matched against paths of the snapshot (not of the
target), so a pattern means the same file in `backup`, `restore`, `rewrite` and `find`.

* `--exclude P`: a matching path is not restored, nor anything below a matching folder.
* `--include P`: only matching paths are restored, with everything below a matching folder;
  the folders above them are created so they have somewhere to go. Several includes add up.
* Both: the included paths minus the excluded ones.

`--delete` only ever touches paths this selection covers: a file left out by the patterns is
left alone in the target too.
"""

from __future__ import annotations

from dataclasses import dataclass

from kloset.excludes import Excluder


@dataclass
class Selection:
    """The include and exclude patterns of one restore."""

    includes: list[str]
    excludes: list[str]

    def __post_init__(self) -> None:
        self._inc = Excluder(self.includes)  # "excluded" here means "matched"
        self._exc = Excluder(self.excludes)

    def __bool__(self) -> bool:
        return bool(self._inc) or bool(self._exc)

    def excluded(self, relpath: str, is_dir: bool) -> bool:
        """Left out by an exclude pattern (nothing below it is looked at)."""
        return bool(self._exc) and self._exc.excluded(relpath, is_dir)

    def included(self, relpath: str, is_dir: bool, parent_included: bool) -> bool:
        """Named by an include pattern, directly or through a folder above it."""
        return not self._inc or parent_included or self._inc.excluded(relpath, is_dir)

    def covers(self, relpath: str, is_dir: bool) -> bool:
        """Whether a path is inside what this restore makes (used by --delete)."""
        parts = [p for p in relpath.split("/") if p]
        if not self or not parts:
            return not self._inc
        inside = False
        for i in range(1, len(parts) + 1):
            sub, sub_is_dir = "/".join(parts[:i]), is_dir or i < len(parts)
            if self.excluded(sub, sub_is_dir):
                return False
            inside = self.included(sub, sub_is_dir, inside)
        return inside
