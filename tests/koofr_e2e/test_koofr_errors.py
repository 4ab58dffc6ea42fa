"""Mistakes people make with Koofr remotes get one clear line, never a traceback."""

from __future__ import annotations

import pytest

from .conftest import FAST_KDF, KoofrWorld, needs_rclone, one_error_line

pytestmark = [needs_rclone, pytest.mark.slow]

WRONG = "rejected the credentials for user test@example.com"


def test_wrong_password_is_one_clear_line(world: KoofrWorld) -> None:
    world.add_rclone_remote("typo", password="not-the-app-password")
    world.ok("at", "store", "create", *FAST_KDF)
    (world.tmp / "data").mkdir()
    (world.tmp / "data" / "a.txt").write_text("a snapshot to restore\n")
    world.ok("at", "store", "backup", "data")

    # --check logs in before saving, so the typo is caught at import time.
    text = world.rclone("config", "show").stdout.encode()
    res = world.kloset("source", "import", "--name", "typo", "--check", input=text)
    assert res.returncode == 1 and WRONG in one_error_line(res.stderr)
    assert "typo" not in world.ok("source", "ls")

    world.import_remote("source", "typo")  # without --check it is saved as given
    for argv, where in (
        (("at", "store", "backup", "@typo:/Photos"), "source @typo:/Photos"),
        (("at", "store", "restore", "-to", "@typo:/x", "latest"), None),
        (("at", "@typo:/kloset", "ls"), None),
        (("at", "@typo:/kloset", "create", *FAST_KDF), None),
    ):
        res = world.kloset(*argv)
        assert res.returncode != 0, argv
        line = one_error_line(res.stderr)
        assert line.startswith("kloset: error:") and WRONG in line, (argv, line)
        assert "application password" in line
        if where:
            assert where in line
    assert world.emu.counters["files/put"] == 0  # nothing was written anywhere


def test_masked_password_from_config_show_name(world: KoofrWorld) -> None:
    world.add_rclone_remote("koofr")
    shown = world.rclone("config", "show", "koofr").stdout
    assert "*** ENCRYPTED ***" in shown  # what rclone prints for one named remote
    for role in ("source", "destination", "store"):
        res = world.kloset(role, "import", input=shown.encode())
        assert res.returncode == 2
        line = one_error_line(res.stderr)
        assert "rclone config show koofr masks the password" in line
        assert '"rclone config dump"' in line and "--rclone-config PATH --name koofr" in line
    assert "no source remotes" in world.ok("source", "ls")

    # What the message says to do instead works.
    world.import_remote("source", "koofr", via="dump")
    res = world.kloset(
        "store", "import", "--rclone-config", world.rclone_conf, "--name", "koofr", "--check"
    )
    assert res.returncode == 0, res.stderr
    assert "koofr" in world.ok("source", "ls") and "koofr" in world.ok("store", "ls")


def test_unknown_remote_and_bad_knob(world: KoofrWorld) -> None:
    world.ok("at", "store", "create", *FAST_KDF)
    res = world.kloset("at", "store", "backup", "@nowhere:/x")
    assert res.returncode == 2
    assert "unknown remote @nowhere" in one_error_line(res.stderr)

    world.add_rclone_remote("koofr")
    world.import_remote("source", "koofr")
    res = world.kloset("at", "store", "backup", "@koofr:/", KLOSET_KOOFR_RETRIES="many")
    assert res.returncode == 2
    assert "KLOSET_KOOFR_RETRIES='many' is not a valid int" in one_error_line(res.stderr)
