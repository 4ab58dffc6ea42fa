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

import contextlib
import os
import secrets
import shutil
from datetime import UTC, datetime
from typing import IO, Any

from fsspec.callbacks import DEFAULT_CALLBACK, Callback
from fsspec.spec import AbstractFileSystem

from koofrfs.client import ClientConfig, KoofrClient, resolve_endpoint
from koofrfs.errors import KoofrHTTPError, KoofrMountError, KoofrNotADirectory
from koofrfs.files import (
    KoofrReadFile,
    KoofrWriteFile,
    Source,
    bytes_source,
    seekable_source,
)
from koofrfs.namespace import NamespaceOps
from koofrfs.paths import is_within, join, split, strip_protocol, to_koofr

MIB = 2**20


class KoofrFileSystem(NamespaceOps, AbstractFileSystem):
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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not user or not password:
            raise ValueError("Koofr needs a user (e-mail) and an application password")
        self.provider, self.endpoint = resolve_endpoint(provider, endpoint)
        self.user = user
        self.mountid = mountid or None
        self.readahead = int(readahead)
        self._config = ClientConfig(
            endpoint=self.endpoint, user=user, password=password,
            max_connections=int(max_connections), max_concurrency=int(max_concurrency),
            timeout=float(timeout), retries=int(retries), backoff_base=float(backoff_base),
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

    def ls(self, path: str, detail: bool = True, refresh: bool = False,
           **kwargs: Any) -> list[Any]:
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

    # -- reading data -----------------------------------------------------------------------------

    def cat_file(self, path: str, start: int | None = None, end: int | None = None,
                 **kwargs: Any) -> bytes:
        """Bytes ``[start, end)`` of a file in one ranged GET (resumed after a drop)."""
        p = self._strip_protocol(path)
        if (start is not None and start < 0) or (end is not None and end < 0):
            size = self.info(p)["size"]
            start = max(0, size + start) if start is not None and start < 0 else start
            end = max(0, size + end) if end is not None and end < 0 else end
        start = start or 0
        if end is not None and end <= start:
            return b""
        buf = bytearray()
        kp = to_koofr(p)
        self.client.download(self._content("get"), path=kp, params=[("path", kp)],
                             sink=buf.extend, start=start, end=end)
        return bytes(buf)

    def get_file(self, rpath: str, lpath: str, callback: Callback = DEFAULT_CALLBACK,
                 outfile: IO[bytes] | None = None, **kwargs: Any) -> None:
        """Download a file in one streamed GET (resumed after drops); a folder makes a folder."""
        info = self.info(rpath)
        if info["type"] == "directory":
            os.makedirs(lpath, exist_ok=True)
            return
        callback.set_size(info["size"])
        kp = to_koofr(info["name"])

        def sink(chunk: bytes) -> None:
            target.write(chunk)
            callback.relative_update(len(chunk))

        if outfile is not None:
            target = outfile
            self.client.download(self._content("get"), path=kp, params=[("path", kp)], sink=sink)
            return
        try:
            with open(lpath, "wb") as target:
                self.client.download(self._content("get"), path=kp, params=[("path", kp)],
                                     sink=sink)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(lpath)
            raise

    def _open(self, path: str, mode: str = "rb", block_size: int | None = None,
              autocommit: bool = True, cache_options: dict[str, Any] | None = None,
              **kwargs: Any) -> Any:
        p = self._strip_protocol(path)
        if mode == "rb":
            return KoofrReadFile(self, p, block_size or self.readahead,
                                 cache_options=cache_options, size=kwargs.pop("size", None))
        if mode in ("wb", "xb"):
            to_koofr(p)
            if mode == "xb" and self.exists(p):
                raise FileExistsError(f"Koofr file /{p} already exists")
            return KoofrWriteFile(self, p, mode, block_size, autocommit,
                                  modified=kwargs.pop("modified", None),
                                  spool=kwargs.pop("spool", True))
        raise NotImplementedError(f"Koofr files cannot be opened in mode {mode!r} (no append)")

    # -- writing data -----------------------------------------------------------------------------

    def _ensure_dir(self, path: str) -> None:
        if path and path not in self._known_dirs:
            self.makedirs(path, exist_ok=True)

    def _upload(self, path: str, source: Source, modified: int | None,
                ensure_parent: bool = True) -> dict[str, Any]:
        """Upload ``source`` to ``path`` (overwrite, keep ``modified`` ms); return its info.

        One multipart POST streamed with chunked encoding, like rclone. If the parent vanished
        behind our known-folders cache (404), the folders are recreated and the upload sent again.
        """
        p = self._strip_protocol(path)
        kp = to_koofr(p)
        if kp == "/":
            raise IsADirectoryError("cannot upload to the root of a Koofr mount")
        parent, name = split(p)
        if ensure_parent:
            self._ensure_dir(parent)
        params = [("autorename", "false"), ("filename", name), ("info", "true")]
        if modified is not None:
            params.append(("modified", str(int(modified))))
        params += [("overwrite", "true"), ("path", "/" + parent)]
        boundary = secrets.token_hex(30)
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="dummy"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        calls = 0

        def body(_attempt: int) -> Any:
            nonlocal calls
            calls += 1
            yield head
            yield from source(calls)
            yield tail

        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}",
                   "Accept": "application/json"}
        try:
            try:
                response = self.client.request("POST", self._content("put"), path=kp,
                                               params=params, headers=headers, body=body)
            except FileNotFoundError:
                self._forget_dirs(parent)
                self.makedirs(parent, exist_ok=True)
                response = self.client.request("POST", self._content("put"), path=kp,
                                               params=params, headers=headers, body=body)
        finally:
            self.invalidate_cache(p)
        return self._entry(parent, response.json())

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite",
                  modified: int | None = None, **kwargs: Any) -> dict[str, Any]:
        """Store bytes at ``path`` (retryable); ``modified`` is the mtime in ms to keep."""
        if mode == "create" and self.exists(path):
            raise FileExistsError(f"Koofr file /{self._strip_protocol(path)} already exists")
        return self._upload(path, bytes_source(value), modified)

    def put_file(self, lpath: str, rpath: str, callback: Callback = DEFAULT_CALLBACK,
                 mode: str = "overwrite", modified: int | None = None,
                 **kwargs: Any) -> dict[str, Any] | None:
        """Upload a local file streamed from disk, keeping its mtime (ms) unless ``modified``."""
        if os.path.isdir(lpath):
            self.makedirs(rpath, exist_ok=True)
            return None
        if mode == "create" and self.exists(rpath):
            raise FileExistsError(f"Koofr file /{self._strip_protocol(rpath)} already exists")
        with open(lpath, "rb") as f:
            stat = os.fstat(f.fileno())
            callback.set_size(stat.st_size)
            when = stat.st_mtime_ns // 1_000_000 if modified is None else modified
            return self._upload(rpath, seekable_source(f, callback), when)

    def upload_fileobj(self, path: str, fileobj: IO[bytes],
                       modified_ms: int | None = None) -> dict[str, Any]:
        """Upload from a file object: retried by seeking back if it is seekable, else streamed."""
        seekable = False
        with contextlib.suppress(AttributeError, OSError, ValueError):
            seekable = bool(fileobj.seekable()) and fileobj.tell() >= 0
        if seekable:
            return self._upload(path, seekable_source(fileobj), modified_ms)
        with self.open(path, "wb", modified=modified_ms) as out:
            shutil.copyfileobj(fileobj, out, 1 << 20)
        assert out.result is not None
        return out.result
