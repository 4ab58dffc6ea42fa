"""The user's Koofr remotes (imported from rclone), kept in the kloset config directory.

``remotes.json`` lives in ``$KLOSET_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/kloset``, else
``~/.config/kloset``. It holds credentials, so it is written atomically (temp file + rename, so a
crash never leaves half a file) with mode 0600 in a 0700 directory. Passwords are stored
rclone-obscured: that only keeps them from being read over a shoulder, the file mode is the
protection (same trade-off as rclone's own config).

Remotes live in three namespaces, one per role ("source", "destination", "store"), so the same
name can mean a different account depending on what it is used for; a lookup tries the role's
namespace first and then the others, because most people have one Koofr account for everything.
Locations refer to remotes as ``@NAME`` or ``@NAME:/sub/path``, and to another of the account's
mounts as ``@NAME/MOUNT:/sub/path`` (MOUNT is a mount's name or id) or to every mount at once,
one folder each, as ``@NAME/*``. The remote's filesystem comes from fsspec's registry
(``fsspec.filesystem("koofr", ...)``), so kloset uses koofrfs as any fsspec user would.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import fsspec
from fsspec import AbstractFileSystem

from kloset.errors import LocationError
from koofrfs.errors import RcloneConfigError
from koofrfs.rclone import KoofrRemote, obscure, reveal

ROLES = ("source", "destination", "store")
CONFIG_FILE = "remotes.json"
FORMAT_VERSION = 1
# No ':' (it separates the sub path in @NAME:/path), no '/', no spaces (shell quoting).
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,63}$")


def config_dir() -> Path:
    """The kloset config directory (not created here)."""
    if os.environ.get("KLOSET_CONFIG_DIR"):
        return Path(os.environ["KLOSET_CONFIG_DIR"]).expanduser()
    if os.environ.get("XDG_CONFIG_HOME"):
        return Path(os.environ["XDG_CONFIG_HOME"]).expanduser() / "kloset"
    return Path.home() / ".config" / "kloset"


def config_path() -> Path:
    """Path of ``remotes.json``."""
    return config_dir() / CONFIG_FILE


def validate_name(name: str) -> None:
    """Raise :class:`LocationError` unless ``name`` can be written as ``@NAME``."""
    if not _NAME.match(name or ""):
        raise LocationError(
            f"invalid remote name {name!r}: use letters, digits, '_', '.', '+', '-' "
            "(at most 64, no spaces or ':'); pick one with --as NAME"
        )


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: expected one of {', '.join(ROLES)}")


def _load() -> dict[str, Any]:
    path = config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {"version": FORMAT_VERSION, **{role: {} for role in ROLES}}
    except OSError as exc:
        raise LocationError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise LocationError(f"{path} is not valid JSON ({exc}): fix or remove it") from exc
    if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
        raise LocationError(f"{path} has an unknown format (expected version {FORMAT_VERSION})")
    for role in ROLES:
        data.setdefault(role, {})
    return data


def _save(data: dict[str, Any]) -> None:
    directory = config_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    fd, tmp = tempfile.mkstemp(prefix=".remotes-", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, directory / CONFIG_FILE)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename durable where the OS allows it
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """Serialise read-modify-write cycles of concurrent ``kloset`` processes (POSIX only)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: last writer wins
        yield
        return
    directory = config_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(directory / ".remotes.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _to_record(remote: KoofrRemote) -> dict[str, Any]:
    record = remote.summary()
    record["rclone_name"] = record.pop("name")
    record["password_obscured"] = obscure(remote.password)
    return record


def _from_record(name: str, record: dict[str, Any]) -> KoofrRemote:
    try:
        return KoofrRemote(
            name=name,
            endpoint=record["endpoint"],
            provider=record["provider"],
            user=record["user"],
            password=reveal(record["password_obscured"]),
            mountid=record.get("mountid"),
            setmtime=bool(record.get("setmtime", True)),
        )
    except (KeyError, TypeError, RcloneConfigError) as exc:
        raise LocationError(
            f"remote @{name} in {config_path()} is damaged ({exc}): "
            "import it again with --overwrite"
        ) from exc


def save_remote(role: str, name: str, remote: KoofrRemote, overwrite: bool = False) -> None:
    """Store ``remote`` as ``name`` in the ``role`` namespace."""
    _check_role(role)
    validate_name(name)
    with _locked():
        data = _load()
        if name in data[role] and not overwrite:
            raise LocationError(f"{role} remote {name!r} already exists: use --overwrite")
        data[role][name] = _to_record(remote)
        _save(data)


def list_remotes(role: str | None = None) -> list[tuple[str, str, dict[str, Any]]]:
    """(role, name, summary) of every saved remote, passwords left out."""
    if role is not None:
        _check_role(role)
    data = _load()
    out = []
    for r in ROLES if role is None else (role,):
        for name in sorted(data[r]):
            summary = {k: v for k, v in data[r][name].items() if "password" not in k}
            out.append((r, name, summary))
    return out


def remove_remote(role: str, name: str) -> None:
    """Forget a saved remote; :class:`LocationError` if there is none by that name."""
    _check_role(role)
    with _locked():
        data = _load()
        if name not in data[role]:
            raise LocationError(f"no {role} remote named {name!r}; {_known(data)}")
        del data[role][name]
        _save(data)


def _known(data: dict[str, Any]) -> str:
    names = sorted({n for role in ROLES for n in data[role]})
    return f"known remotes: {', '.join(names)}" if names else "no remotes saved yet"


def get_remote(name: str, role: str) -> KoofrRemote:
    """The remote ``name``, looked up in ``role``'s namespace first, then in the others."""
    _check_role(role)
    data = _load()
    for r in (role, *(x for x in ROLES if x != role)):
        if name in data[r]:
            return _from_record(name, data[r][name])
    raise LocationError(
        f"unknown remote @{name}: {_known(data)} (import one with `kloset {role} import`)"
    )


#: Environment variables that tune every Koofr filesystem kloset opens for ``@NAME`` (CLI, UI,
#: tasks), mapped to ``KoofrFileSystem`` options. They exist because the right retry budget and
#: request concurrency depend on the account and the network, not on the remote's identity, so
#: they do not belong in ``remotes.json``; and because tests need short backoffs.
def _on_off(raw: str) -> bool:
    """`1`/`0` (also yes/no, true/false, on/off) for a switch set in the environment."""
    word = raw.lower()
    if word in ("1", "yes", "true", "on"):
        return True
    if word in ("0", "no", "false", "off"):
        return False
    raise ValueError(raw)


_on_off.__name__ = "switch (1 or 0)"

ENV_FS_OPTIONS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "KLOSET_KOOFR_RETRIES": ("retries", int),
    "KLOSET_KOOFR_BACKOFF_BASE": ("backoff_base", float),
    "KLOSET_KOOFR_BACKOFF_MAX": ("backoff_max", float),
    "KLOSET_KOOFR_CONCURRENCY": ("max_concurrency", int),
    "KLOSET_KOOFR_CONNECTIONS": ("max_connections", int),
    "KLOSET_KOOFR_TIMEOUT": ("timeout", float),
    "KLOSET_KOOFR_TREE": ("use_tree", _on_off),
}


def env_fs_options() -> dict[str, Any]:
    """``KoofrFileSystem`` options set through ``KLOSET_KOOFR_*`` environment variables.

    A malformed or out-of-range value is a :class:`LocationError` naming the variable: silently
    falling back to the default would hide a typo until a rate-limited night run fails.
    """
    options: dict[str, Any] = {}
    for var, (option, kind) in ENV_FS_OPTIONS.items():
        raw = os.environ.get(var, "").strip()
        if not raw:
            continue
        try:
            value = kind(raw)
        except ValueError:
            raise LocationError(f"{var}={raw!r} is not a valid {kind.__name__}") from None
        minimum = 1 if kind is int else 0
        if value < minimum or value != value:  # value != value: NaN
            raise LocationError(f"{var}={raw!r} must be at least {minimum}")
        options[option] = value
    return options


def remote_filesystem(
    name: str, role: str, mount: str | None = None, **fs_options: Any
) -> tuple[AbstractFileSystem, str]:
    """(filesystem, base path) for ``@name`` (``@name/mount`` when ``mount`` is given, a name,
    an id or ``*``); the base is the mount root, ``""``.

    Options come from the saved remote, then ``KLOSET_KOOFR_*`` variables, then ``fs_options``.
    """
    remote = get_remote(name, role)
    # A backup lists the whole source: one `files/tree` request instead of one per folder
    # (5x faster at 100 ms a request; a server without it gets a listing per folder).
    defaults = {"use_tree": role == "source"}
    options = {**defaults, **remote.storage_options(), **env_fs_options(), **fs_options}
    if mount:
        options.pop("mountid", None)
        options["mount"] = mount
    return fsspec.filesystem("koofr", **options), ""


class RemoteRef(NamedTuple):
    """A parsed ``@NAME[/MOUNT][:/sub/path]``: the remote, the sub path in fsspec spelling (no
    leading or trailing slash) and the mount it names, if any."""

    name: str
    path: str
    mount: str | None = None


def parse_at_location(loc: str) -> RemoteRef | None:
    """``"@NAME"``, ``"@NAME:/sub/path"``, ``"@NAME/MOUNT:/sub"`` or ``"@NAME/*"`` parsed; anything
    that is not a well-formed remote reference gives ``None``."""
    if not loc.startswith("@"):
        return None
    head, _, sub = loc[1:].partition(":")
    name, slash, mount = head.partition("/")
    if not _NAME.match(name) or (slash and not mount.strip()):
        return None
    path = "/".join(part for part in sub.split("/") if part)
    return RemoteRef(name, path, mount.strip() if slash else None)
