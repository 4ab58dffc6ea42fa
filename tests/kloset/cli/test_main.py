"""`kloset.cli.main`: how the console script loads its verbs."""

from __future__ import annotations

import pytest

from kloset.cli import main


def test_a_verb_module_that_cannot_be_imported_fails_loudly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(main, "_COMMAND_MODULES", (*main._COMMAND_MODULES, "kloset.cli.nope"))
    with pytest.raises(SystemExit) as caught:
        main.main(["--help"])
    message = str(caught.value.code)
    assert message.startswith("kloset: broken installation: cannot import kloset.cli.nope")
    assert "\n" not in message
