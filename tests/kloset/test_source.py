"""kloset.source: remote reads are checked against the size and MD5 their listing gave."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from fsspec.implementations.memory import MemoryFileSystem

from kloset.errors import SourceChanged
from kloset.source import FsspecSource


@pytest.fixture
def source() -> FsspecSource:
    fs = MemoryFileSystem()
    root = f"/src-{uuid.uuid4().hex}"
    fs.pipe_file(f"{root}/a.bin", b"x" * 5000)
    return FsspecSource(fs, root, "memory://src")


def test_a_read_that_matches_its_listing_passes(source: FsspecSource) -> None:
    md5 = hashlib.md5(b"x" * 5000).hexdigest()
    with source.open("a.bin", 5000, md5) as fh:
        assert fh.read() == b"x" * 5000
    buf = bytearray(4096)
    with source.open("a.bin", 5000, md5.upper()) as fh:
        assert [fh.readinto(buf), fh.readinto(buf), fh.readinto(buf)] == [4096, 904, 0]


@pytest.mark.parametrize(
    ("size", "md5", "says"),
    [
        (6000, None, "read 5000 bytes, but the listing says 6000 bytes"),
        (5000, "0" * 32, "listing says 5000 bytes with MD5 " + "0" * 32),
    ],
)
def test_a_read_that_disagrees_with_its_listing_is_refused(
    source: FsspecSource, size: int, md5: str | None, says: str
) -> None:
    with source.open("a.bin", size, md5) as fh, pytest.raises(SourceChanged, match=says):
        fh.read()
    buf = bytearray(1 << 16)
    with source.open("a.bin", size, md5) as fh, pytest.raises(SourceChanged) as err:
        while fh.readinto(buf):
            pass
    assert str(err.value).startswith("memory://src/a.bin: read 5000 bytes")
