"""Path spelling and client-side name validation."""

from __future__ import annotations

import re

import pytest

from koofrfs.errors import InvalidName
from koofrfs.filesystem import KoofrFileSystem
from koofrfs.paths import split, strip_protocol, to_koofr, validate_name


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/Photos/a.jpg", "Photos/a.jpg"),
        ("Photos/a.jpg", "Photos/a.jpg"),
        ("koofr://Photos/a.jpg", "Photos/a.jpg"),
        ("koofr:///Photos//a.jpg/", "Photos/a.jpg"),
        ("/", ""),
        ("", ""),
        ("koofr://", ""),
        ("koofr::x/y", "x/y"),
    ],
)
def test_strip_protocol(given: str, expected: str) -> None:
    assert strip_protocol(given) == expected
    assert KoofrFileSystem._strip_protocol(given) == expected


def test_to_koofr_and_split() -> None:
    assert to_koofr("") == "/"
    assert to_koofr("koofr://a b/c%+#?.txt") == "/a b/c%+#?.txt"
    assert split("a/b/c") == ("a/b", "c")
    assert split("top") == ("", "top")


@pytest.mark.parametrize(
    "name",
    [
        "a.txt",
        "sp ace",
        "100%",
        "#hash",
        "what?",
        "a+b",
        'it\'s "quoted"',
        "Über",
        "U\u0308ber",
        "emoji-\U0001f600",
        "  leading",
        "trailing.",
        "...",
    ],
)
def test_valid_names(name: str) -> None:
    validate_name(name)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "empty"),
        (".", "'.'"),
        ("..", "'..'"),
        ("a\\b", "backslash"),
        ("a\x01b", "U+0001"),
        ("tab\there", "U+0009"),
        ("del\x7f", "U+007F"),
        ("new\nline", "U+000A"),
    ],
)
def test_invalid_names(name: str, why: str) -> None:
    with pytest.raises(InvalidName, match=re.escape(why)):
        validate_name(name)
    assert issubclass(InvalidName, ValueError)


def test_invalid_component_in_path() -> None:
    with pytest.raises(InvalidName):
        to_koofr("a/../b")
    with pytest.raises(ValueError):
        to_koofr("a/./b")
