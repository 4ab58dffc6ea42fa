"""Mounts the remote-import sub-commands: `kloset source|destination|store import|ls|rm`."""

from __future__ import annotations

from kloset.cli.app import app
from kloset.cli.remotes import destination_app, source_app, store_app

app.add_typer(
    source_app, name="source", help="Koofr remotes to back up from (imported from rclone)."
)
app.add_typer(destination_app, name="destination", help="Koofr remotes to restore to.")
app.add_typer(store_app, name="store", help="Koofr remotes to keep stores in.")
