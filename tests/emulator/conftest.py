"""Helpers for the emulator tests. The ``koofr_emulator``/``koofr_emulator_session`` fixtures
come from ``koofr_emulator.pytest_plugin``, registered by ``tests/conftest.py``."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from koofr_emulator import KoofrEmulator


def multipart_chunks(
    data: bytes, filename: str = "dummy", piece: int = 32 * 1024, boundary: str | None = None
) -> tuple[str, Iterator[bytes]]:
    """An rclone-style upload body: one ``file`` part, streamed (so httpx sends it chunked)."""
    boundary = boundary or secrets.token_hex(30)
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def gen() -> Iterator[bytes]:
        yield head
        for i in range(0, len(data), piece):
            yield data[i : i + piece]
        yield tail

    return f"multipart/form-data; boundary={boundary}", gen()


class KoofrApiClient:
    """Thin httpx wrapper speaking the wire protocol the way rclone does."""

    def __init__(self, emu: KoofrEmulator) -> None:
        self.emu = emu
        self.mount = emu.mount_id
        self.http = httpx.Client(base_url=emu.url, auth=(emu.user, emu.password), timeout=30)

    def _files(self, op: str) -> str:
        return f"/api/v2/mounts/{self.mount}/files/{op}"

    def info(self, path: str) -> httpx.Response:
        return self.http.get(self._files("info"), params={"path": path})

    def list(self, path: str) -> httpx.Response:
        return self.http.get(self._files("list"), params={"path": path})

    def names(self, path: str) -> list[str]:
        resp = self.list(path)
        assert resp.status_code == 200, resp.text
        return [f["name"] for f in resp.json()["files"]]

    def mkdir(self, parent: str, name: str) -> httpx.Response:
        return self.http.post(self._files("folder"), params={"path": parent}, json={"name": name})

    def remove(self, path: str, **extra: str) -> httpx.Response:
        return self.http.delete(self._files("remove"), params={"path": path, **extra})

    def copy(self, src: str, dst: str, **body: Any) -> httpx.Response:
        doc = {"toMountId": self.mount, "toPath": dst, **body}
        return self.http.put(self._files("copy"), params={"path": src}, json=doc)

    def move(self, src: str, dst: str, **body: Any) -> httpx.Response:
        doc = {"toMountId": self.mount, "toPath": dst, **body}
        return self.http.put(self._files("move"), params={"path": src}, json=doc)

    def get(self, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        url = f"/content/api/v2/mounts/{self.mount}/files/get"
        return self.http.get(url, params={"path": path}, headers=headers)

    def put(
        self, parent: str, name: str | None, data: bytes, *, rclone: bool = True, **params: str
    ) -> httpx.Response:
        """Upload; with ``rclone=True`` the query is exactly rclone's (overwrite, no
        autorename, info, modified) unless ``params`` override it."""
        query: dict[str, str] = {"path": parent}
        if name is not None:
            query["filename"] = name
        if rclone:
            query.update(
                {
                    "autorename": "false",
                    "info": "true",
                    "overwrite": "true",
                    "overwriteIgnoreNonexisting": "",
                    "modified": "1614834367123",
                }
            )
        query.update(params)
        ctype, body = multipart_chunks(data)
        return self.http.post(
            f"/content/api/v2/mounts/{self.mount}/files/put",
            params=query,
            content=body,
            headers={"Content-Type": ctype},
        )

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def api(koofr_emulator: KoofrEmulator) -> Iterator[KoofrApiClient]:
    client = KoofrApiClient(koofr_emulator)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def multipart() -> Any:
    """The ``multipart_chunks`` helper, for tests that build upload bodies themselves."""
    return multipart_chunks
