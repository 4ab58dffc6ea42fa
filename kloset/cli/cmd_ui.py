"""`kloset at STORE ui`: serve the viewer web UI for one store.

The server listens on loopback unless told otherwise, and every request needs a token made fresh
for this run (printed in the URL), so other users of the machine and other web sites cannot read
the snapshots through it. Listening on another address is an explicit choice with a warning:
the token then crosses the network in clear text.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
import sys
import webbrowser

import typer

from kloset.cli.app import at_app, store_ctx
from kloset.errors import KlosetError, LocationError


def parse_addr(addr: str) -> tuple[str, int]:
    """`HOST:PORT`, `[V6]:PORT`, `:PORT` or `PORT` → (host, port); port 0 picks a free one."""
    addr = addr.strip()
    if addr.startswith("["):
        host, sep, rest = addr[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise KlosetError(f"bad address '{addr}' (use [::1]:PORT)")
        port_s = rest[1:] or "0"
    elif addr.count(":") == 1:
        host, port_s = addr.split(":")
    elif ":" in addr:
        host, port_s = addr, "0"  # a bare IPv6 address
    elif addr.isdigit():
        host, port_s = "", addr
    else:
        host, port_s = addr, "0"
    try:
        port = int(port_s)
    except ValueError:
        raise KlosetError(f"bad port in '{addr}'") from None
    if not 0 <= port <= 65535:
        raise KlosetError(f"port out of range in '{addr}'")
    return host or "127.0.0.1", port


def is_loopback(host: str) -> bool:
    """True when every address `host` names is a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, bound before the URL is printed so the port in it is real."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if host == "localhost":
        host = "127.0.0.1"
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise LocationError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.listen(128)
    return sock


def page_url(sock: socket.socket, host: str, token: str) -> str:
    port = sock.getsockname()[1]
    shown = host
    if host in ("0.0.0.0", "::", "") or host == "localhost":
        shown = "127.0.0.1"
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/?token={token}"


@at_app.command("ui")
def ui(
    ctx: typer.Context,
    addr: str = typer.Option(
        "127.0.0.1:0", "--addr", help="Where to listen, HOST:PORT (port 0 = any free port)."
    ),
    no_open: bool = typer.Option(False, "--no-open", help="Do not open a web browser."),
    allow_remote: bool = typer.Option(
        False,
        "--allow-remote",
        help="Allow a non-loopback address (the token travels unencrypted).",
    ),
    restore_target: list[str] = typer.Option(
        [],
        "--restore-target",
        metavar="PATH_OR_@NAME",
        help="A destination the page may restore to (repeatable). Without one, restore is off.",
    ),
) -> None:
    """Browse, search, diff, download and restore snapshots in a web browser."""
    import uvicorn

    from kloset.ui import create_app
    from kloset.ui.jobs import parse_targets

    host, port = parse_addr(addr)
    loopback = is_loopback(host)
    if not loopback and not allow_remote:
        raise KlosetError(
            f"refusing to listen on {host}, which is not a loopback address: pass --allow-remote "
            "if you really want the viewer reachable from other machines"
        )
    targets = parse_targets(restore_target)
    repo = store_ctx(ctx).open()
    token = secrets.token_urlsafe(24)
    sock = bind(host, port)
    url = page_url(sock, host, token)
    app = create_app(repo, token=token, restore_targets=targets)
    if not loopback:
        print(
            f"kloset: warning: listening on {host}, reachable from other machines; the token and "
            "the data travel without encryption (use an SSH tunnel or a TLS proxy)",
            file=sys.stderr,
        )
    print(f"Kloset viewer for {repo.storage.location}")
    print(f"  {url}")
    for t in targets:
        print(f"  restores allowed to: {t.label}")
    print("Press Ctrl-C to stop.", flush=True)
    if not no_open:
        webbrowser.open(url)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])
