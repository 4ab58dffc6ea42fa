"""`kloset source|destination|store import|ls|rm|mounts`: Koofr remotes imported from rclone.

Typical use::

    rclone config show | kloset source import --name koofr
    rclone config dump | kloset store import --name koofr --as vault
    kloset source import --rclone-config ~/.config/rclone/rclone.conf --name koofr

Installed packages may add options to `import` (`kloset.cli.hooks`). Every failure is one line
on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from kloset import remotes
from kloset.cli.hooks import HookError, with_hook_options
from kloset.cli.hooks import run as run_hook
from kloset.cli.remote_mounts import add_mounts_command
from kloset.errors import KlosetError
from koofrfs.errors import KoofrError, RcloneConfigError
from koofrfs.rclone import KoofrRemote, koofr_remote, parse_rclone_config, read_rclone_config_file


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _read_sections(rclone_config: Path | None) -> dict[str, dict[str, str]]:
    if rclone_config is not None:
        return read_rclone_config_file(rclone_config)
    stdin = sys.stdin
    if stdin is None or stdin.isatty():
        _fail(
            'pipe "rclone config show" or "rclone config dump" into this command, '
            "or pass --rclone-config PATH",
            2,
        )
    return parse_rclone_config(stdin.read())


def _check(remote: KoofrRemote) -> str:
    """Log in once and return the mount's name, so a typo is caught at import time."""
    import fsspec

    fs = fsspec.filesystem("koofr", **remote.storage_options(), skip_instance_cache=True)
    mount = fs.mount()
    return str(mount.name or mount.id)


def _summary_line(role: str, name: str, summary: dict[str, Any]) -> str:
    mount = f"  mount={summary['mountid']}" if summary.get("mountid") else ""
    return (
        f"{name}\t{summary.get('user', '')}\t{summary.get('endpoint', '')}"
        f"\t{summary.get('provider', '')}{mount}"
    )


def _make_app(role: str) -> typer.Typer:
    """One sub-app per role; the commands are identical, the namespace differs."""
    app = typer.Typer(
        help=f"Koofr remotes used as {role} (imported from rclone).",
        no_args_is_help=True,
        add_completion=False,
    )

    @app.command("import")
    @with_hook_options
    def import_(
        name: Annotated[
            str | None, typer.Option("--name", help="rclone remote (section) to import.")
        ] = None,
        alias: Annotated[
            str | None, typer.Option("--as", help="Name to save it under (default: --name).")
        ] = None,
        rclone_config: Annotated[
            Path | None,
            typer.Option("--rclone-config", help="Read this rclone config file, not stdin."),
        ] = None,
        overwrite: Annotated[
            bool, typer.Option("--overwrite", help="Replace a remote of the same name.")
        ] = False,
        check: Annotated[
            bool, typer.Option("--check", help="Log in to Koofr once before saving.")
        ] = False,
        hooks: dict[EntryPoint, str] | None = None,
    ) -> None:
        """Import a Koofr remote from rclone's config (stdin or --rclone-config)."""
        try:
            remote = koofr_remote(_read_sections(rclone_config), name)
            saved_as = alias or remote.name
            remotes.validate_name(saved_as)
            where = f" (mount {_check(remote)})" if check else ""
            remotes.save_remote(role, saved_as, remote, overwrite=overwrite)
        except RcloneConfigError as exc:
            _fail(str(exc), 2)
        except KlosetError as exc:
            _fail(str(exc), exc.exit_code)
        except (KoofrError, OSError, ValueError) as exc:
            _fail(str(exc), 1)
        typer.echo(
            f"imported rclone remote {remote.name!r} as {role} @{saved_as}: "
            f"{remote.user} at {remote.endpoint}{where}"
        )
        for hook, value in (hooks or {}).items():
            try:
                said = run_hook(hook, remote, value)
            except HookError as exc:
                _fail(f"{exc}; the kloset remote was saved")
            if said:
                typer.echo(said)

    @app.command("ls")
    def ls(
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    ) -> None:
        """List saved remotes of this role (passwords are never shown)."""
        try:
            rows = remotes.list_remotes(role)
        except KlosetError as exc:
            _fail(str(exc), exc.exit_code)
        if as_json:
            typer.echo(json.dumps([{"role": r, "name": n, **s} for r, n, s in rows], indent=2))
            return
        if not rows:
            typer.echo(
                f"no {role} remotes; import one with: rclone config show | "
                f"kloset {role} import --name NAME"
            )
            return
        for r, n, s in rows:
            typer.echo(_summary_line(r, n, s))

    @app.command("rm")
    def rm(name: Annotated[str, typer.Argument(help="Saved remote to forget.")]) -> None:
        """Forget a saved remote (nothing on Koofr is touched)."""
        try:
            remotes.remove_remote(role, name)
        except KlosetError as exc:
            _fail(str(exc), exc.exit_code)
        typer.echo(f"removed {role} remote @{name}")

    add_mounts_command(app, role)
    return app


source_app = _make_app("source")
destination_app = _make_app("destination")
store_app = _make_app("store")
