"""rclone config parsing and password obscuring, cross-checked against the real rclone binary."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from koofrfs.errors import RcloneConfigError
from koofrfs.rclone import (
    KoofrRemote,
    koofr_remote,
    obscure,
    parse_rclone_config,
    read_rclone_config_file,
    reveal,
)

RCLONE = shutil.which("rclone")
needs_rclone = pytest.mark.skipif(RCLONE is None, reason="rclone binary not installed")
# `rclone obscure test-password` (any IV works; this one is fixed so the tests are stable)
OBSCURED = "dX2asdouUnzgAVjFbdUXI8XKS_nPpWB8yWo3-MY"

WHOLE = f"""[emu]
type = koofr
provider = other
endpoint = http://127.0.0.1:18765
user = test@example.com
password = {OBSCURED}

[s3x]
type = s3
provider = AWS

"""
SINGLE_MASKED = """[emu]
type = koofr
provider = other
endpoint = http://127.0.0.1:18765
user = test@example.com
password = *** ENCRYPTED ***
"""
DUMP = f"""{{
    "emu": {{
        "endpoint": "http://127.0.0.1:18765",
        "password": "{OBSCURED}",
        "provider": "other",
        "type": "koofr",
        "user": "test@example.com"
    }},
    "s3x": {{"provider": "AWS", "type": "s3"}}
}}"""


def rclone(*args: str) -> str:
    assert RCLONE is not None
    return subprocess.run([RCLONE, *args], check=True, capture_output=True, text=True).stdout


@needs_rclone
def test_obscured_value_starting_with_dash_matches_rclone() -> None:
    """base64url output starts with "-" one time in 64: that value must survive both ways."""
    dashed = next(v for v in (obscure("dash-case") for _ in range(10_000)) if v.startswith("-"))
    assert reveal(dashed) == "dash-case"
    assert rclone("reveal", "--", dashed).rstrip("\n") == "dash-case"


def test_reveal_known_value() -> None:
    assert reveal(OBSCURED) == "test-password"
    assert reveal(obscure("")) == ""
    assert len(obscure("")) == 22  # IV only, like rclone


@needs_rclone
@pytest.mark.parametrize("plain", ["test-password", "", "pässwörd-ünïcode-ĳ", "x" * 100, "a b%c=d"])
def test_obscure_reveal_match_rclone_binary(plain: str) -> None:
    # "--": one obscured value in 64 starts with "-", which rclone would take for a flag
    assert rclone("reveal", "--", obscure(plain)).rstrip("\n") == plain
    if plain:  # rclone obscure "" reads the password from stdin instead
        assert reveal(rclone("obscure", plain).strip()) == plain


@given(st.text())
@settings(max_examples=200)
def test_obscure_roundtrip(plain: str) -> None:
    plain = plain.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    assert reveal(obscure(plain)) == plain


@pytest.mark.parametrize(("bad", "why"), [("abc", "too short"), ("!!!!", "base64")])
def test_reveal_rejects_plain_passwords(bad: str, why: str) -> None:
    with pytest.raises(RcloneConfigError, match=why):
        reveal(bad)


@pytest.mark.parametrize("text", [WHOLE, DUMP, WHOLE.replace("\n", "\r\n"), "\ufeff" + WHOLE])
def test_parse_whole_config_and_dump(text: str) -> None:
    sections = parse_rclone_config(text)
    assert set(sections) == {"emu", "s3x"}
    remote = koofr_remote(sections)
    assert remote == KoofrRemote(
        name="emu",
        endpoint="http://127.0.0.1:18765",
        provider="other",
        user="test@example.com",
        password="test-password",
    )
    assert "test-password" not in repr(remote)
    assert "password" not in remote.summary()


def test_single_section_with_obscured_password() -> None:
    text = SINGLE_MASKED.replace("*** ENCRYPTED ***", OBSCURED)
    assert koofr_remote(parse_rclone_config(text), "emu").password == "test-password"


def test_masked_password_says_what_to_run() -> None:
    with pytest.raises(RcloneConfigError) as err:
        koofr_remote(parse_rclone_config(SINGLE_MASKED))
    message = str(err.value)
    assert "rclone config show emu masks the password" in message
    assert '"rclone config dump"' in message
    assert "--rclone-config PATH --name emu" in message


def test_values_are_raw_and_decoration_is_ignored() -> None:
    text = (
        "; comment\n--------------------\n[a b]\ntype = koofr\nuser = u@x\n"
        f"password = {OBSCURED}\nendpoint = https://app.koofr.net/\nnote = 100% ; # = x\n"
    )
    sections = parse_rclone_config(text)
    assert sections["a b"]["note"] == "100% ; # = x"
    remote = koofr_remote(sections)
    assert (remote.provider, remote.endpoint) == ("koofr", "https://app.koofr.net")


@pytest.mark.parametrize(
    ("extra", "provider", "endpoint"),
    [
        ("provider = koofr\nendpoint = http://elsewhere", "koofr", "https://app.koofr.net"),
        ("provider = digistorage", "digistorage", "https://storage.rcs-rds.ro"),
        ("endpoint = https://storage.rcs-rds.ro/", "digistorage", "https://storage.rcs-rds.ro"),
        ("", "koofr", "https://app.koofr.net"),
        ("endpoint = http://127.0.0.1:9/", "other", "http://127.0.0.1:9"),
    ],
)
def test_provider_and_endpoint_like_rclone(extra: str, provider: str, endpoint: str) -> None:
    text = f"[k]\ntype = koofr\nuser = u@x\npassword = {OBSCURED}\n{extra}\n"
    remote = koofr_remote(parse_rclone_config(text))
    assert (remote.provider, remote.endpoint) == (provider, endpoint)


def test_mountid_and_setmtime() -> None:
    text = (
        f"[k]\ntype = koofr\nuser = u@x\npassword = {OBSCURED}\nmountid = abc\nsetmtime = false\n"
    )
    remote = koofr_remote(parse_rclone_config(text))
    assert remote.mountid == "abc" and remote.setmtime is False
    assert remote.storage_options()["mountid"] == "abc"
    assert remote.storage_options()["setmtime"] is False  # a connected cloud: no mtimes


@pytest.mark.parametrize(
    ("text", "name", "match"),
    [
        ("[s]\ntype = s3\n", None, "no koofr remote.*s \\(s3\\)"),
        (
            WHOLE + WHOLE.replace("[emu]", "[emu2]"),
            None,
            "several koofr remotes.*\\(emu, emu2\\).*--name",
        ),
        (WHOLE, "nope", "no rclone remote named 'nope'.*emu \\(koofr\\)"),
        (WHOLE, "s3x", "type s3, not koofr"),
        ("[k]\ntype = koofr\npassword = x\n", None, "has no user"),
        ("[k]\ntype = koofr\nuser = u@x\n", None, "has no password"),
        ("[k]\ntype = koofr\nuser = u@x\npassword = plain\n", None, "is it obscured"),
        (
            "[k]\ntype = koofr\nuser = u@x\nprovider = other\npassword = " + OBSCURED,
            None,
            "needs an endpoint",
        ),
    ],
)
def test_clear_errors(text: str, name: str | None, match: str) -> None:
    with pytest.raises(RcloneConfigError, match=match):
        koofr_remote(parse_rclone_config(text), name)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty"),
        ("type = koofr\n", "before any \\[name\\]"),
        ("[a]\njunk\n", "line 2"),
        ("{not json", "not valid JSON"),
        ('{"a": 1}', "config dump"),
        ("# Encrypted rclone configuration File\n\nRCLONE_ENCRYPT_V0:\nabc", "encrypted"),
    ],
)
def test_parse_errors(text: str, match: str) -> None:
    with pytest.raises(RcloneConfigError, match=match):
        parse_rclone_config(text)


def test_read_config_file(tmp_path: Path) -> None:
    path = tmp_path / "rclone.conf"
    path.write_text(WHOLE)
    assert koofr_remote(read_rclone_config_file(path)).user == "test@example.com"
    with pytest.raises(RcloneConfigError, match="cannot read rclone config"):
        read_rclone_config_file(tmp_path / "missing.conf")


@needs_rclone
def test_real_rclone_outputs(tmp_path: Path) -> None:
    conf = tmp_path / "rclone.conf"
    conf.write_text(WHOLE.replace(OBSCURED, rclone("obscure", "s3cr3t pw").strip()))
    show_all = rclone("--config", str(conf), "config", "show")
    dump = rclone("--config", str(conf), "config", "dump")
    show_one = rclone("--config", str(conf), "config", "show", "emu")
    assert koofr_remote(parse_rclone_config(show_all)).password == "s3cr3t pw"
    assert koofr_remote(parse_rclone_config(dump)).password == "s3cr3t pw"
    with pytest.raises(RcloneConfigError, match="masks the password"):
        koofr_remote(parse_rclone_config(show_one))
