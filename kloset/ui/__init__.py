"""The viewer web UI (`kloset at STORE ui`): browse, search, diff, download and restore snapshots.

`create_app` builds the Starlette application for one opened store; `kloset.cli.cmd_ui` serves
it with uvicorn on loopback with a per-run token. The JSON API is documented in docs/UI.md.
"""

from kloset.ui.server import create_app

__all__ = ["create_app"]
