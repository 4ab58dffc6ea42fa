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
from .api import Account, KoofrApi
from .auth import Authenticator
from .faults import FaultInjector, FaultRule
from .server import EmulatorHTTPServer, ServerContext
from .stats import Counters, LoggedRequest
from .store import Store

STATE_DIR = ".emulator"
FILES_DIR = "files"


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

    ``root/files`` holds the mount's namespace (display names, mtime = Koofr ``modified``),
    ``root/.emulator`` the ids, the MD5 sidecar and upload staging. Usable as a context manager.
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
        self._store: Store | None = None
        self._api: KoofrApi | None = None
        self._ctx: ServerContext | None = None
        self._latency = latency
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        """The namespace (opened lazily, so data can be seeded before ``start()``)."""
        if self._store is None:
            self._store = Store(self.files_dir, self.state_dir, self.space_total_mib)
        return self._store

    @property
    def api(self) -> KoofrApi:
        if self._api is None:
            account = Account(self.user, self.user_id, self.mount_id, self.space_total_mib)
            self._api = KoofrApi(self.store, self.auth, account, lambda: self.url)
        return self._api

    def start(self) -> KoofrEmulator:
        if self._server is not None:
            return self
        admin = AdminApi(self.faults, self._counters, self._health)
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
        if self._store is not None:
            self._store.close()
            self._store = None
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

    @property
    def running(self) -> bool:
        return self._server is not None

    def _health(self) -> dict[str, Any]:
        return {"ok": True, "url": self.url, "mountId": self.mount_id, "user": self.user}

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
