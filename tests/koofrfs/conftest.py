"""Shared fixtures for koofrfs: the emulator (plugin) and a filesystem pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import fsspec
import pytest

import koofrfs  # noqa: F401  - registers the "koofr" protocol when not pip-installed
from koofr_emulator import KoofrEmulator
from koofrfs.filesystem import KoofrFileSystem

# The `koofr_emulator` fixture comes from koofr_emulator.pytest_plugin, which tests/conftest.py
# loads (pytest refuses `pytest_plugins` in a conftest below the top level).


def fs_options(emu: KoofrEmulator, **extra: Any) -> dict[str, Any]:
    """Storage options for the emulator; short backoff so fault tests stay fast."""
    options: dict[str, Any] = {
        **emu.storage_options(),
        "backoff_base": 0.01,
        "backoff_max": 0.2,
        "timeout": 10.0,
        "skip_instance_cache": True,
    }
    options.update(extra)
    return options


@pytest.fixture
def kfs(koofr_emulator: KoofrEmulator) -> Iterator[KoofrFileSystem]:
    """A KoofrFileSystem on a fresh emulator, created the way any fsspec user would."""
    fs = fsspec.filesystem("koofr", **fs_options(koofr_emulator))
    assert isinstance(fs, KoofrFileSystem)
    yield fs


@pytest.fixture
def make_kfs(koofr_emulator: KoofrEmulator) -> Callable[..., KoofrFileSystem]:
    """Factory for extra filesystems on the same emulator with other options."""

    def make(**extra: Any) -> KoofrFileSystem:
        return KoofrFileSystem(**fs_options(koofr_emulator, **extra))

    return make
