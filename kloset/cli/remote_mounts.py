"""`kloset source|destination|store mounts @NAME`: the Koofr mounts a saved remote can reach.

One row per mount: how to address it (``@NAME/<name or id>``), what it is, whether kloset can
read and write it, its free space, and what ``@NAME/*`` (every mount, one folder each) does with
it: backed up as its own folder, or as part of the mount it lies in (a folder shared out is also
a folder of the primary mount, and is backed up once), or an error when it is offline.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from kloset import remotes
from kloset.cli.output import human_size, table, to_json
from kloset.errors import KlosetError, LocationError
from koofrfs.errors import KoofrError


def _access(m: dict[str, Any]) -> str:
    if not m["online"]:
        return "offline"
    return "read-write" if m["writable"] else "read-only"


def _in_all(m: dict[str, Any]) -> str:
    if m["inside"]:
        return f"inside {m['inside']}"
    if not m["online"]:
        return f"{m['folder']} (offline: reported as an error)"
    return str(m["folder"])


def _kind(m: dict[str, Any]) -> str:
    flags = [m["type"], m["origin"]]
    if m["primary"]:
        flags.append("primary")
    if not m["keeps_mtime"]:
        flags.append("no mtimes")
    return ", ".join(flags)


def add_mounts_command(app: typer.Typer, role: str) -> None:
    """Register ``mounts`` on a role's sub-app."""

    @app.command("mounts")
    def mounts(
        remote: Annotated[str, typer.Argument(help="A saved remote: @NAME.")],
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    ) -> None:
        """List the Koofr mounts of a remote: primary, shared, team and connected ones."""
        try:
            ref = remotes.parse_at_location(remote if remote.startswith("@") else f"@{remote}")
            if ref is None or ref.path or ref.mount:
                raise LocationError(f"give a saved remote as @NAME, not '{remote}'")
            fs, _ = remotes.remote_filesystem(ref.name, role)
            rows = fs.mounts()  # type: ignore[attr-defined]
        except KlosetError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except (KoofrError, OSError, ValueError) as exc:
            typer.echo(f"error: cannot list the mounts of {remote}: {exc}", err=True)
            raise typer.Exit(1) from None
        if as_json:
            typer.echo(to_json(rows))
            return
        lines = [["NAME", "ID", "KIND", "ACCESS", "FREE", f"IN @{ref.name}/*"]]
        lines += [
            [m["name"], m["id"], _kind(m), _access(m), human_size(m["space_free"]), _in_all(m)]
            for m in rows
        ]
        typer.echo(table(lines, right=(4,)))
        typer.echo(
            f"address one as @{ref.name}/NAME:/path or @{ref.name}/ID:/path; "
            f"every mount at once as @{ref.name}/*"
        )
