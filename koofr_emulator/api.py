"""Koofr REST handlers: one function per route, mapping requests onto the mounts' stores."""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from . import behaviour, transfer
from .auth import Authenticator
from .entries import Entry
from .errors import ApiError, bad_request, not_found
from .http_types import (
    Request,
    Response,
    get_int,
    get_opt_str,
    get_str,
    json_response,
    unauthorized,
)
from .mounts import MountView, mount_json
from .paths import normalize_path
from .store import MIB


class KoofrApi:
    """Route name -> handler dispatch; every handler returns a ``Response`` or raises
    ``ApiError``. Authentication and faults are applied by the server before this.

    ``mounts`` are the account's mounts in the order ``GET /api/v2/mounts`` lists them; each is
    a view of a device store (see :mod:`koofr_emulator.mounts`)."""

    def __init__(
        self,
        mounts: list[MountView],
        auth: Authenticator,
        account: dict[str, str],
        base_url: Callable[[], str],
    ) -> None:
        self.mounts = {m.id: m for m in mounts}
        self.auth = auth
        self.account = account
        self._base_url = base_url
        self._links: dict[str, dict[str, Any]] = {}
        self._links_lock = threading.Lock()
        self._cross_device = threading.Lock()
        self._handlers: dict[str, Callable[[Request], Response]] = {
            "token": self.token,
            "user": self.user,
            "places": self.places,
            "shared": self.shared,
            "trash": self.trash,
            "mounts": self.list_mounts,
            "mount": self.mount,
            "files/info": self.files_info,
            "files/list": self.files_list,
            "files/tree": self.files_tree,
            "files/folder": self.files_folder,
            "files/remove": self.files_remove,
            "files/copy": self.files_copy,
            "files/move": self.files_move,
            "files/get": self.files_get,
            "files/put": self.files_put,
            "links": self.links,
        }

    def handle(self, req: Request) -> Response:
        return self._handlers[req.route](req)

    # -- account ------------------------------------------------------------------------------

    def _view(self, mount_id: str | None) -> MountView:
        view = self.mounts.get(mount_id or "")
        if view is None and behaviour.ACCEPT_PRIMARY_ALIAS and mount_id == "primary":
            view = next(m for m in self.mounts.values() if m.spec.primary)
        if view is None:
            raise not_found("Mount not found")
        return view

    def _mounted(self, req: Request, write: bool = False) -> MountView:
        """The mount a files request is for, once it is known to be online (and writable)."""
        return self._usable(self._view(req.mount_id), write)

    def _usable(self, view: MountView, write: bool) -> MountView:
        if not view.online:
            raise ApiError(
                behaviour.DEVICE_OFFLINE_STATUS, behaviour.DEVICE_OFFLINE_CODE, "Device is offline"
            )
        if write and not view.spec.writable:
            raise ApiError(
                behaviour.READ_ONLY_STATUS, behaviour.READ_ONLY_CODE, "Insufficient permissions"
            )
        return view

    def mount_json(self, view: MountView) -> dict[str, Any]:
        used = view.store.used_bytes
        used_mib = math.ceil(used / MIB) if behaviour.SPACE_USED_ROUND_UP else used // MIB
        return mount_json(view, self.account, used_mib)

    def _entry(self, view: MountView, entry: Entry, path: str) -> dict[str, Any]:
        """FileInfo as this mount shows it: a mount's root has no name, and devices that keep
        no MD5 (connected Dropbox, OneDrive) list none."""
        doc = entry.to_json()
        if path == "/":
            doc["name"] = ""
        if not view.device.has_md5:
            doc.pop("hash", None)
        return doc

    def token(self, req: Request) -> Response:
        user_header = [("X-User-ID", self.account["userId"])]
        if req.method == "GET":  # legacy python/node clients: credentials in headers [C]
            email = req.headers.get("X-Koofr-Email", "")
            password = req.headers.get("X-Koofr-Password", "")
            if not self.auth.credentials_ok(email, password):
                return unauthorized()
            return Response(200, [("X-Koofr-Token", self.auth.issue_token()), *user_header])
        doc = req.json_body()
        email = doc.get("email")
        password = doc.get("password")
        if not (isinstance(email, str) and isinstance(password, str)):
            raise bad_request("Invalid credentials format")
        if not self.auth.credentials_ok(email, password):
            return unauthorized()
        return json_response({"token": self.auth.issue_token()}, headers=user_header)

    def user(self, req: Request) -> Response:
        return json_response(
            {
                "id": self.account["userId"],
                "firstName": behaviour.USER_FIRST_NAME,
                "lastName": behaviour.USER_LAST_NAME,
                "email": self.account["email"],
                "level": behaviour.USER_LEVEL,
                "hasPassword": True,
            }
        )

    def places(self, req: Request) -> Response:
        """Devices only: Koofr's own client lists shares under ``/shared`` [C koofr/vault]."""
        devices = [m for m in self.mounts.values() if m.spec.type == "device"]
        return json_response({"places": [self.mount_json(m) for m in devices]})

    def shared(self, req: Request) -> Response:
        """Folders shared with or by this user, each with its mount [C koofr/vault]."""
        files = []
        for m in self.mounts.values():
            if m.spec.type == "device":
                continue
            doc = self._entry(m, m.store.info(m.full("/")), "/") | {"name": m.spec.name}
            files.append({**doc, "mount": self.mount_json(m)})
        return json_response({"files": files})

    def trash(self, req: Request) -> Response:
        """Deleted files still kept, on every device the user owns [C java-koofr ``Trash``]."""
        files = []
        for m in self.mounts.values():
            if m.spec.type == "device" and m.spec.owner is None:
                files += [{"mountId": m.id, **item} for item in m.store.trash_items()]
        mounts = {m.id: self.mount_json(m) for m in self.mounts.values()}
        return json_response(
            {"files": files, "mounts": mounts, "retentionDays": behaviour.TRASH_RETENTION_DAYS}
        )

    def list_mounts(self, req: Request) -> Response:
        return json_response({"mounts": [self.mount_json(m) for m in self.mounts.values()]})

    def mount(self, req: Request) -> Response:
        return json_response(self.mount_json(self._view(req.mount_id)))

    # -- files --------------------------------------------------------------------------------

    def files_info(self, req: Request) -> Response:
        view = self._mounted(req)
        path = req.path_param()
        return json_response(self._entry(view, view.store.info(view.full(path)), path))

    def files_list(self, req: Request) -> Response:
        view = self._mounted(req)
        entries = view.store.list(view.full(req.path_param()))
        return json_response({"files": [self._entry(view, e, "") for e in entries]})

    def files_tree(self, req: Request) -> Response:
        view = self._mounted(req)
        path = req.path_param()
        doc = view.store.tree(view.full(path))
        if path == "/":
            doc["name"] = ""
        if not view.device.has_md5:
            _drop_hashes(doc)
        return json_response(doc)

    def files_folder(self, req: Request) -> Response:
        view = self._mounted(req, write=True)
        parent = req.path_param()
        name = get_str(req.json_body(), "name")
        view.store.mkdir(view.full(parent), name)
        return Response(200, body=behaviour.EMPTY_OK_BODY)

    def files_remove(self, req: Request) -> Response:
        view = self._mounted(req, write=True)
        path = req.path_param()
        if path == "/":
            raise ApiError(400, "NotDir", "Directory expected")
        view.store.remove(
            view.full(path),
            if_size=req.int_param("removeIfSize"),
            if_modified=req.int_param("removeIfModified"),
            if_hash=req.query.get("removeIfHash"),
            if_empty="removeIfEmpty" in req.query,
        )
        return Response(200, body=behaviour.EMPTY_OK_BODY)

    def _destination(self, req: Request, doc: dict[str, Any]) -> tuple[MountView, str]:
        to_mount = doc.get("toMountId")
        if to_mount is None and behaviour.REQUIRE_TO_MOUNT_ID:
            raise bad_request("Missing toMountId")
        view = self._view(get_str(doc, "toMountId") if to_mount is not None else req.mount_id)
        return self._usable(view, write=True), normalize_path(get_str(doc, "toPath"))

    def files_copy(self, req: Request) -> Response:
        src_view = self._mounted(req)
        src = req.path_param()
        doc = req.json_body()
        dst_view, dst = self._destination(req, doc)
        modified = get_int(doc, "modified") if dst_view.device.keeps_mtime else None
        if src_view.store is dst_view.store:
            name = dst_view.store.copy(src_view.full(src), dst_view.full(dst), modified)
        else:
            with self._cross_device:
                name = dst_view.store.copy(
                    src_view.full(src), dst_view.full(dst), modified, source=src_view.store
                )
        return json_response({"name": name})

    def files_move(self, req: Request) -> Response:
        src_view = self._mounted(req, write=True)
        src = req.path_param()
        doc = req.json_body()
        dst_view, dst = self._destination(req, doc)
        conditions = {
            "if_size": get_int(doc, "ifSize"),
            "if_modified": get_int(doc, "ifModified"),
            "if_hash": get_opt_str(doc, "ifHash"),
        }
        if src_view.store is dst_view.store:
            name = dst_view.store.move(src_view.full(src), dst_view.full(dst), **conditions)
            return json_response({"name": name})
        with self._cross_device:  # another device: copy, then delete the source
            src_view.store.check(src_view.full(src), **conditions)
            name = dst_view.store.copy(
                src_view.full(src), dst_view.full(dst), source=src_view.store
            )
            src_view.store.remove(src_view.full(src))
        return json_response({"name": name})

    def files_get(self, req: Request) -> Response:
        view = self._mounted(req)
        path = view.full(req.path_param())
        return transfer.files_get(view.store, req, path, view.device.has_md5)

    def files_put(self, req: Request) -> Response:
        view = self._mounted(req, write=True)
        parent = view.full(req.path_param())
        device = view.device
        return transfer.files_put(view.store, req, parent, device.keeps_mtime, device.has_md5)

    def links(self, req: Request) -> Response:
        view = self._mounted(req)
        path = normalize_path(get_str(req.json_body(), "path"))
        entry = view.store.info(view.full(path))
        link_id = secrets.token_urlsafe(12)
        short = secrets.token_urlsafe(6)
        base = self._base_url()
        link = {
            "id": link_id,
            "name": entry.name,
            "path": path,
            "counter": 0,
            "url": f"{base}/links/{link_id}",
            "shortUrl": f"{base}/s/{short}",
            "hash": short,
            "host": base.split("://", 1)[-1],
            "hasPassword": False,
            "password": "",
            "validFrom": int(time.time() * 1000),
            "validTo": 0,
            "passwordRequired": False,
        }
        with self._links_lock:
            self._links[link_id] = link
        return json_response(link, status=behaviour.LINK_CREATE_STATUS)


def _drop_hashes(node: dict[str, Any]) -> None:
    node.pop("hash", None)
    for child in node.get("children") or ():
        _drop_hashes(child)
