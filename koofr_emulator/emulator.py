"""``KoofrEmulator``: the public object tying store, API, faults and the HTTP server together."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

from . import behaviour
from .admin import AdminApi
from .api import KoofrApi
from .auth import Authenticator
from .faults import FaultInjector, FaultRule
from .mounts import PRESETS, DeviceSpec, MountSpec, MountView, mount_id
from .server import EmulatorHTTPServer, ServerContext
from .stats import Counters, LoggedRequest
from .store import Store

STATE_DIR = ".emulator"
FILES_DIR = "files"
DEVICES_DIR = "devices"
Layout = tuple[tuple[DeviceSpec, ...], tuple[MountSpec, ...]]


def _identity(state_dir: Path) -> dict[str, str]:
    """Mount and user ids, stable per root (``root/.emulator/mount.json``)."""
    path = state_dir / "mount.json"
    if path.exists():
        doc = json.loads(path.read_text("utf-8"))
        if isinstance(doc, dict) and "mountId" in doc and "userId" in doc:
            return {"mountId": str(doc["mountId"]), "userId": str(doc["userId"])}
    doc = {"mountId": str(uuid.uuid4()), "userId": str(uuid.uuid4())}
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2), "utf-8")
    tmp.replace(path)
    return doc


class KoofrEmulator:
    """A local Koofr REST server over a directory.

    ``root/files`` holds the primary mount's namespace (display names, mtime = Koofr
    ``modified``), ``root/devices/<slug>/files`` those of the account's other devices, and
    ``root/.emulator`` the ids, MD5 sidecars, trash and upload staging. ``mounts`` is
    ``"personal"`` (one primary mount, the default), ``"business"`` (several mounts of every
    kind: see :data:`koofr_emulator.mounts.BUSINESS`) or your own ``(devices, mounts)``.
    Usable as a context manager.
    """

    def __init__(
        self,
        root: str | Path,
        user: str = "test@example.com",
        password: str = "test-password",
        host: str = "127.0.0.1",
        port: int = 0,
        space_total_mib: int = behaviour.DEFAULT_SPACE_TOTAL_MIB,
        latency: float = 0.0,
        seed: int | None = None,
        mounts: str | Layout = "personal",
    ) -> None:
        self.root = Path(root)
        self.user = user
        self.password = password
        self.host = host
        self._requested_port = port
        self.space_total_mib = space_total_mib
        self.state_dir = self.root / STATE_DIR
        self.files_dir = self.root / FILES_DIR
        ids = _identity(self.state_dir)
        self.mount_id = ids["mountId"]
        self.user_id = ids["userId"]
        self.auth = Authenticator(user, password)
        self.faults = FaultInjector(seed)
        self._counters = Counters()
        if isinstance(mounts, str):
            if mounts not in PRESETS:
                raise ValueError(f"unknown mounts preset {mounts!r}: use {', '.join(PRESETS)}")
            mounts = PRESETS[mounts]
        self.devices, self.mount_specs = mounts
        self._stores: dict[str, Store] = {}
        self._views: list[MountView] | None = None
        self._api: KoofrApi | None = None
        self._ctx: ServerContext | None = None
        self._latency = latency
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        """The primary device's namespace (opened lazily, so data can be seeded first)."""
        return self.device_store(next(m.device for m in self.mount_specs if m.primary))

    def device_store(self, slug: str) -> Store:
        """The namespace of device ``slug`` (the primary device keeps ``root/files``)."""
        store = self._stores.get(slug)
        if store is None:
            device = next(d for d in self.devices if d.slug == slug)
            primary = any(m.primary and m.device == slug for m in self.mount_specs)
            files = self.files_dir if primary else self.root / DEVICES_DIR / slug / FILES_DIR
            state = self.state_dir if primary else self.state_dir / DEVICES_DIR / slug
            store = self._stores[slug] = Store(files, state, self._space_total(device))
        return store

    def _space_total(self, device: DeviceSpec) -> int:
        primary = any(m.primary and m.device == device.slug for m in self.mount_specs)
        return self.space_total_mib if primary else device.space_total_mib

    @property
    def views(self) -> list[MountView]:
        """The account's mounts, as ``GET /api/v2/mounts`` lists them."""
        if self._views is None:
            ids = {m.slug: self._mount_id(m) for m in self.mount_specs}
            devices = {d.slug: d for d in self.devices}
            own = {m.device: ids[m.slug] for m in self.mount_specs if m.type == "device"}
            self._views = [
                MountView(
                    spec=m,
                    id=ids[m.slug],
                    device=devices[m.device],
                    store=self.device_store(m.device),
                    root_id=None
                    if m.type == "device"
                    else own.get(m.device, mount_id(self.user_id, f"device:{m.device}")),
                    online=m.online,
                )
                for m in self.mount_specs
            ]
            for view in self._views:  # a shared folder exists, or there would be no share
                view.store.makedirs(view.spec.folder)
        return self._views

    def _mount_id(self, spec: MountSpec) -> str:
        return self.mount_id if spec.primary else mount_id(self.user_id, spec.slug)

    def mount(self, slug_or_name: str) -> MountView:
        """A mount by its slug (``"dropbox"``) or name (``"Dropbox"``)."""
        for view in self.views:
            if slug_or_name in (view.spec.slug, view.spec.name, view.id):
                return view
        raise KeyError(slug_or_name)

    def set_online(self, slug_or_name: str, online: bool) -> None:
        """Take a mount offline (or bring it back): its file calls answer ``DeviceOffline``."""
        self.mount(slug_or_name).online = online

    def empty_trash(self) -> int:
        """Empty every device's trash, as the Koofr web app does; the bytes freed."""
        return sum(self.device_store(d.slug).empty_trash() for d in self.devices)

    @property
    def api(self) -> KoofrApi:
        if self._api is None:
            account = {"email": self.user, "userId": self.user_id}
            self._api = KoofrApi(self.views, self.auth, account, lambda: self.url)
        return self._api

    def start(self) -> KoofrEmulator:
        if self._server is not None:
            return self
        admin = AdminApi(
            self.faults, self._counters, self._health, self.empty_trash, self.set_online
        )
        self._ctx = ServerContext(
            self.api, self.auth, self.faults, self._counters, self._latency, admin
        )
        server_cls = EmulatorHTTPServer
        if ":" in self.host:
            server_cls = type(
                "EmulatorHTTPServer6", (EmulatorHTTPServer,), {"address_family": socket.AF_INET6}
            )
        self._server = server_cls((self.host, self._requested_port), self._ctx)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"koofr-emulator:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            server.close_connections()
            deadline = time.monotonic() + 2.0
            while server.open_connections() and time.monotonic() < deadline:
                time.sleep(0.01)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.auth.revoke_all()
        for store in self._stores.values():
            store.close()
        self._stores.clear()
        self._views = None
        self._api = None

    def __enter__(self) -> KoofrEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is not None:
            return int(self._server.server_address[1])
        return self._requested_port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def storage_options(self) -> dict[str, str]:
        """What ``fsspec.filesystem("koofr", **options)`` needs to reach this emulator."""
        return {
            "user": self.user,
            "password": self.password,
            "endpoint": self.url,
            "provider": "other",
        }

    @property
    def running(self) -> bool:
        return self._server is not None

    def _health(self) -> dict[str, Any]:
        mounts = {v.spec.name: v.id for v in self.views}
        return {
            "ok": True,
            "url": self.url,
            "mountId": self.mount_id,
            "mounts": mounts,
            "user": self.user,
        }

    # -- knobs --------------------------------------------------------------------------------

    @property
    def latency(self) -> float:
        return self._latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self._latency = seconds
        if self._ctx is not None:
            self._ctx.latency = seconds

    def add_fault(self, rule: FaultRule) -> int:
        return self.faults.add(rule)

    def remove_fault(self, rule_id: int) -> bool:
        return self.faults.remove(rule_id)

    def clear_faults(self) -> None:
        self.faults.clear()

    @property
    def fault_rules(self) -> list[dict[str, Any]]:
        return self.faults.describe()

    @property
    def counters(self) -> dict[str, int]:
        return self._counters.snapshot()

    def reset_counters(self) -> None:
        self._counters.reset()

    @property
    def requests(self) -> list[LoggedRequest]:
        """Recent API requests (method, route, path, status, fault), oldest first."""
        return self._counters.requests()

    def __repr__(self) -> str:
        return f"KoofrEmulator(url={self.url!r}, root={str(self.root)!r}, running={self.running})"
