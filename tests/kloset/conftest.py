"""Fixtures for the engine's module tests (the sample store is built in kloset_samples.py)."""

from __future__ import annotations

import pytest
from kloset_samples import SampleStore, build_sample_store


@pytest.fixture(scope="session")
def sample_store(tmp_path_factory: pytest.TempPathFactory) -> SampleStore:
    return build_sample_store(tmp_path_factory.mktemp("sample-store"))
