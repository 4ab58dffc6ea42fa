"""Fixtures of the lifecycle tests: one corpus per session, a fresh store per test."""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from lifecycle_helpers import MB, new_store, write_tree


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ~36 MB source tree, built once; tests copy it before changing it."""
    root = tmp_path_factory.mktemp("corpus") / "src"
    root.mkdir()
    write_tree(root, random.Random(1234), 36 * MB)
    (root / "empty-dir").mkdir()
    os.symlink("d0/sub0", root / "link")
    return root


@pytest.fixture
def source(corpus: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "src"
    shutil.copytree(corpus, dst, symlinks=True)
    return dst


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "store"
    new_store(path)
    yield path
