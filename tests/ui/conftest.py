"""Fixtures for the viewer tests: one small store with three snapshots (see ui_helpers)."""

from __future__ import annotations

import secrets

import pytest
from ui_helpers import UiStore, build_store


@pytest.fixture(scope="session")
def ui_store(tmp_path_factory: pytest.TempPathFactory) -> UiStore:
    return build_store(tmp_path_factory.mktemp("ui-store"))


@pytest.fixture(scope="session")
def token() -> str:
    return secrets.token_urlsafe(24)
