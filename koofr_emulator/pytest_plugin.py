"""pytest fixtures: a running emulator per test (``koofr_emulator``) or per session.

Enable with ``pytest_plugins = ["koofr_emulator.pytest_plugin"]`` in a top-level conftest.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .emulator import KoofrEmulator


@pytest.fixture
def koofr_emulator(tmp_path: Path) -> Iterator[KoofrEmulator]:
    """A fresh emulator on 127.0.0.1 (random port) over an empty root
    ``tmp_path / "koofr-emulator"``; stopped afterwards."""
    root = tmp_path / "koofr-emulator"
    emu = KoofrEmulator(root, host="127.0.0.1", port=0)
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture(scope="session")
def koofr_emulator_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KoofrEmulator]:
    """One emulator shared by the whole session: tests must use their own sub-folders and
    clean up faults they add (``clear_faults()``)."""
    root = tmp_path_factory.mktemp("koofr-emulator-session")
    emu = KoofrEmulator(root, host="127.0.0.1", port=0)
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()
