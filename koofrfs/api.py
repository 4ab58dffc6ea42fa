"""The files API of one Koofr mount: every call koofrfs makes, with Koofr's paths and quirks.

Paths here are Koofr's (absolute, ``"/"`` for the root). Koofr specifics handled here:
``files/folder`` answers 400 (not 409) when the folder exists, which rclone relies on; a retried
copy, move or delete may meet its own earlier success (404/409); writes to a mount shared
read-only and any call to an offline mount fail before the request is sent, with a line that
names the mount.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import IO, Any

from fsspec.callbacks import Callback

from koofrfs import transfer
from koofrfs.client import KoofrClient
from koofrfs.errors import (
    KoofrChangedError,
    KoofrExists,
    KoofrHTTPError,
    KoofrMountOffline,
    KoofrPermissionError,
)
from koofrfs.mounts import Mount


class MountApi:
    """Koofr's ``/api/v2/mounts/{id}/files/*`` for one mount."""

    def __init__(self, client: KoofrClient, mount: Mount) -> None:
        self.client = client
        self.mount = mount

    def _url(self, op: str, content: bool = False) -> str:
        prefix = "content/" if content else ""
        return f"{prefix}api/v2/mounts/{self.mount.id}/files/{op}"

    def _usable(self, write: bool, path: str) -> None:
        if not self.mount.online:
            raise KoofrMountOffline(
                f"Koofr mount {self.mount.label()} is offline (a computer that is not "
                "connected, or a connected cloud whose link to Koofr is broken)",
                path=path,
            )
        if write and not self.mount.writable:
            raise KoofrPermissionError(
                f"Koofr mount {self.mount.label()} is read-only (shared without write "
                f"permission): cannot change {path}",
                path=path,
            )

    def _get(self, op: str, kp: str) -> Any:
        self._usable(False, kp)
        return self.client.get_json(self._url(op), path=kp, params=[("path", kp)])

    # -- metadata -------------------------------------------------------------------------------

    def info(self, kp: str) -> dict[str, Any]:
        """FileInfo of a file or folder (404 -> ``FileNotFoundError``)."""
        return self._get("info", kp)  # type: ignore[no-any-return]

    def list(self, kp: str) -> list[dict[str, Any]]:
        """FileInfo of a folder's children."""
        return list(self._get("list", kp).get("files", []))

    def tree(self, kp: str) -> dict[str, Any]:
        """A whole subtree in one answer (FileInfo with ``children``)."""
        return self._get("tree", kp)  # type: ignore[no-any-return]

    def details(self) -> Mount:
        """The mount as the server describes it now (space used changes as files arrive)."""
        return Mount.from_json(self.client.get_json(f"api/v2/mounts/{self.mount.id}"))

    # -- namespace ------------------------------------------------------------------------------

    def create_folder(self, parent: str, name: str) -> bool:
        """One ``files/folder``; False if the name was taken (Koofr answers 400, or 409)."""
        where = parent.rstrip("/") + "/" + name
        self._usable(True, where)
        try:
            self.client.request(
                "POST",
                self._url("folder"),
                path=where,
                params=[("path", parent)],
                json_body={"name": name},
                expected=(200, 201),
            )
        except KoofrExists:
            return False
        except KoofrHTTPError as exc:
            if exc.status != 400:
                raise
            return False
        return True

    def remove(self, kp: str) -> None:
        """Delete a file or a whole folder (Koofr deletes folders recursively)."""
        self._usable(True, kp)
        self.client.request(
            "DELETE", self._url("remove"), path=kp, params=[("path", kp)], ok_on_retry=(404,)
        )

    def transfer(
        self, op: str, kp: str, to: MountApi, to_kp: str, modified: int | None = None
    ) -> bool:
        """Server-side ``copy`` or ``move`` to ``to_kp`` in mount ``to`` (this one or another);
        ``modified`` (copy only) is the mtime to keep. False if the answer was a retry meeting
        its own earlier success (404/409), which the caller should confirm."""
        self._usable(op == "move", kp)
        to._usable(True, to_kp)
        body: dict[str, Any] = {"toMountId": to.mount.id, "toPath": to_kp}
        if modified is not None:
            body["modified"] = modified
        response = self.client.request(
            "PUT",
            self._url(op),
            path=kp,
            params=[("path", kp)],
            json_body=body,
            ok_on_retry=(404, 409),
        )
        return response.status_code == 200

    # -- content --------------------------------------------------------------------------------

    def download(
        self, kp: str, sink: Callable[[bytes], object], start: int = 0, end: int | None = None
    ) -> int:
        """Bytes ``[start, end)`` of a file into ``sink`` (see :func:`transfer.download`)."""
        self._usable(False, kp)
        return transfer.download(
            self.client,
            self._url("get", content=True),
            path=kp,
            params=[("path", kp)],
            sink=sink,
            start=start,
            end=end,
        )

    def read_range(self, kp: str, start: int, end: int | None) -> bytearray:
        """Bytes ``[start, end)`` into a buffer preallocated when the length is known (fewer
        past the end of the file)."""
        if end is None:
            grown = bytearray()
            self.download(kp, grown.extend, start)
            return grown
        buf = bytearray(end - start)
        view = memoryview(buf)
        filled = 0

        def sink(chunk: bytes) -> None:
            nonlocal filled
            view[filled : filled + len(chunk)] = chunk
            filled += len(chunk)

        try:
            self.download(kp, sink, start, end)
        finally:
            view.release()
        del buf[filled:]
        return buf

    def download_checked(
        self, kp: str, size: int, md5: str | None, target: IO[bytes], callback: Callback
    ) -> None:
        """A whole file into ``target``, checked against the size and MD5 Koofr listed: a torn
        download (changed while read, or cut by a proxy) is fetched once more if ``target``
        can be rewound, then refused with :class:`KoofrChangedError`, like rclone's "corrupted
        on transfer"."""
        origin = target.tell() if target.seekable() else None
        for attempt in (1, 2):
            digest = hashlib.md5(usedforsecurity=False)

            def sink(chunk: bytes, digest: Any = digest) -> None:
                target.write(chunk)
                digest.update(chunk)
                callback.relative_update(len(chunk))

            got = self.download(kp, sink)
            if got == size and (not md5 or digest.hexdigest() == md5.lower()):
                return
            if attempt == 2 or origin is None:
                raise KoofrChangedError(
                    f"Koofr file {kp}: downloaded {got} bytes with MD5 {digest.hexdigest()}, "
                    f"but Koofr lists {size} bytes with MD5 {md5} (changed while read, or the "
                    "download was torn)",
                    path=kp,
                )
            target.seek(origin)
            target.truncate()
            callback.absolute_update(0)

    def upload(
        self, parent: str, name: str, source: transfer.Source, modified: int | None
    ) -> dict[str, Any]:
        """Store ``source`` as ``parent/name``; the stored file's FileInfo."""
        where = parent.rstrip("/") + "/" + name
        self._usable(True, where)
        return transfer.upload(
            self.client,
            self._url("put", content=True),
            path=where,
            parent=parent,
            name=name,
            source=source,
            modified=modified,
        )
