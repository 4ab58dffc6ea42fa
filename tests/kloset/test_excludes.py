"""`kloset.excludes.ScanFilter`: the backup scan's size limit and list of paths (--files-from),
together with the exclude patterns, on a real local scan."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import write_file

from kloset.display import parse_size
from kloset.excludes import ScanFilter
from kloset.source import LocalSource


def _tree(root: Path) -> None:
    write_file(root / "small.txt", b"s" * 10)
    write_file(root / "big.iso", b"b" * 5000)
    write_file(root / "docs" / "a.txt", b"a")
    write_file(root / "docs" / "deep" / "b.txt", b"b")
    write_file(root / "docs" / "deep" / "huge.bin", b"h" * 9000)
    write_file(root / "photos" / "2019" / "x.jpg", b"x")
    write_file(root / "photos" / "2020" / "y.jpg", b"y")
    os.symlink("docs/a.txt", root / "link")


def _scan(root: Path, flt: ScanFilter, **kw: bool) -> list[str]:
    return [i.relpath for i in LocalSource(str(root), **kw).scan(flt) if i.relpath]


def test_larger_files_are_left_out_folders_and_links_are_not(tmp_path: Path) -> None:
    _tree(tmp_path)
    got = _scan(tmp_path, ScanFilter(larger_than=parse_size("4K")))
    assert "big.iso" not in got and "docs/deep/huge.bin" not in got
    assert {"small.txt", "docs/deep/b.txt", "link", "photos/2019"} <= set(got)


def test_a_list_of_paths_backs_up_only_those_and_what_leads_to_them(tmp_path: Path) -> None:
    _tree(tmp_path)
    flt = ScanFilter(["*.bin"], only=["docs/deep", "/photos/2019/x.jpg", "missing/file"])
    assert _scan(tmp_path, flt) == [
        "docs", "docs/deep", "docs/deep/b.txt", "photos", "photos/2019", "photos/2019/x.jpg",
    ]  # fmt: skip


def test_sizes_parse_with_binary_units_and_refuse_unknown_ones() -> None:
    assert [parse_size(t) for t in ("100", "64k", "1.5MiB", "2G", "1 TB")] == [
        100, 65536, 1572864, 2 * 1024**3, 1024**4,
    ]  # fmt: skip
    for bad, message in (("10x", "unknown size unit"), ("", "bad size"), ("-1k", "bad size")):
        with pytest.raises(ValueError, match=message):
            parse_size(bad)


def test_one_file_system_keeps_mount_points_empty(tmp_path: Path, tmpfs_inside: Path) -> None:
    write_file(tmp_path / "here.txt", b"same fs")
    assert "mnt/other-fs.txt" in _scan(tmp_path, ScanFilter())
    got = _scan(tmp_path, ScanFilter(), one_file_system=True)
    assert "mnt" in got and "here.txt" in got and "mnt/other-fs.txt" not in got
