"""``KoofrFileSystem``: fsspec over Koofr's REST API (``/api/v2`` + ``/content/api/v2``).

Paths are relative to the root of one mount (the primary mount unless ``mountid`` is given), in
fsspec spelling (``"Photos/a.jpg"``, root ``""``); ``"/Photos/a.jpg"`` and
``"koofr://Photos/a.jpg"`` mean the same. The instance holds only its settings: the HTTP client is
shared per process and created on first use, so instances pickle to other processes cheaply.

Listings are cached in fsspec's ``dircache`` (pass ``use_listings_cache=False`` or
``listings_expiry_time=`` to tune); every write invalidates the affected folders. Because Koofr is
case-insensitive, a cached listing is only trusted for positive answers: a name missing from it
is still asked of the server.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from fsspec.spec import AbstractFileSystem

from koofrfs.client import ClientConfig, KoofrClient, resolve_endpoint
from koofrfs.errors import KoofrHTTPError, KoofrMountError, KoofrNotADirectory
from koofrfs.namespace import NamespaceOps
from koofrfs.paths import is_within, join, split, strip_protocol, to_koofr
from koofrfs.transfers import TransferOps

MIB = 2**20


class KoofrFileSystem(TransferOps, NamespaceOps, AbstractFileSystem):
    """An fsspec filesystem over one Koofr mount.

    Args:
        user: Koofr account e-mail.
        password: an *application* password (Koofr refuses the web password over the API).
        endpoint: base URL; forced to Koofr's or Digi Storage's URL for those providers.
        provider: ``"koofr"``, ``"digistorage"`` or ``"other"``; guessed from the endpoint like
            rclone when omitted (so a custom endpoint is never silently replaced).
        mountid: the mount to use; default the account's primary mount.
        max_connections: HTTP connection pool size.
        max_concurrency: requests in flight at once, per account and process.
        retries: attempts per request in total (1 = no retry).
        backoff_base, backoff_max: exponential backoff with full jitter, seconds.
        timeout: seconds for connect/read/write of each HTTP operation.
        readahead: block size of ranged reads in ``open(path, "rb")``.
        use_tree: let ``walk``/``find``/``du`` fetch a whole subtree with one ``files/tree``
            call instead of one ``files/list`` per folder. Off by default: go-koofrclient has
            the endpoint but rclone never calls it, so its limits on the real service are unknown.
        **kwargs: fsspec options, e.g. ``use_listings_cache``, ``listings_expiry_time``.

    Example:
        >>> fs = fsspec.filesystem("koofr", user="me@example.com", password="app-password")
        >>> fs.pipe_file("Backups/hello.txt", b"hi", modified=1614834367123)
    """

    protocol = "koofr"
    root_marker = ""

    def __init__(
        self,
        user: str,
        password: str,
        endpoint: str = "https://app.koofr.net",
        provider: str | None = None,
        mountid: str | None = None,
        max_connections: int = 8,
        max_concurrency: int = 8,
        retries: int = 8,
        backoff_base: float = 0.25,
        backoff_max: float = 30.0,
        timeout: float = 60.0,
        readahead: int = 4 * MIB,
        use_tree: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not user or not password:
            raise ValueError("Koofr needs a user (e-mail) and an application password")
        self.provider, self.endpoint = resolve_endpoint(provider, endpoint)
        self.user = user
        self.mountid = mountid or None
        self.readahead = int(readahead)
        self.use_tree = bool(use_tree)
        self._config = ClientConfig(
            endpoint=self.endpoint,
            user=user,
            password=password,
            max_connections=int(max_connections),
            max_concurrency=int(max_concurrency),
            timeout=float(timeout),
            retries=int(retries),
            backoff_base=float(backoff_base),
            backoff_max=float(backoff_max),
        )
        self._mount: dict[str, Any] | None = None
        self._known_dirs: set[str] = set()

    def __repr__(self) -> str:
        return f"KoofrFileSystem(user={self.user!r}, endpoint={self.endpoint!r})"

    # -- plumbing ---------------------------------------------------------------------------------

    @property
    def client(self) -> KoofrClient:
        """The process-wide HTTP client for this account (never pickled, created lazily)."""
        return KoofrClient.shared(self._config)

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        return strip_protocol(os.fspath(path) if hasattr(path, "__fspath__") else path)

    def mount(self) -> dict[str, Any]:
        """The mount in use (Koofr ``Mount`` JSON), chosen like rclone does, fetched once."""
        if self._mount is None:
            mounts = self.client.get_json("api/v2/mounts").get("mounts", [])
            if self.mountid:
                found = [m for m in mounts if m.get("id") == self.mountid]
                missing = f"Koofr mount {self.mountid!r} not found"
            else:
                found = [m for m in mounts if m.get("isPrimary")]
                missing = "Koofr account has no primary mount: pass mountid"
            if not found:
                known = ", ".join(f"{m.get('id')} ({m.get('name')})" for m in mounts) or "none"
                raise KoofrMountError(
                    f"{missing} for user {self.user} at {self.endpoint}; mounts: {known}"
                )
            self._mount = found[0]
        return self._mount

    @property
    def mount_id(self) -> str:
        """Id of the mount in use."""
        return str(self.mount()["id"])

    def _api(self, op: str) -> str:
        return f"api/v2/mounts/{self.mount_id}/files/{op}"

    def _content(self, op: str) -> str:
        return f"content/api/v2/mounts/{self.mount_id}/files/{op}"

    def _entry(self, parent: str, item: dict[str, Any]) -> dict[str, Any]:
        is_dir = item.get("type") == "dir"
        modified = int(item.get("modified") or 0)
        name = join(parent, item.get("name", "")) if item.get("name") else parent
        entry: dict[str, Any] = {
            "name": name,
            "size": 0 if is_dir else int(item.get("size") or 0),
            "type": "directory" if is_dir else "file",
            "mtime": modified / 1000.0,
            "modified": modified,
            "content_type": item.get("contentType") or "",
        }
        if not is_dir:
            entry["md5"] = item.get("hash") or None
        if item.get("tags"):
            entry["tags"] = item["tags"]
        return entry

    def invalidate_cache(self, path: str | None = None) -> None:
        """Forget cached listings of ``path``, everything below it and all its ancestors."""
        if path is None:
            self.dircache.clear()
        else:
            p = self._strip_protocol(path)
            for key in list(self.dircache):
                if is_within(key, p) or is_within(p, key):
                    self.dircache.pop(key, None)
        super().invalidate_cache(path)

    def _forget_dirs(self, path: str) -> None:
        self._known_dirs = {d for d in self._known_dirs if not is_within(d, path)}

    # -- reading metadata -------------------------------------------------------------------------

    def ls(self, path: str, detail: bool = True, refresh: bool = False, **kwargs: Any) -> list[Any]:
        """List a folder (or return ``[info]`` for a file), from the cache unless ``refresh``."""
        p = self._strip_protocol(path)
        entries = None if refresh else self.dircache.get(p)
        if entries is None:
            kp = to_koofr(p)
            try:
                data = self.client.get_json(self._api("list"), path=kp, params=[("path", kp)])
            except (KoofrNotADirectory, KoofrHTTPError) as exc:
                if getattr(exc, "status", None) != 400:
                    raise
                info = self.info(p, refresh=True)
                if info["type"] == "directory":
                    raise
                return [info] if detail else [info["name"]]
            entries = [self._entry(p, item) for item in data.get("files", [])]
            self.dircache[p] = entries
        entries = [dict(e) for e in entries]
        return entries if detail else [e["name"] for e in entries]

    def info(self, path: str, refresh: bool = False, **kwargs: Any) -> dict[str, Any]:
        """Metadata of a file or folder; raises ``FileNotFoundError`` if missing."""
        p = self._strip_protocol(path)
        if p and not refresh:
            parent, _ = split(p)
            for entry in self.dircache.get(parent) or ():
                if entry["name"] == p:
                    return dict(entry)
        kp = to_koofr(p)
        item = self.client.get_json(self._api("info"), path=kp, params=[("path", kp)])
        entry = self._entry(split(p)[0], item) if p else self._entry("", {**item, "name": ""})
        entry["name"] = p
        if entry["type"] == "directory":
            self._known_dirs.add(p)
        return entry

    def walk(
        self,
        path: str,
        maxdepth: int | None = None,
        topdown: bool = True,
        on_error: Any = "omit",
        **kwargs: Any,
    ) -> Any:
        """fsspec ``walk``; with ``use_tree`` the subtree is fetched once, up front."""
        if (
            self.use_tree
            and maxdepth is None
            and not kwargs.get("_tree_done")
            and self.dircache.use_listings_cache
        ):
            kwargs.pop("refresh", None)  # the tree we are about to fetch is fresh
            self._prefetch_tree(path)
            kwargs["_tree_done"] = True  # passed down fsspec's recursion (and ignored by ls)
        yield from super().walk(
            path, maxdepth=maxdepth, topdown=topdown, on_error=on_error, **kwargs
        )

    def _prefetch_tree(self, path: str) -> None:
        """Fill the listing cache for a whole subtree with one ``files/tree`` call."""
        p = self._strip_protocol(path)
        kp = to_koofr(p)
        try:
            doc = self.client.get_json(self._api("tree"), path=kp, params=[("path", kp)])
        except FileNotFoundError:
            return  # walk itself reports the missing path as it would without the tree
        except KoofrHTTPError:
            self.use_tree = False  # not offered by this server: plain listings from now on
            return
        stack = [(p, doc)]
        while stack:
            base, node = stack.pop()
            if node.get("type") != "dir":
                continue
            children = node.get("children") or []
            self.dircache[base] = [self._entry(base, child) for child in children]
            self._known_dirs.add(base)
            stack.extend((join(base, c["name"]), c) for c in children if c.get("type") == "dir")

    def exists(self, path: str, **kwargs: Any) -> bool:
        """Whether the path exists; unlike fsspec's default, auth and network errors propagate."""
        try:
            self.info(path, **kwargs)
        except FileNotFoundError:
            return False
        return True

    def modified(self, path: str) -> datetime:
        """Last modification time as an aware UTC datetime (millisecond precision)."""
        return datetime.fromtimestamp(self.info(path)["modified"] / 1000.0, tz=UTC)

    def quota(self) -> dict[str, int]:
        """Space of the mount in bytes: ``total``, ``used``, ``free`` (Koofr reports MiB)."""
        mount = self.client.get_json(f"api/v2/mounts/{self.mount_id}")
        total = int(mount.get("spaceTotal") or 0) * MIB
        used = int(mount.get("spaceUsed") or 0) * MIB
        return {"total": total, "used": used, "free": max(0, total - used)}
