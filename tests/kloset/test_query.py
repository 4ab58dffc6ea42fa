"""kloset.query: glob matching, find across snapshots, and diff (incl. a property test)."""

from __future__ import annotations

import fnmatch
import tempfile
from pathlib import Path
from typing import Any

import pytest
from helpers import craft_snapshot, new_repo
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kloset import query
from kloset.errors import PathNotFound
from kloset.repository import Repository


def _matches(pattern: str, path: str, **kw: Any) -> bool:
    return query.Matcher(pattern, **kw)(path, path.rsplit("/", 1)[-1])


@pytest.mark.parametrize(
    ("pattern", "path", "hit"),
    [
        ("*.txt", "/a/b/notes.txt", True),
        ("*.txt", "/a/b/notes.txt.bak", False),
        ("note?.txt", "/notes.txt", True),
        ("[nm]otes.txt", "/notes.txt", True),
        ("[!n]otes.txt", "/notes.txt", False),
        ("/docs/*.txt", "/docs/a.txt", True),
        ("/docs/*.txt", "/x/docs/a.txt", False),  # leading / anchors at the root
        ("docs/*.txt", "/x/docs/a.txt", True),  # otherwise any directory boundary
        ("docs/*.txt", "/x/mydocs/a.txt", False),
        ("docs/*.txt", "/docs/sub/a.txt", False),  # * stays inside one name
        ("docs/**/a.txt", "/docs/sub/deeper/a.txt", True),
        ("docs/**/a.txt", "/docs/a.txt", True),
        ("/**", "/anything/at/all", True),
        ("100%", "/100%", True),
        ("a+b (1).txt", "/a+b (1).txt", True),
    ],
)
def test_matcher(pattern: str, path: str, hit: bool) -> None:
    assert _matches(pattern, path) is hit


def test_matcher_ignore_case() -> None:
    assert not _matches("*.TXT", "/a.txt")
    assert _matches("*.TXT", "/a.txt", ignore_case=True)


@given(st.text("ab*?.", max_size=6), st.text("ab.", max_size=6))
def test_name_globs_agree_with_fnmatch(pattern: str, name: str) -> None:
    assert _matches(pattern, "/dir/" + name) == fnmatch.fnmatchcase(name, pattern)


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return new_repo(tmp_path / "store")


SHARED = [("deep", [("x.txt", b"x"), ("y.log", b"y")]), ("z.txt", b"z")]


def test_find_across_snapshots_and_in_one(repo: Repository, tmp_path: Path) -> None:
    s1 = craft_snapshot(repo, [("shared", SHARED), ("only1.txt", b"1")], tmp_path / "s1")
    s2 = craft_snapshot(repo, [("shared", SHARED), ("only2.log", b"2")], tmp_path / "s2")
    found = [(m.snapshot, m.path) for m in query.find(repo, "*.txt")]
    assert sorted(found) == sorted(
        [(s, p) for s in (s1, s2) for p in ("/shared/deep/x.txt", "/shared/z.txt")]
        + [(s1, "/only1.txt")]
    )
    h2 = repo.resolve_snapshot(s2)
    logs = query.find(repo, "*.log", [h2])
    assert [m.path for m in logs] == ["/only2.log", "/shared/deep/y.log"]
    # like find(1), the starting directory itself is a candidate
    assert [m.path for m in query.find(repo, "*", [h2], path="/shared/deep")] == [
        "/shared/deep",
        "/shared/deep/x.txt",
        "/shared/deep/y.log",
    ]
    assert [m.path for m in query.find(repo, "deep", [h2], path="/shared/deep")] == ["/shared/deep"]
    assert query.find(repo, "nothing-*") == []
    with pytest.raises(PathNotFound):
        query.find(repo, "*", [h2], path="/missing")


def test_find_reads_shared_subtrees_once(repo: Repository, tmp_path: Path) -> None:
    wide = [(f"d{i}", [(f"f{j}.txt", f"{i}/{j}".encode()) for j in range(5)]) for i in range(30)]
    snaps = [craft_snapshot(repo, [*wide, (f"own{k}", b"k")], tmp_path / f"s{k}") for k in range(5)]
    repo._tree_cache.clear()
    calls = []
    real = repo.load_tree

    def counting(tid: bytes) -> Any:
        calls.append(tid)
        return real(tid)

    repo.load_tree = counting  # type: ignore[method-assign]
    found = query.find(repo, "f3.txt")
    assert len(found) == 30 * len(snaps)
    assert len(set(calls)) == 30 + len(snaps)  # each shared dir once, plus each root
    assert len(calls) <= 2 * (30 + len(snaps))


def test_diff_kinds_and_reasons(repo: Repository, tmp_path: Path) -> None:
    old = craft_snapshot(
        repo,
        [
            ("same", [("a", b"a")]),
            ("gone", [("g1", b"1"), ("sub", [("g2", b"2")])]),
            ("file-to-dir", b"f"),
            ("edit", b"before"),
            ("link", ("symlink", "t1")),
        ],
        tmp_path / "a",
    )
    new = craft_snapshot(
        repo,
        [
            ("same", [("a", b"a")]),
            ("file-to-dir", [("inside", b"i")]),
            ("edit", b"after!"),
            ("link", ("symlink", "t2")),
            ("new", [("n", b"n")]),
        ],
        tmp_path / "b",
    )
    d = query.diff(repo, repo.resolve_snapshot(old), repo.resolve_snapshot(new))
    assert [(e.kind, e.path) for e in d.entries] == [
        ("changed", "/edit"),
        ("changed", "/file-to-dir"),
        ("added", "/file-to-dir/inside"),
        ("removed", "/gone"),
        ("removed", "/gone/g1"),
        ("removed", "/gone/sub"),
        ("removed", "/gone/sub/g2"),
        ("changed", "/link"),
        ("added", "/new"),
        ("added", "/new/n"),
    ]
    reasons = {e.path: e.reasons for e in d.changed}
    assert reasons == {"/edit": ("content",), "/file-to-dir": ("type",), "/link": ("target",)}
    assert d.trees_skipped == 1  # /same has the same tree id on both sides: never opened
    doc = d.to_dict()
    assert [e["path"] for e in doc["added"]] == ["/file-to-dir/inside", "/new", "/new/n"]


def test_diff_of_sub_paths_and_files(repo: Repository, tmp_path: Path) -> None:
    spec = [("x", [("f", b"1")]), ("y", [("f", b"2")])]
    a = repo.resolve_snapshot(craft_snapshot(repo, spec, tmp_path / "a"))
    same_path = query.diff(repo, a, a, "/x", "/x")
    assert same_path.entries == []
    cross = query.diff(repo, a, a, "/x", "/y")
    assert [(e.kind, e.path, e.reasons) for e in cross.entries] == [("changed", "/f", ("content",))]
    files = query.diff(repo, a, a, "/x/f", "/y/f")
    assert [(e.path, e.old_size, e.new_size) for e in files.entries] == [("/f", 1, 1)]


# -- property: diff agrees with a naive comparison of flattened trees ----------------------------
names = st.sampled_from(["a", "b", "c"])
leaf = st.one_of(
    st.sampled_from([b"", b"x", b"yy"]),
    st.sampled_from(["t1", "t2"]).map(lambda t: ("symlink", t)),
)
trees = st.recursive(
    leaf,
    lambda children: st.dictionaries(names, children, max_size=3).map(lambda d: sorted(d.items())),
    max_leaves=8,
).filter(lambda t: isinstance(t, list))


def _flatten(spec: Any, base: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in spec:
        path = f"{base}/{name}"
        out[path] = value if not isinstance(value, list) else "dir"
        if isinstance(value, list):
            out.update(_flatten(value, path))
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees, trees)
def test_diff_matches_naive_comparison(old_spec: Any, new_spec: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        repo = new_repo(Path(tmp) / "store", encrypted=False)
        old = repo.resolve_snapshot(craft_snapshot(repo, old_spec, Path(tmp) / "a"))
        new = repo.resolve_snapshot(craft_snapshot(repo, new_spec, Path(tmp) / "b"))
        d = query.diff(repo, old, new)
    a, b = _flatten(old_spec), _flatten(new_spec)
    assert [e.path for e in d.added] == sorted(set(b) - set(a), key=lambda p: p.split("/"))
    assert {e.path for e in d.removed} == set(a) - set(b)
    assert {e.path for e in d.changed} == {p for p in set(a) & set(b) if _differs(a[p], b[p])}


def _differs(x: Any, y: Any) -> bool:
    if (x == "dir") != (y == "dir"):
        return True  # a type change
    return x != "dir" and x != y  # file content, symlink target, or file <-> symlink
