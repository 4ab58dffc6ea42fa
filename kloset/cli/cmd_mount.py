"""`kloset at STORE mount MOUNTPOINT` and `kloset at STORE serve webdav`: the store's snapshots
for other programs (file managers, video players, grep, rclone), read-only.

Both show the same tree (`kloset.storetree`) and both hold a shared store lock while they
run, like a restore, so a prune cannot delete packs that an open file is being read from
(a prune started meanwhile waits, then fails with the holder's name).
"""

from __future__ import annotations

import contextlib
import platform
import secrets
import signal
import sys
from collections.abc import Iterator

import typer

from kloset.cli.app import at_app, store_ctx
from kloset.errors import KlosetError
from kloset.interrupts import Interrupted
from kloset.repository import Repository

serve_app = typer.Typer(
    help="Serve the store's snapshots over a network protocol (read-only).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
at_app.add_typer(serve_app, name="serve")


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@contextlib.contextmanager
def _reading(repo: Repository, what: str) -> Iterator[None]:
    """The shared lock a long-running reader holds (none on a read-only store)."""
    from kloset.locks import store_lock

    with store_lock(repo, False, what, required=False):
        yield


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (systemd, docker stop) ends the server like Ctrl-C: cleanly, lock released."""

    def handler(_signo: int, _frame: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@at_app.command("mount")
def mount_cmd(
    ctx: typer.Context,
    mountpoint: str = typer.Argument(..., metavar="MOUNTPOINT", help="An empty directory."),
    allow_other: bool = typer.Option(
        False,
        "--allow-other",
        help="Let other users see the mount (needs user_allow_other in /etc/fuse.conf).",
    ),
) -> None:
    """Mount the store read-only with FUSE: /snapshots, /ids, /tags and /latest."""
    from kloset.mount import check_mountpoint, load_fuse, mount
    from kloset.storetree import StoreTree

    load_fuse()  # before the passphrase: no point unlocking a store we cannot mount
    path = check_mountpoint(mountpoint)
    repo = store_ctx(ctx).open()
    tree = StoreTree(repo)
    tree.layout()  # list the snapshots now: a store that cannot be read fails here, not in ls
    how = f"umount {path}" if platform.system() == "Darwin" else f"fusermount3 -u {path}"
    with _reading(repo, "mount"):
        mount(
            tree,
            path,
            allow_other=allow_other,
            on_ready=lambda: _say(
                f"mounted {repo.storage.location} at {path} (read-only); "
                f"Ctrl-C or '{how}' to unmount"
            ),
        )
    _say(f"unmounted {path}")


@serve_app.command("webdav")
def webdav_cmd(
    ctx: typer.Context,
    addr: str = typer.Option(
        "127.0.0.1:0", "--addr", help="Where to listen, HOST:PORT (port 0 = any free port)."
    ),
    allow_remote: bool = typer.Option(
        False,
        "--allow-remote",
        help="Allow a non-loopback address (credentials and data travel unencrypted).",
    ),
) -> None:
    """Serve the store read-only over WebDAV (Explorer, Finder, davfs2, rclone)."""
    from kloset.cli.cmd_ui import is_loopback, parse_addr
    from kloset.storetree import StoreTree
    from kloset.webdav import USER, WebDavServer, build_app, load_wsgidav

    load_wsgidav()
    host, port = parse_addr(addr)
    loopback = is_loopback(host)
    if not loopback and not allow_remote:
        raise KlosetError(
            f"refusing to listen on {host}, which is not a loopback address: pass "
            "--allow-remote if you really want the store reachable from other machines"
        )
    repo = store_ctx(ctx).open()
    tree = StoreTree(repo)
    tree.layout()
    password = secrets.token_urlsafe(18)
    server = WebDavServer(build_app(tree, password), host, port)
    shown = "127.0.0.1" if host in ("0.0.0.0", "", "localhost") else host
    shown = f"[{shown}]" if ":" in shown else shown
    if not loopback:
        _say(
            f"kloset: warning: listening on {host}, reachable from other machines; the "
            "password and the data travel without encryption (use an SSH tunnel or TLS proxy)"
        )
    # Ctrl-C (or SIGTERM) is how a server stops: not an error, whenever it comes.
    try:
        with (
            _reading(repo, "serve webdav"),
            _sigterm_interrupts(),
            contextlib.suppress(KeyboardInterrupt, Interrupted),
        ):
            print(f"Kloset WebDAV for {repo.storage.location} (read-only)")
            print(f"  url       http://{shown}:{server.port}/")
            print(f"  user      {USER}")
            print(f"  password  {password}")
            print("Press Ctrl-C to stop.", flush=True)
            server.serve()
    finally:
        server.stop()
    _say("stopped")
