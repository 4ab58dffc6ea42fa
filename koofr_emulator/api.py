"""Koofr REST handlers: one function per route, mapping requests onto the ``Store``."""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import behaviour, transfer
from .auth import Authenticator
from .errors import bad_request, not_found
from .http_types import (
    Request,
    Response,
    get_int,
    get_opt_str,
    get_str,
    json_response,
    unauthorized,
)
from .paths import normalize_path
from .store import MIB, Store


@dataclass(frozen=True)
class Account:
    """The single emulated user and their primary mount."""

    email: str
    user_id: str
    mount_id: str
    space_total_mib: int


class KoofrApi:
    """Route name -> handler dispatch; every handler returns a ``Response`` or raises
    ``ApiError``. Authentication and faults are applied by the server before this."""

    def __init__(
        self, store: Store, auth: Authenticator, account: Account, base_url: Callable[[], str]
    ) -> None:
        self.store = store
        self.auth = auth
        self.account = account
        self._base_url = base_url
        self._links: dict[str, dict[str, Any]] = {}
        self._links_lock = threading.Lock()
        self._handlers: dict[str, Callable[[Request], Response]] = {
            "token": self.token,
            "user": self.user,
            "places": self.places,
            "mounts": self.mounts,
            "mount": self.mount,
            "files/info": self.files_info,
            "files/list": self.files_list,
            "files/tree": self.files_tree,
            "files/folder": self.files_folder,
            "files/remove": self.files_remove,
            "files/copy": self.files_copy,
            "files/move": self.files_move,
            "files/get": lambda req: transfer.files_get(self.store, self._mounted(req)),
            "files/put": lambda req: transfer.files_put(self.store, self._mounted(req)),
            "links": self.links,
        }

    def handle(self, req: Request) -> Response:
        return self._handlers[req.route](req)

    # -- account ------------------------------------------------------------------------------

    def _mount_ok(self, mount_id: str | None) -> bool:
        if mount_id == self.account.mount_id:
            return True
        return behaviour.ACCEPT_PRIMARY_ALIAS and mount_id == "primary"

    def _mounted(self, req: Request) -> Request:
        if not self._mount_ok(req.mount_id):
            raise not_found("Mount not found")
        return req

    def mount_json(self) -> dict[str, Any]:
        used = self.store.used_bytes
        used_mib = math.ceil(used / MIB) if behaviour.SPACE_USED_ROUND_UP else used // MIB
        total = self.account.space_total_mib
        perms = {
            key: True
            for key in (
                "READ",
                "WRITE",
                "OWNER",
                "MOUNT",
                "CREATE_RECEIVER",
                "CREATE_LINK",
                "COMMENT",
            )
        }
        owner = {
            "id": self.account.user_id,
            "name": f"{behaviour.USER_FIRST_NAME} {behaviour.USER_LAST_NAME}",
            "email": self.account.email,
            "permissions": perms,
        }
        return {
            "id": self.account.mount_id,
            "name": behaviour.PRIMARY_MOUNT_NAME,
            "type": behaviour.PRIMARY_MOUNT_TYPE,
            "origin": behaviour.PRIMARY_MOUNT_ORIGIN,
            "online": True,
            "isPrimary": True,
            "isShared": False,
            "isDir": True,
            "spaceTotal": total,
            "spaceUsed": used_mib,
            "version": 1,
            "owner": owner,
            "users": [],
            "groups": [],
            "permissions": perms,
            "canWrite": True,
            "canUpload": True,
            "overQuota": used_mib >= total,
            "almostOverQuota": used_mib >= total * behaviour.ALMOST_OVER_QUOTA_FRACTION,
        }

    def token(self, req: Request) -> Response:
        user_header = [("X-User-ID", self.account.user_id)]
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
                "id": self.account.user_id,
                "firstName": behaviour.USER_FIRST_NAME,
                "lastName": behaviour.USER_LAST_NAME,
                "email": self.account.email,
                "level": behaviour.USER_LEVEL,
                "hasPassword": True,
            }
        )

    def places(self, req: Request) -> Response:
        return json_response({"places": [self.mount_json()]})

    def mounts(self, req: Request) -> Response:
        return json_response({"mounts": [self.mount_json()]})

    def mount(self, req: Request) -> Response:
        self._mounted(req)
        return json_response(self.mount_json())

    # -- files --------------------------------------------------------------------------------

    def files_info(self, req: Request) -> Response:
        self._mounted(req)
        return json_response(self.store.info(req.path_param()).to_json())

    def files_list(self, req: Request) -> Response:
        self._mounted(req)
        entries = self.store.list(req.path_param())
        return json_response({"files": [e.to_json() for e in entries]})

    def files_tree(self, req: Request) -> Response:
        self._mounted(req)
        return json_response(self.store.tree(req.path_param()))

    def files_folder(self, req: Request) -> Response:
        self._mounted(req)
        parent = req.path_param()
        name = get_str(req.json_body(), "name")
        self.store.mkdir(parent, name)
        return Response(200, body=behaviour.EMPTY_OK_BODY)

    def files_remove(self, req: Request) -> Response:
        self._mounted(req)
        self.store.remove(
            req.path_param(),
            if_size=req.int_param("removeIfSize"),
            if_modified=req.int_param("removeIfModified"),
            if_hash=req.query.get("removeIfHash"),
            if_empty="removeIfEmpty" in req.query,
        )
        return Response(200, body=behaviour.EMPTY_OK_BODY)

    def _destination(self, req: Request, doc: dict[str, Any]) -> str:
        to_mount = doc.get("toMountId")
        if to_mount is None and behaviour.REQUIRE_TO_MOUNT_ID:
            raise bad_request("Missing toMountId")
        if to_mount is not None and not self._mount_ok(get_str(doc, "toMountId")):
            raise not_found("Mount not found")
        return normalize_path(get_str(doc, "toPath"))

    def files_copy(self, req: Request) -> Response:
        self._mounted(req)
        src = req.path_param()
        doc = req.json_body()
        dst = self._destination(req, doc)
        name = self.store.copy(src, dst, modified=get_int(doc, "modified"))
        return json_response({"name": name})

    def files_move(self, req: Request) -> Response:
        self._mounted(req)
        src = req.path_param()
        doc = req.json_body()
        dst = self._destination(req, doc)
        name = self.store.move(
            src,
            dst,
            if_size=get_int(doc, "ifSize"),
            if_modified=get_int(doc, "ifModified"),
            if_hash=get_opt_str(doc, "ifHash"),
        )
        return json_response({"name": name})

    def links(self, req: Request) -> Response:
        self._mounted(req)
        path = normalize_path(get_str(req.json_body(), "path"))
        entry = self.store.info(path)
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
