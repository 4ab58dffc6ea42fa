"""Koofr mounts: what an account can reach, which one a user means, and how they overlap.

A Koofr account sees several *mounts* (``GET /api/v2/mounts``), each a filesystem root: the
primary "Koofr" storage, connected Dropbox / Google Drive / OneDrive accounts and computers
(``type`` "device"), folders the user shared out ("export") and folders others shared with the
user ("import"), Business team storage. A mount may lie inside another one: sharing
``Koofr:/Pictures`` creates a mount "Pictures" whose files are also ``Koofr:/Pictures/...``
(Koofr's Node SDK README); the Mount JSON says so in ``root`` (``{id, name, path}``, Koofr's
Java SDK). Field values come from Koofr's own clients (see ``../shared/koofr-api.md``): ``type``
and ``origin`` from koofr/vault's ``remote_files/state.rs``, ``permissions`` keys from
go-koofrclient and java-koofr.

A mount is named the way rclone does (``mountid``, the id) or by its name, case-insensitively;
:func:`account_folders` lays every mount out as one folder per mount, which is how
``KoofrFileSystem(mount="*")`` shows a whole account.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from koofrfs.errors import KoofrMountError

MIB = 2**20
ALL_MOUNTS = "*"
#: ``origin`` of mounts backed by another cloud, which keep no modification time of their own
#: (rclone's ``setmtime = false``, "for a mount ID that points to a Dropbox or Amazon Drive
#: backend") and may list no MD5 (Dropbox and OneDrive hash files their own way).
CONNECTED_ORIGINS = frozenset({"dropbox", "googledrive", "onedrive", "amazon"})


@dataclass(frozen=True)
class Mount:
    """One Koofr mount, as far as a client needs to know it."""

    id: str
    name: str
    type: str = "device"
    origin: str = "hosted"
    online: bool = True
    is_primary: bool = False
    is_shared: bool = False
    permissions: frozenset[str] = frozenset({"READ", "WRITE"})
    space_total: int = 0
    space_used: int = 0
    inside: tuple[str, str] | None = None  # (id of the enclosing mount, path in it)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Mount:
        perms = doc.get("permissions") or {}
        granted = frozenset(str(k).upper() for k, v in perms.items() if v)
        if doc.get("canWrite") is False:
            granted -= {"WRITE"}
        root = doc.get("root") or {}
        inside = None
        if root.get("id") and root.get("id") != doc.get("id"):
            inside = (str(root["id"]), str(root.get("path") or "/"))
        return cls(
            id=str(doc.get("id") or ""),
            name=str(doc.get("name") or ""),
            type=str(doc.get("type") or "device"),
            origin=str(doc.get("origin") or "hosted"),
            online=bool(doc.get("online", True)),
            is_primary=bool(doc.get("isPrimary")),
            is_shared=bool(doc.get("isShared")),
            permissions=granted if perms else frozenset({"READ", "WRITE"}),
            space_total=int(doc.get("spaceTotal") or 0) * MIB,
            space_used=int(doc.get("spaceUsed") or 0) * MIB,
            inside=inside,
            raw=dict(doc),
        )

    @property
    def writable(self) -> bool:
        return "WRITE" in self.permissions

    @property
    def keeps_mtime(self) -> bool:
        """Whether files keep the modification time given at upload (rclone's ``setmtime``)."""
        return self.origin not in CONNECTED_ORIGINS

    @property
    def space_free(self) -> int:
        return max(0, self.space_total - self.space_used)

    def label(self) -> str:
        """``'Dropbox' (id)`` for messages."""
        return f"{self.name!r} ({self.id})"


def parse_mounts(doc: dict[str, Any]) -> list[Mount]:
    """Mounts of a ``GET /api/v2/mounts`` answer, in the server's order."""
    return [Mount.from_json(m) for m in doc.get("mounts") or [] if isinstance(m, dict)]


def _known(mounts: list[Mount]) -> str:
    return ", ".join(f"{m.name} ({m.id})" for m in mounts) or "none"


def find_mount(mounts: list[Mount], wanted: str | None, where: str) -> Mount:
    """The mount ``wanted`` names: an id (rclone's ``mountid``), else a name (any case, must be
    unique); ``None`` means the primary mount, as rclone chooses it."""
    if not wanted:
        for m in mounts:
            if m.is_primary:
                return m
        raise KoofrMountError(f"{where} has no primary mount; mounts: {_known(mounts)}")
    for m in mounts:
        if m.id == wanted:
            return m
    named = [m for m in mounts if m.name.casefold() == wanted.casefold()]
    if len(named) == 1:
        return named[0]
    if named:
        raise KoofrMountError(
            f"several Koofr mounts at {where} are named {wanted!r}: "
            f"{', '.join(m.id for m in named)}; name one by its id"
        )
    raise KoofrMountError(f"Koofr mount {wanted!r} not found at {where}; mounts: {_known(mounts)}")


def enclosing(mount: Mount, by_id: dict[str, Mount]) -> tuple[Mount, str] | None:
    """The outermost reachable mount whose files include ``mount``'s, and the path there."""
    found = None
    seen = {mount.id}
    current = mount
    while current.inside is not None and current.inside[0] in by_id:
        outer_id, path = current.inside
        if outer_id in seen:  # a loop would be the server's bug; stop rather than spin
            break
        seen.add(outer_id)
        prefix = found[1] if found else ""
        current = by_id[outer_id]
        found = (current, path.rstrip("/") + prefix)
    return found


def account_folders(mounts: list[Mount]) -> tuple[dict[str, Mount], dict[str, tuple[Mount, str]]]:
    """How ``mount="*"`` shows an account: folder name -> mount, for every mount whose files are
    not already inside another reachable one, and mount id -> (enclosing mount, path) for those
    that are (backed up once, as part of the enclosing mount).

    Folders are named after their mounts; names that collide (two shares both called "Photos")
    get the first 8 characters of their id appended, so each keeps the same folder run to run.
    """
    by_id = {m.id: m for m in mounts}
    covered = {m.id: outer for m in mounts if (outer := enclosing(m, by_id)) is not None}
    top = [m for m in mounts if m.id not in covered]
    names = [m.name.replace("/", "_") or m.id for m in top]
    folded = [n.casefold() for n in names]
    folders = {}
    for m, name in zip(top, names, strict=True):
        if folded.count(name.casefold()) > 1:
            name = f"{name} ({m.id[:8]})"
        folders[name] = m
    return folders, covered


def describe(mount: Mount, covered: dict[str, tuple[Mount, str]]) -> dict[str, Any]:
    """The JSON-able summary ``KoofrFileSystem.mounts()`` returns for one mount."""
    outer = covered.get(mount.id)
    return {
        "id": mount.id,
        "name": mount.name,
        "type": mount.type,
        "origin": mount.origin,
        "online": mount.online,
        "primary": mount.is_primary,
        "shared": mount.is_shared,
        "writable": mount.writable,
        "keeps_mtime": mount.keeps_mtime,
        "permissions": sorted(mount.permissions),
        "space_total": mount.space_total,
        "space_used": mount.space_used,
        "space_free": mount.space_free,
        "inside": f"{outer[0].name}:{outer[1] or '/'}" if outer else None,
    }
