"""The blob envelope (kloset.codec): what a damaged compressed body does."""

from __future__ import annotations

import struct

import pytest

from kloset.codec import FLAG_ZSTD, pack_body, unpack_body
from kloset.errors import CorruptObject


def _frame_declaring(size: int) -> bytes:
    """A zstd frame whose header claims `size` bytes of content (one empty raw block)."""
    single_segment_8_byte_size = bytes([0xE0])
    return (
        struct.pack("<I", 0xFD2FB528)
        + single_segment_8_byte_size
        + struct.pack("<Q", size)
        + b"\x01\x00\x00"
    )


def test_a_header_declaring_terabytes_is_a_clear_error_not_a_memory_error() -> None:
    with pytest.raises(CorruptObject, match="snapshots/ab: declares 1,099,511,627,776 bytes"):
        unpack_body(bytes([FLAG_ZSTD]) + _frame_declaring(1 << 40), "snapshots/ab")


def test_a_body_round_trips_and_a_truncated_frame_is_corrupt() -> None:
    data = b"kloset " * 100
    body = pack_body(data, 3)
    assert body[0] == FLAG_ZSTD and unpack_body(body, "x") == data
    with pytest.raises(CorruptObject, match="x: bad compressed data"):
        unpack_body(body[:-5], "x")
