"""kloset remotes config (remotes.json) and the `kloset source|destination|store` sub-apps."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kloset import remotes
from kloset.cli.remotes import destination_app, source_app, store_app
from kloset.errors import LocationError
from koofrfs.rclone import KoofrRemote, obscure

PASSWORD = "app-pass-1234"


def rclone_text(
    name: str = "emu",
    endpoint: str = "http://127.0.0.1:9",
    extra: str = "",
    password: str = PASSWORD,
) -> str:
    return (
        f"[{name}]\ntype = koofr\nprovider = other\nendpoint = {endpoint}\n"
        f"user = test@example.com\npassword = {obscure(password)}\n{extra}\n"
    )


REMOTE = KoofrRemote(
    name="emu",
    endpoint="http://127.0.0.1:9",
    provider="other",
    user="test@example.com",
    password=PASSWORD,
)


@pytest.fixture(autouse=True)
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "cfg" / "kloset"
    monkeypatch.setenv("KLOSET_CONFIG_DIR", str(directory))
    return directory


def test_config_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KLOSET_CONFIG_DIR", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "x"))
    assert remotes.config_path() == tmp_path / "a" / "remotes.json"
    monkeypatch.delenv("KLOSET_CONFIG_DIR")
    assert remotes.config_dir() == tmp_path / "x" / "kloset"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert remotes.config_dir() == tmp_path / "home" / ".config" / "kloset"


def test_save_get_list_remove(config_dir: Path) -> None:
    remotes.save_remote("source", "emu", REMOTE)
    remotes.save_remote("store", "vault", REMOTE)
    assert stat.S_IMODE((config_dir / "remotes.json").stat().st_mode) == 0o600
    assert stat.S_IMODE(config_dir.stat().st_mode) == 0o700
    raw = (config_dir / "remotes.json").read_text()
    assert PASSWORD not in raw  # stored obscured, like rclone
    got = remotes.get_remote("emu", "source")
    assert (got.user, got.password, got.endpoint) == (REMOTE.user, PASSWORD, REMOTE.endpoint)
    # the role's namespace first, then the others
    assert remotes.get_remote("vault", "destination").password == PASSWORD
    rows = remotes.list_remotes()
    assert [(r, n) for r, n, _ in rows] == [("source", "emu"), ("store", "vault")]
    assert all("password" not in key for _, _, s in rows for key in s)
    assert remotes.list_remotes("store")[0][1] == "vault"
    with pytest.raises(LocationError, match="already exists: use --overwrite"):
        remotes.save_remote("source", "emu", REMOTE)
    remotes.save_remote("source", "emu", REMOTE, overwrite=True)
    remotes.remove_remote("source", "emu")
    with pytest.raises(LocationError, match=r"unknown remote @emu: known remotes: vault"):
        remotes.get_remote("emu", "source")
    with pytest.raises(LocationError, match="no source remote named 'emu'"):
        remotes.remove_remote("source", "emu")
    assert not list(config_dir.glob(".remotes-*.tmp"))


def test_bad_names_and_roles() -> None:
    for bad in ("", "a b", "a:b", "@x", "a/b", "x" * 65):
        with pytest.raises(LocationError, match="invalid remote name"):
            remotes.save_remote("source", bad, REMOTE)
    with pytest.raises(ValueError, match="unknown role"):
        remotes.list_remotes("backup")


def test_corrupt_config_is_a_clear_error(config_dir: Path) -> None:
    config_dir.mkdir(parents=True)
    (config_dir / "remotes.json").write_text("{oops")
    with pytest.raises(LocationError, match="not valid JSON"):
        remotes.list_remotes()
    (config_dir / "remotes.json").write_text('{"version": 1, "source": {"x": {"user": "u"}}}')
    with pytest.raises(LocationError, match="remote @x in .* is damaged"):
        remotes.get_remote("x", "source")
    (config_dir / "remotes.json").write_text('{"version": 7}')
    with pytest.raises(LocationError, match="unknown format"):
        remotes.list_remotes()


@pytest.mark.parametrize(
    ("loc", "expected"),
    [
        ("@emu", ("emu", "", None)),
        ("@emu:/sub/path", ("emu", "sub/path", None)),
        ("@emu:sub/", ("emu", "sub", None)),
        ("@my.remote-2:/", ("my.remote-2", "", None)),
        ("@emu/Google Drive:/Photos/2024", ("emu", "Photos/2024", "Google Drive")),
        ("@emu/*", ("emu", "", "*")),
        ("@emu/3f2a-id:/x", ("emu", "x", "3f2a-id")),
        ("@emu/:/x", None),
        ("/local", None),
        ("koofr://x", None),
        ("@", None),
        ("@bad name:/x", None),
    ],
)
def test_parse_at_location(loc: str, expected: tuple[str, str, str | None] | None) -> None:
    assert remotes.parse_at_location(loc) == expected


def test_remote_filesystem() -> None:
    remotes.save_remote("destination", "emu", REMOTE)
    fs, base = remotes.remote_filesystem("emu", "destination", max_concurrency=2)
    assert base == ""
    assert (fs.endpoint, fs.user, fs.provider) == (
        "http://127.0.0.1:9",
        "test@example.com",
        "other",
    )


runner = CliRunner()


def test_cli_import_from_stdin_ls_rm(config_dir: Path) -> None:
    text = (
        rclone_text()
        + "\n"
        + rclone_text("other1", extra="mountid = m1").replace("other1]", "other1]")
    )
    result = runner.invoke(source_app, ["import", "--name", "emu"], input=text)
    assert result.exit_code == 0, result.output
    assert "imported rclone remote 'emu' as source @emu" in result.output
    assert stat.S_IMODE((config_dir / "remotes.json").stat().st_mode) == 0o600
    result = runner.invoke(source_app, ["import", "--name", "other1", "--as", "second"], input=text)
    assert result.exit_code == 0, result.output
    result = runner.invoke(source_app, ["ls", "--json"])
    assert result.exit_code == 0
    rows = json.loads(result.output)
    assert [r["name"] for r in rows] == ["emu", "second"]
    assert rows[1]["mountid"] == "m1" and rows[1]["rclone_name"] == "other1"
    assert PASSWORD not in result.output and "password" not in result.output
    plain = runner.invoke(source_app, ["ls"])
    assert "emu\ttest@example.com\thttp://127.0.0.1:9\tother" in plain.output
    assert PASSWORD not in plain.output
    assert runner.invoke(store_app, ["ls"]).output.startswith("no store remotes")
    result = runner.invoke(source_app, ["rm", "emu"])
    assert result.exit_code == 0 and "removed source remote @emu" in result.output
    result = runner.invoke(source_app, ["rm", "emu"])
    assert result.exit_code == 2
    assert result.output.startswith("error: no source remote named 'emu'")


def test_cli_import_from_file_and_errors(tmp_path: Path) -> None:
    conf = tmp_path / "rclone.conf"
    conf.write_text(rclone_text() + rclone_text("two"))
    ok = runner.invoke(destination_app, ["import", "--rclone-config", str(conf), "--name", "two"])
    assert ok.exit_code == 0, ok.output
    again = runner.invoke(
        destination_app, ["import", "--rclone-config", str(conf), "--name", "two"]
    )
    assert again.exit_code == 2 and "already exists: use --overwrite" in again.output
    over = runner.invoke(
        destination_app, ["import", "--rclone-config", str(conf), "--name", "two", "--overwrite"]
    )
    assert over.exit_code == 0
    several = runner.invoke(destination_app, ["import", "--rclone-config", str(conf)])
    assert several.exit_code == 2 and "choose one with --name NAME" in several.output
    masked = rclone_text().replace(obscure(PASSWORD)[:5], "")  # keep shape, then mask it
    masked = "\n".join(
        "password = *** ENCRYPTED ***" if line.startswith("password") else line
        for line in masked.splitlines()
    )
    result = runner.invoke(store_app, ["import"], input=masked)
    assert result.exit_code == 2
    assert "rclone config show emu masks the password" in result.output
    assert "Traceback" not in result.output
    missing = runner.invoke(store_app, ["import", "--rclone-config", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "cannot read rclone config" in missing.output
    badname = runner.invoke(store_app, ["import", "--as", "a b"], input=rclone_text())
    assert badname.exit_code == 2 and "invalid remote name" in badname.output


HOOK_CALLS: list[tuple[KoofrRemote, str]] = []


def recording_hook(remote: KoofrRemote, value: str) -> str:
    HOOK_CALLS.append((remote, value))
    return f"recorded {value}"


def failing_hook(remote: KoofrRemote, value: str) -> str:
    raise RuntimeError("the plugin's own error\nsecond line")


def test_cli_import_hooks_are_options_of_installed_plugins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from importlib.metadata import EntryPoint

    from kloset.cli import hooks
    from kloset.cli.remotes import _make_app

    plugins = tuple(
        EntryPoint(name=name, value=value, group=hooks.GROUP)
        for name, value in (
            ("record", f"{__name__}:recording_hook"),
            ("fail", f"{__name__}:failing_hook"),
            ("missing", "no_such_module_anywhere:hook"),
        )
    )
    monkeypatch.setattr(hooks, "installed", lambda: plugins)
    app = _make_app("source")
    assert "--record" in runner.invoke(app, ["import", "--help"]).output
    HOOK_CALLS.clear()
    result = runner.invoke(app, ["import", "--record", "koofr-main"], input=rclone_text())
    assert result.exit_code == 0, result.output
    assert "recorded koofr-main" in result.output
    assert HOOK_CALLS[0][1] == "koofr-main" and HOOK_CALLS[0][0].password == PASSWORD
    for option, says in (
        ("--fail", "--fail x: the plugin's own error; the kloset remote was saved"),
        ("--missing", "--missing: cannot load no_such_module_anywhere:hook"),
    ):
        result = runner.invoke(app, ["import", "--overwrite", option, "x"], input=rclone_text())
        assert result.exit_code == 1 and says in result.output, result.output
        assert "Traceback" not in result.output and "second line" not in result.output


def test_cli_import_check_and_use_against_emulator(tmp_path: Path) -> None:
    from koofr_emulator import KoofrEmulator

    with KoofrEmulator(tmp_path / "emu", port=0) as emu:
        good = rclone_text(endpoint=emu.url, password=emu.password)
        result = runner.invoke(store_app, ["import", "--check", "--as", "vault"], input=good)
        assert result.exit_code == 0, result.output
        assert "(mount Koofr)" in result.output
        fs, base = remotes.remote_filesystem("vault", "store", skip_instance_cache=True)
        fs.pipe_file("hello.txt", b"hi")
        assert fs.cat_file(base + "hello.txt") == b"hi"
        bad = rclone_text(endpoint=emu.url, password="wrong")
        result = runner.invoke(store_app, ["import", "--check", "--as", "bad"], input=bad)
        assert result.exit_code == 1
        assert "rejected the credentials for user test@example.com" in result.output
        assert "Traceback" not in result.output
        assert [n for _, n, _ in remotes.list_remotes("store")] == ["vault"]
