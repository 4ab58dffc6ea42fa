"""`--passphrase-file` works wherever a user puts it after `kloset at`."""

from __future__ import annotations

from pathlib import Path

import pytest

from kloset.cli.main import _hoist_store_options, main


def test_hoist_moves_the_option_next_to_at() -> None:
    assert _hoist_store_options(["at", "S", "ls", "--passphrase-file", "F", "--json"]) == [
        "at",
        "--passphrase-file",
        "F",
        "S",
        "ls",
        "--json",
    ]
    assert _hoist_store_options(["at", "S", "--passphrase-file=F", "ls"]) == [
        "at",
        "--passphrase-file=F",
        "S",
        "ls",
    ]
    assert _hoist_store_options(["source", "ls"]) == ["source", "ls"]


@pytest.mark.parametrize("where", ["before-store", "after-store", "after-verb"])
def test_passphrase_file_anywhere(
    tmp_path: Path, where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    store = str(tmp_path / "store")
    fast = ["--kdf-memory-kib", "1024", "--kdf-iterations", "1"]
    assert main(["at", store, "create", "--passphrase-file", str(secret), *fast]) == 0
    opt = ["--passphrase-file", str(secret)]
    argv = {
        "before-store": ["at", *opt, store, "ls", "--json"],
        "after-store": ["at", store, *opt, "ls", "--json"],
        "after-verb": ["at", store, "ls", "--json", *opt],
    }[where]
    capsys.readouterr()
    assert main(argv) == 0
    assert capsys.readouterr().out.strip() == "[]"
