"""Blocks: standards, save/load through the API with secrets masked, result and deployment
storage on Koofr, and the CLI's ``--prefect-block`` import."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from prefect import flow, task
from prefect.blocks.core import Block
from prefect.client.orchestration import get_client
from prefect.serializers import PickleSerializer
from prefect.testing.standard_test_suites import BlockStandardTestSuite
from pydantic import SecretStr

from blocks import KlosetRepository, KoofrCredentials, KoofrStorage, save_remote_blocks
from tests.prefect.conftest import PASSPHRASE

pytestmark = pytest.mark.usefixtures("prefect_harness")

MASK = "********"


@pytest.mark.parametrize("block_class", [KoofrCredentials, KoofrStorage, KlosetRepository])
class TestBlockStandards(BlockStandardTestSuite):
    """Prefect's own block standards (description, docs URL, field descriptions, example)."""

    @pytest.fixture
    def block(self, block_class: type[Block]) -> type[Block]:
        return block_class

    def test_has_a_valid_image(self, block: type[Block]) -> None:
        # No image from someone else's host (blocks/credentials.py says why there is none).
        assert block._logo_url is None

    def test_labels_and_links_are_ours(self, block: type[Block]) -> None:
        assert "docs.prefect.io" not in str(block._documentation_url)
        for name, field in block.model_fields.items():
            if isinstance(field.annotation, type) and issubclass(field.annotation, Block):
                assert field.title and " " in field.title, name  # words, not a class name

    def test_field_descriptions_end_with_a_period_even_for_block_fields(
        self, block: type[Block]
    ) -> None:
        for name, field in block.model_fields.items():
            assert field.description and field.description.endswith("."), name

    def test_slug_is_fixed(self, block: type[Block]) -> None:
        expected = {
            KoofrCredentials: "koofr-credentials",
            KoofrStorage: "koofr-storage",
            KlosetRepository: "kloset-repository",
        }[block]
        assert block.get_block_type_slug() == expected


def _name() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


async def _document(slug: str, name: str) -> dict[str, Any]:
    async with get_client() as client:
        doc = await client.read_block_document_by_name(
            name=name, block_type_slug=slug, include_secrets=False
        )
    return dict(doc.data)


def test_round_trip_with_secrets_masked(credentials: KoofrCredentials) -> None:
    name = _name()
    storage = KoofrStorage(credentials=credentials, base_folder="Backups/kloset")
    store = KlosetRepository(location=storage, passphrase=SecretStr(PASSPHRASE))
    store.save(name)

    loaded = KlosetRepository.load(name)
    assert isinstance(loaded.location, KoofrStorage)
    assert loaded.location.base_folder == "Backups/kloset"
    assert loaded.location.credentials.email == credentials.email
    assert loaded.passphrase is not None and loaded.passphrase.get_secret_value() == PASSPHRASE
    assert loaded.location.credentials.app_password.get_secret_value() == "test-password"
    assert loaded.location_label() == store.location_label()

    data = asyncio.run(_document("kloset-repository", name))
    assert data["passphrase"] == MASK
    # The nested storage block is saved as its own document; its password is masked too.
    dump = repr(data)
    assert PASSPHRASE not in dump and "test-password" not in dump


def test_string_location_round_trip() -> None:
    name = _name()
    KlosetRepository(location="@vault:/Backups", passphrase=None).save(name)
    loaded = KlosetRepository.load(name)
    assert loaded.location == "@vault:/Backups"
    assert loaded.passphrase is None
    assert loaded.touches_koofr()


def test_base_folder_cannot_escape(credentials: KoofrCredentials) -> None:
    with pytest.raises(ValueError, match=r"\.\."):
        KoofrStorage(credentials=credentials, base_folder="a/../../etc")
    storage = KoofrStorage(credentials=credentials, base_folder="/a/b/")
    assert storage.base_folder == "a/b"
    with pytest.raises(ValueError):
        storage.read_path("../secret", _sync=True)


def test_read_write_sync_async_and_sync_kwarg(koofr_folder: Any, koofr_fs: Any) -> None:
    storage = koofr_folder("paths")
    assert (
        storage.write_path("x/hello.txt", b"hello", _sync=True)
        == f"{storage.base_folder}/x/hello.txt"
    )
    assert koofr_fs.cat_file(f"{storage.base_folder}/x/hello.txt") == b"hello"
    assert storage.read_path("x/hello.txt", _sync=True) == b"hello"
    assert storage.read_path("x/hello.txt") == b"hello"

    async def both() -> bytes:
        await storage.awrite_path("y.bin", b"\x00\x01")
        return await storage.aread_path("y.bin")

    assert asyncio.run(both()) == b"\x00\x01"
    with pytest.raises(FileNotFoundError):
        storage.read_path("missing", _sync=True)


def test_result_storage_on_koofr(koofr_folder: Any, koofr_fs: Any) -> None:
    storage = koofr_folder("results")
    storage.save(_name())

    @task(persist_result=True, result_storage=storage, cache_policy=None)
    def make() -> dict[str, int]:
        return {"answer": 42}

    @flow(persist_result=True, result_storage=storage)
    def uses_koofr() -> dict[str, int]:
        return make()

    state = uses_koofr(return_state=True)
    assert state.is_completed()
    assert state.result() == {"answer": 42}
    written = koofr_fs.find(storage.base_folder)
    assert written, "the result record is stored on Koofr"
    # The record's payload is the pickled value; Prefect keeps the metadata apart.
    payloads = [storage.read_path(path.split("/", 1)[1], _sync=True) for path in written]
    assert all(PickleSerializer().loads(p) == {"answer": 42} for p in payloads)


def test_put_and_get_directory(koofr_folder: Any, tmp_path: Path) -> None:
    storage = koofr_folder("deploy")
    project = tmp_path / "project"
    (project / "pkg").mkdir(parents=True)
    (project / "flow.py").write_text("print('flow')\n")
    (project / "pkg" / "mod.py").write_text("X = 1\n")
    (project / "notes.tmp").write_text("scratch\n")
    ignore = tmp_path / ".prefectignore"
    ignore.write_text("*.tmp\n")
    assert storage.put_directory(str(project), "code", ignore_file=str(ignore), _sync=True) == 2

    out = tmp_path / "out"
    storage.get_directory("code", str(out), _sync=True)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "flow.py",
        "pkg/mod.py",
    ]
    assert (out / "pkg" / "mod.py").read_text() == "X = 1\n"


def test_save_remote_blocks_and_cli_prefect_block(
    emulator: Any, monkeypatch: Any, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from kloset.cli.remotes import source_app
    from koofrfs.rclone import KoofrRemote, obscure

    remote = KoofrRemote(
        name="koofr",
        endpoint=emulator.url,
        provider="other",
        user=emulator.user,
        password=emulator.password,
        mountid=None,
        setmtime=True,
    )
    name = _name()
    assert save_remote_blocks(remote, name) == [
        f"koofr-credentials/{name}",
        f"koofr-storage/{name}",
    ]
    storage = KoofrStorage.load(name)
    assert storage.credentials.app_password.get_secret_value() == emulator.password
    assert "Documents" in storage.filesystem.ls("", detail=False)

    monkeypatch.setenv("KLOSET_CONFIG_DIR", str(tmp_path / "kloset-config"))
    rclone = (
        f"[koofr]\ntype = koofr\nprovider = other\nendpoint = {emulator.url}\n"
        f"user = {emulator.user}\npassword = {obscure(emulator.password)}\n"
    )
    cli_name = _name()
    result = CliRunner().invoke(source_app, ["import", "--prefect-block", cli_name], input=rclone)
    assert result.exit_code == 0, result.output
    assert KoofrCredentials.load(cli_name).email == emulator.user
    assert KoofrStorage.load(cli_name).credentials.endpoint == emulator.url
