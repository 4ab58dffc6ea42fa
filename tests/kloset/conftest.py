"""Fixtures for the engine's module tests (the sample store is built in kloset_samples.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import write_file
from kloset_samples import SampleStore, build_sample_store


@pytest.fixture(scope="session")
def sample_store(tmp_path_factory: pytest.TempPathFactory) -> SampleStore:
    return build_sample_store(tmp_path_factory.mktemp("sample-store"))


@pytest.fixture
def tmpfs_inside(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A tmpfs mounted inside the tree: another file system, as --one-file-system must see."""
    inner = tmp_path / "mnt"
    inner.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "kloset-test", str(inner)],
                         capture_output=True, timeout=10)  # fmt: skip
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.decode().strip()}")
    try:
        write_file(inner / "other-fs.txt", b"on the tmpfs")
        yield inner
    finally:
        subprocess.run(["umount", "-l", str(inner)], capture_output=True, timeout=10)
