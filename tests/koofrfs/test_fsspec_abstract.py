"""fsspec's own abstract test-suite (get, put, copy, open, pipe), run against koofrfs.

These are the tests fsspec writes for every implementation (``fsspec.tests.abstract``): files,
folders, lists and globs (``*``, ``**``, ``?``, ``[..]``, maxdepth), trailing slashes, new and
existing targets, a folder and a file sharing a name prefix. One emulator serves the module;
every test works in its own folder.
"""

from __future__ import annotations

import posixpath
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest
from fsspec.tests.abstract import AbstractFixtures
from fsspec.tests.abstract.copy import AbstractCopyTests
from fsspec.tests.abstract.get import AbstractGetTests
from fsspec.tests.abstract.open import AbstractOpenTests
from fsspec.tests.abstract.pipe import AbstractPipeTests
from fsspec.tests.abstract.put import AbstractPutTests

from koofr_emulator import KoofrEmulator
from koofrfs.filesystem import KoofrFileSystem


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KoofrEmulator]:
    with KoofrEmulator(tmp_path_factory.mktemp("fsspec-abstract")) as emu:
        yield emu


class KoofrFixtures(AbstractFixtures):  # type: ignore[misc]
    @pytest.fixture
    def fs(self, emulator: KoofrEmulator) -> KoofrFileSystem:
        fs = fsspec.filesystem("koofr", **emulator.storage_options(), skip_instance_cache=True)
        assert isinstance(fs, KoofrFileSystem)
        return fs

    @pytest.fixture
    def fs_join(self) -> object:
        return posixpath.join

    @pytest.fixture
    def fs_path(self) -> str:
        return f"abstract-{uuid.uuid4().hex[:12]}"

    @pytest.fixture
    def local_path(self, tmp_path: Path) -> str:
        return str(tmp_path)


class TestKoofrGet(KoofrFixtures, AbstractGetTests):  # type: ignore[misc]
    pass


class TestKoofrPut(KoofrFixtures, AbstractPutTests):  # type: ignore[misc]
    pass


class TestKoofrCopy(KoofrFixtures, AbstractCopyTests):  # type: ignore[misc]
    pass


class TestKoofrOpen(KoofrFixtures, AbstractOpenTests):  # type: ignore[misc]
    pass


class TestKoofrPipe(KoofrFixtures, AbstractPipeTests):  # type: ignore[misc]
    pass
