"""`kloset.cli.main`: how the console script loads its verbs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kloset.cli import main


def test_a_verb_module_that_cannot_be_imported_fails_loudly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(main, "_COMMAND_MODULES", {**main._COMMAND_MODULES, "kloset.cli.nope": ()})
    with pytest.raises(SystemExit) as caught:
        main.main(["--help"])
    message = str(caught.value.code)
    assert message.startswith("kloset: broken installation: cannot import kloset.cli.nope")
    assert "\n" not in message


def test_a_store_verb_imports_neither_the_remote_commands_nor_rich_nor_koofr() -> None:
    """Start-up is paid on every run: `kloset at STORE ...` loads only what store verbs need
    (the remote-import commands scan every installed distribution for their hooks)."""
    probe = (
        "import sys; from kloset.cli import main; main._load_commands(['at', 'S', 'ls']);"
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('rich', 'koofrfs', 'httpx', 'kloset'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "kloset.cli.cmd_store" in loaded and "kloset.cli.cmd_lifecycle" in loaded
    assert not [m for m in loaded if m.startswith(("rich", "koofrfs", "httpx", "kloset.cli.rem"))]
