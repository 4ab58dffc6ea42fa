"""Pure namespace rules: path normalisation, name validation, autorename."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from koofr_emulator.errors import ApiError
from koofr_emulator.paths import (
    is_same_or_within,
    normalize_path,
    split_parent_name,
    unused_name,
    validate_name,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", "/"),
        ("/", "/"),
        ("/foo", "/foo"),
        ("/foo/", "/foo"),
        ("a.txt", "/a.txt"),
        ("a/b/c/", "/a/b/c"),
        ("//server/bar//", "/server/bar"),
        ("/////", "/"),
        ("~/a", "/~/a"),
        ("C:", "/C:"),
        ("/backup/", "/backup"),
        ("/a b/+&%", "/a b/+&%"),
        ("/...", "/..."),
    ],
)
def test_normalize_path(raw: str, expected: str) -> None:
    assert normalize_path(raw) == expected


@pytest.mark.parametrize("raw", ["/a\\b", ".", "..", "/a/./b", "/a/..", "../etc", "/a/../b"])
def test_normalize_path_rejects(raw: str) -> None:
    with pytest.raises(ApiError) as exc:
        normalize_path(raw)
    assert (exc.value.status, exc.value.code) == (400, "InvalidPath")


@pytest.mark.parametrize(
    "name", ["file.txt", "...", " lead", "trail.", "a+b&c%d", "日本 ☕", "\x20"]
)
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    "name", ["", ".", "..", "/", "a/b", "a\\b", "\x7f", "a\x00", "\x1f", "x" * 256, "é" * 128]
)
def test_invalid_names(name: str) -> None:
    with pytest.raises(ApiError) as exc:
        validate_name(name)
    assert exc.value.status == 400


def test_unused_name_matches_koofr_fake() -> None:
    taken = {"foo", "foo (1)", "foo.bar", "foo.bar.baz"}
    assert unused_name("new", taken.__contains__) == "new"
    assert unused_name("foo", taken.__contains__) == "foo (2)"
    assert unused_name("foo.bar", taken.__contains__) == "foo (1).bar"
    assert unused_name("foo.bar.baz", taken.__contains__) == "foo.bar (1).baz"


def test_within_is_case_insensitive() -> None:
    assert is_same_or_within("/A/b", "/a")
    assert is_same_or_within("/a", "/A")
    assert not is_same_or_within("/ab", "/a")
    assert is_same_or_within("/x", "/")
    assert split_parent_name("/a") == ("/", "a")
    assert split_parent_name("/a/b/c") == ("/a/b", "c")


_segment = st.text(alphabet=st.sampled_from(list("ab/. Ü+%")), max_size=12)


@given(_segment)
def test_normalize_is_idempotent(raw: str) -> None:
    try:
        once = normalize_path(raw)
    except ApiError:
        return
    assert normalize_path(once) == once
    assert once.startswith("/")
    assert "//" not in once
    assert once == "/" or not once.endswith("/")
