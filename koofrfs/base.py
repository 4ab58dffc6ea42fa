"""``KoofrBase``: the listing side of koofrfs's filesystem (settings, mounts, paths, cache).

Paths are in fsspec spelling (``"Photos/a.jpg"``, root ``""``; ``"/Photos/a.jpg"`` and
``"koofr://Photos/a.jpg"`` mean the same) and relative to one mount: the primary one, the one
``mountid`` (rclone's option: an id) or ``mount`` (an id or a name) picks, or, with
``mount="*"``, the whole account with one folder per mount (see :mod:`koofrfs.mounts`). Every
path reaches the wire through :meth:`KoofrBase._resolve`, which gives the mount's
:class:`~koofrfs.api.MountApi` and the Koofr path in it.

The instance holds its settings only (the HTTP client is shared per process and made on first
use), so it pickles to other processes cheaply. Listings are cached in fsspec's ``dircache``;
Koofr being case-insensitive, a cached listing only answers "yes": a name missing from it is
still asked of the server.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from fsspec.spec import AbstractFileSystem

from koofrfs.api import MountApi
from koofrfs.client import ClientConfig, KoofrClient, resolve_endpoint
from koofrfs.errors import KoofrHTTPError, KoofrNotADirectory
from koofrfs.listing import mount_entry, to_entry, tree_listings
from koofrfs.mounts import ALL_MOUNTS, Mount, account_folders, describe, find_mount, parse_mounts
from koofrfs.paths import is_within, split, strip_protocol, to_koofr

MIB = 2**20


class KoofrBase(AbstractFileSystem):
    """One Koofr mount, or the whole account, as an fsspec namespace that can be listed:
    settings, the choice of mount, path routing and the listing cache.
    :class:`koofrfs.filesystem.KoofrFileSystem` adds everything that changes files or moves
    their bytes."""

    protocol = "koofr"
    root_marker = ""

    def __init__(
        self,
        user: str,
        password: str,
        endpoint: str = "https://app.koofr.net",
        provider: str | None = None,
        mountid: str | None = None,
        mount: str | None = None,
        setmtime: bool | None = None,
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
        """Settings only; nothing is sent until the first call.

        Args:
            user: Koofr account e-mail.
            password: an *application* password (Koofr refuses the web password over the API).
            endpoint: base URL; forced to Koofr's or Digi Storage's URL for those providers.
            provider: ``"koofr"``, ``"digistorage"`` or ``"other"``; guessed from the endpoint
                like rclone when omitted (so a custom endpoint is never silently replaced).
            mountid: the mount's id, as rclone's ``mountid``; default the primary mount.
            mount: the mount's id or name (any case), or ``"*"`` for every mount as a folder.
            setmtime: ``False`` like rclone's option, for a mount that cannot keep modification
                times; by default koofrfs knows it from the mount (connected Dropbox, Google
                Drive and OneDrive cannot).
            max_connections: HTTP connection pool size.
            max_concurrency: requests in flight at once, per account and process.
            retries: attempts per request in total (1 = no retry).
            backoff_base, backoff_max: exponential backoff with full jitter, seconds.
            timeout: seconds for connect/read/write of each HTTP operation.
            readahead: block size of ranged reads in ``open(path, "rb")``.
            use_tree: let ``walk``/``find``/``du`` fetch a whole subtree with one
                ``files/tree`` call instead of one ``files/list`` per folder. Off by default:
                go-koofrclient has the endpoint but rclone never calls it, so its limits on the
                real service are unknown.
            **kwargs: fsspec options, e.g. ``use_listings_cache``, ``listings_expiry_time``.
        """
        super().__init__(**kwargs)
        if not user or not password:
            raise ValueError("Koofr needs a user (e-mail) and an application password")
        if mountid and mount and mount != mountid:
            raise ValueError("give a Koofr mount by mountid or by mount, not both")
        self.provider, self.endpoint = resolve_endpoint(provider, endpoint)
        self.user = user
        self.wanted_mount = mount or mountid or None
        self.whole_account = self.wanted_mount == ALL_MOUNTS
        self.setmtime = setmtime
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
        self._mounts: list[Mount] | None = None
        self._apis: dict[str, MountApi] = {}
        self._known_dirs: set[str] = set()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(user={self.user!r}, endpoint={self.endpoint!r})"

    # -- mounts and paths -------------------------------------------------------------------------

    @property
    def client(self) -> KoofrClient:
        """The process-wide HTTP client for this account (never pickled, created lazily)."""
        return KoofrClient.shared(self._config)

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        return strip_protocol(os.fspath(path) if hasattr(path, "__fspath__") else path)

    def _where(self) -> str:
        return f"{self.endpoint} for user {self.user}"

    def _account(self) -> list[Mount]:
        if self._mounts is None:
            self._mounts = parse_mounts(self.client.get_json("api/v2/mounts"))
        return self._mounts

    def mount(self, path: str = "") -> Mount:
        """The mount holding ``path``: the one chosen like rclone does, or with ``mount="*"``
        the one whose folder ``path`` is in."""
        if not self.whole_account:
            return find_mount(self._account(), self.wanted_mount, self._where())
        top = self._strip_protocol(path).split("/", 1)[0]
        folders, _ = account_folders(self._account())
        found = folders.get(top) or next(
            (m for name, m in folders.items() if name.casefold() == top.casefold()), None
        )
        if found is None:
            raise FileNotFoundError(f"no Koofr mount named {top!r} at {self._where()}")
        return found

    @property
    def mount_id(self) -> str:
        """Id of the mount in use (not defined for the whole-account view)."""
        return self.mount().id

    def mounts(self) -> list[dict[str, Any]]:
        """Every mount of the account: id, name, type, origin, online, primary, shared,
        writable, keeps_mtime, space, and ``inside`` (``"Koofr:/Pictures"``) for a mount whose
        files are already part of another one (``mount="*"`` shows those only there)."""
        mounts = parse_mounts(self.client.get_json("api/v2/mounts"))
        self._mounts = mounts
        folders, covered = account_folders(mounts)
        names = {m.id: name for name, m in folders.items()}
        return [{**describe(m, covered), "folder": names.get(m.id)} for m in mounts]

    def _resolve(self, path: str) -> tuple[MountApi, str]:
        """(API of the mount holding ``path``, Koofr path in it) for an fsspec path."""
        p = self._strip_protocol(path)
        rest = p
        if self.whole_account:
            if not p:
                raise PermissionError("the whole-account view has no files of its own at its root")
            rest = p.split("/", 1)[1] if "/" in p else ""
        kp = to_koofr(rest)  # names are checked before anything reaches the wire
        mount = self.mount(p)
        api = self._apis.get(mount.id)
        if api is None:
            api = self._apis[mount.id] = MountApi(self.client, mount)
        return api, kp

    def _is_mount_root(self, p: str) -> bool:
        return not p or (self.whole_account and "/" not in p)

    @property
    def keeps_mtime(self) -> bool:
        """Whether uploads keep the modification time given (rclone's ``setmtime``); in the
        whole-account view, per mount (uploads to those that cannot send none)."""
        if self.setmtime is not None:
            return self.setmtime
        return self.whole_account or self.mount().keeps_mtime

    def read_only(self, path: str = "") -> str | None:
        """Why nothing can be written at ``path`` (a mount shared read-only, an offline one),
        or None. For the account root, the first mount below it that refuses."""
        p = self._strip_protocol(path)
        if self.whole_account and not p:
            mounts = account_folders(self._account())[0].values()
        else:
            mounts = [self.mount(p)]
        for m in mounts:
            if not m.online:
                return f"Koofr mount {m.label()} is offline"
            if not m.writable:
                return f"Koofr mount {m.label()} is shared with you read-only"
        return None

    def quota(self, path: str = "") -> dict[str, int]:
        """Space of the mount holding ``path`` in bytes: ``total``, ``used``, ``free`` (Koofr
        reports MiB, so these are multiples of 1 MiB)."""
        if self.whole_account and not self._strip_protocol(path):
            raise ValueError("the whole-account view spans several mounts: give a path in one")
        mount = self._resolve(path)[0].details()
        return {"total": mount.space_total, "used": mount.space_used, "free": mount.space_free}

    def trash(self, path: str = "") -> dict[str, int]:
        """What Koofr keeps of deleted files of the mount holding ``path``: ``files``,
        ``bytes`` and ``retention_days`` (``GET /api/v2/trash``). Deleted files wait there
        before they are gone for good, and may still count against the quota."""
        mount_id = self._resolve(path)[0].mount.id
        doc = self.client.get_json("api/v2/trash")
        mine = [f for f in doc.get("files") or [] if f.get("mountId") == mount_id]
        return {
            "files": len(mine),
            "bytes": sum(int(f.get("size") or 0) for f in mine),
            "retention_days": int(doc.get("retentionDays") or 0),
        }

    # -- listings ---------------------------------------------------------------------------------

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

    def ls(self, path: str, detail: bool = True, refresh: bool = False, **kwargs: Any) -> list[Any]:
        """List a folder (or return ``[info]`` for a file), from the cache unless ``refresh``."""
        p = self._strip_protocol(path)
        entries = None if refresh else self.dircache.get(p)
        if entries is None:
            if self.whole_account and not p:
                folders = account_folders(self._account())[0]
                entries = [mount_entry(name, m) for name, m in folders.items()]
            else:
                api, kp = self._resolve(p)
                try:
                    entries = [to_entry(p, item) for item in api.list(kp)]
                except (KoofrNotADirectory, KoofrHTTPError) as exc:
                    if getattr(exc, "status", None) != 400:
                        raise
                    info = self.info(p, refresh=True)
                    if info["type"] == "directory":
                        raise
                    return [info] if detail else [info["name"]]
            self.dircache[p] = entries
        entries = [dict(e) for e in entries]
        return entries if detail else [e["name"] for e in entries]

    def info(self, path: str, refresh: bool = False, **kwargs: Any) -> dict[str, Any]:
        """Metadata of a file or folder; raises ``FileNotFoundError`` if missing."""
        p = self._strip_protocol(path)
        if p and not refresh:
            for entry in self.dircache.get(split(p)[0]) or ():
                if entry["name"] == p:
                    return dict(entry)
        if self.whole_account and not p:
            return to_entry("", {"type": "dir"}, name="")
        if self.whole_account and "/" not in p:
            return mount_entry(p, self.mount(p))
        api, kp = self._resolve(p)
        entry = to_entry(split(p)[0], api.info(kp), name=p)
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
        if self._is_mount_root(p) and self.whole_account:
            return
        try:
            api, kp = self._resolve(p)
            doc = api.tree(kp)
        except FileNotFoundError:
            return  # walk itself reports the missing path as it would without the tree
        except KoofrHTTPError:
            self.use_tree = False  # not offered by this server: plain listings from now on
            return
        for folder, entries in tree_listings(p, doc):
            self.dircache[folder] = entries
            self._known_dirs.add(folder)

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
