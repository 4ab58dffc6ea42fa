"""`kloset serve webdav`: the store tree (`kloset.storetree`) over read-only WebDAV.

Built on WsgiDAV (a maintained, complete WebDAV server: PROPFIND, ranges, locks for the
clients that insist on them) under cheroot, WsgiDAV's own threaded server. Windows Explorer,
macOS Finder, davfs2 and rclone's `webdav` backend see the same folders as the FUSE mount.
Every request needs the user and password printed at start (Basic or Digest). Files are
streamed through `kloset.reader.FileReader`, so a `Range` request reads only its chunks.

WebDAV has no symlinks: each one is shown as `NAME.rclonelink`, a small file holding the
link's target — rclone's own convention, so `rclone copy --links` recreates the link.
Names that are not valid UTF-8 cannot be spelled in a URL and are left out (the mount shows
them).
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import posixpath
from typing import Any

from kloset.errors import KlosetError, LocationError, PathNotFound
from kloset.storetree import Node, StoreTree
from kloset.tree import SYMLINK

LINK_SUFFIX = ".rclonelink"
USER = "kloset"
BLOCK_SIZE = 1024 * 1024  # bytes per read of a file body: one chunk, not 8 KiB at a time


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def load_wsgidav() -> Any:
    try:
        import cheroot.wsgi  # noqa: F401
        import wsgidav.wsgidav_app
    except ImportError as exc:
        raise KlosetError(
            "serve webdav needs the 'webdav' extra: pip install 'prefect-kloset[webdav]'"
        ) from exc
    return wsgidav


def build_app(tree: StoreTree, password: str) -> Any:
    """The WsgiDAV application serving `tree` read-only to `kloset` / `password`."""
    load_wsgidav()
    from io import BytesIO

    from wsgidav import util
    from wsgidav.dav_error import HTTP_FORBIDDEN, DAVError
    from wsgidav.dav_provider import DAVCollection, DAVNonCollection, DAVProvider
    from wsgidav.wsgidav_app import WsgiDAVApp

    def member(path: str, node: Node, environ: dict[str, Any]) -> Any:
        if node.is_dir:
            return Folder(path, environ, node)
        return File(path, environ, node)

    class File(DAVNonCollection):  # type: ignore[misc]
        def __init__(self, path: str, environ: dict[str, Any], node: Node) -> None:
            super().__init__(path, environ)
            self.node = node
            self.link = node.type == SYMLINK
            self.body = os.fsencode(node.target or "") if self.link else b""

        def get_content_length(self) -> int:
            return len(self.body) if self.link else self.node.size

        def get_content_type(self) -> str:
            if self.link:
                return "application/octet-stream"
            return mimetypes.guess_type(self.name)[0] or "application/octet-stream"

        def get_last_modified(self) -> float:
            return self.node.mtime_ns / 1e9

        def get_creation_date(self) -> float:
            return self.node.mtime_ns / 1e9

        def get_etag(self) -> str:
            entry = self.node.entry
            ids = b"".join(entry.chunks) if entry is not None else self.body
            return hashlib.sha256(ids + str(self.node.size).encode()).hexdigest()[:32]

        def support_etag(self) -> bool:
            return True

        def support_ranges(self) -> bool:
            return True

        def get_content(self) -> Any:
            if self.link:
                return BytesIO(self.body)
            try:
                return tree.open(self.path)
            except KlosetError as exc:
                raise DAVError(500, str(exc)) from exc

        def begin_write(self, *, content_type: str | None = None) -> Any:
            raise DAVError(HTTP_FORBIDDEN)

        def delete(self) -> None:
            raise DAVError(HTTP_FORBIDDEN)

        def copy_move_single(self, dest_path: str, *, is_move: bool) -> bool:
            raise DAVError(HTTP_FORBIDDEN)

    class Folder(DAVCollection):  # type: ignore[misc]
        def __init__(self, path: str, environ: dict[str, Any], node: Node) -> None:
            super().__init__(path, environ)
            self.node = node

        def get_last_modified(self) -> float:
            return self.node.mtime_ns / 1e9

        def get_creation_date(self) -> float:
            return self.node.mtime_ns / 1e9

        def _children(self) -> list[tuple[str, Node]]:
            out = []
            for name, node in tree.listdir(self.path or "/"):
                if not _utf8(name):
                    continue
                out.append((name + LINK_SUFFIX if node.type == SYMLINK else name, node))
            return out

        def get_member_names(self) -> list[str]:
            return [name for name, _node in self._children()]

        def get_member_list(self) -> list[Any]:
            base = self.path.rstrip("/")
            return [member(f"{base}/{n}", node, self.environ) for n, node in self._children()]

        def get_member(self, name: str) -> Any:
            return self.provider.get_resource_inst(util.join_uri(self.path, name), self.environ)

        def create_empty_resource(self, name: str) -> Any:
            raise DAVError(HTTP_FORBIDDEN)

        def create_collection(self, name: str) -> None:
            raise DAVError(HTTP_FORBIDDEN)

        def delete(self) -> None:
            raise DAVError(HTTP_FORBIDDEN)

        def copy_move_single(self, dest_path: str, *, is_move: bool) -> bool:
            raise DAVError(HTTP_FORBIDDEN)

    class StoreProvider(DAVProvider):  # type: ignore[misc]
        def is_readonly(self) -> bool:
            return True

        def get_resource_inst(self, path: str, environ: dict[str, Any]) -> Any:
            self._count_get_resource_inst += 1
            try:
                node = resolve(path)
            except PathNotFound:
                return None
            except KlosetError as exc:
                raise DAVError(500, str(exc)) from exc
            return member(path, node, environ)

    def resolve(path: str) -> Node:
        try:
            return tree.stat(path)
        except PathNotFound:
            parent, name = posixpath.split(path.rstrip("/"))
            if not name.endswith(LINK_SUFFIX):
                raise
            node = tree.stat(posixpath.join(parent, name[: -len(LINK_SUFFIX)]))
            if node.type != SYMLINK:
                raise
            return node

    config = {
        "provider_mapping": {"/": StoreProvider()},
        "http_authenticator": {
            "domain_controller": None,  # WsgiDAV's simple one, with the mapping below
            "accept_basic": True,
            "accept_digest": True,
            "default_to_digest": True,
        },
        "simple_dc": {"user_mapping": {"*": {USER: {"password": password}}}},
        "lock_storage": True,  # Finder and Explorer ask for locks even to read
        "property_manager": None,
        "block_size": BLOCK_SIZE,
        "verbose": 0,
        "logging": {"enable_loggers": []},
        "dir_browser": {"enable": True, "response_trailer": "kloset (read-only)"},
    }
    return WsgiDAVApp(config)


class WebDavServer:
    """cheroot serving the app on an address; bound in `__init__` so a port in use fails
    before anything is printed. Its worker threads run from then on: `stop()` must follow."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        from cheroot import wsgi

        self.server = wsgi.Server((host, port), app, numthreads=16, server_name="kloset")
        try:
            self.server.prepare()
        except OSError as exc:
            why = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
            raise LocationError(f"cannot listen on {host}:{port}: {why.strerror or why}") from None

    @property
    def port(self) -> int:
        return int(self.server.bind_addr[1])

    def serve(self) -> None:
        """Serve until `stop()` or an exception (Ctrl-C) in this thread."""
        self.server.serve()

    def stop(self) -> None:
        self.server.stop()
