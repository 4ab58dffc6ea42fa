"""FsspecDestination asks for a folder's listing only when its parent holds that folder: a
restore into a new Koofr folder listed every folder, one request after another, first."""

from __future__ import annotations

from typing import Any

import fsspec
import pytest

from kloset.destination import FsspecDestination
from kloset.tree import FILE, Entry


@pytest.fixture
def fs(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    mem = fsspec.filesystem("memory")
    calls: list[str] = []
    real = mem.ls

    def ls(path: str, detail: bool = True, **kw: Any) -> Any:
        calls.append(path.rstrip("/"))
        return real(path, detail=detail, **kw)

    monkeypatch.setattr(mem, "ls", ls)
    mem.calls = calls
    yield mem
    if mem.exists("/perf-dest"):
        mem.rm("/perf-dest", recursive=True)


def _entry(size: int) -> Entry:
    return Entry("x", FILE, 0o100644, 1_000_000_000, size)


def test_a_new_target_needs_no_listing(fs) -> None:  # type: ignore[no-untyped-def]
    dest = FsspecDestination(fs, "/perf-dest/new", "memory:///perf-dest/new")
    for rel in ("a.txt", "a/b/c.txt", "a/b/d/e.txt", "z/y.txt"):
        assert dest.is_current(rel, _entry(3)) is None
    assert fs.calls == []


def test_only_folders_that_exist_are_listed(fs) -> None:  # type: ignore[no-untyped-def]
    fs.pipe("/perf-dest/old/a/x.txt", b"abc")
    fs.pipe("/perf-dest/old/f", b"not a folder")
    dest = FsspecDestination(fs, "/perf-dest/old", "memory:///perf-dest/old")
    assert dest.is_current("a/x.txt", _entry(3)) is not None  # there: compared
    assert dest.is_current("a/new/deeper/y.txt", _entry(3)) is None
    assert dest.is_current("gone/y.txt", _entry(3)) is None
    assert dest.is_current("f/y.txt", _entry(3)) is None  # below a file: nothing to list
    assert sorted(fs.calls) == ["/perf-dest/old", "/perf-dest/old/a"]
