"""The mounts an emulated account sees, and the devices (storages) behind them.

A Koofr mount is a filesystem root (``GET /api/v2/mounts``); a *device* mount owns its files
(the primary storage, a Business team's storage, a connected Dropbox), while "export" and
"import" mounts are views of a folder of some device: sharing ``Koofr:/Pictures`` creates a
mount "Pictures" whose files are those of ``/Pictures`` on the primary device. Here every
device has its own :class:`~koofr_emulator.store.Store` and every mount is a
:class:`MountView` onto one (device + folder), so one file is one file whichever mount it is
reached through. Where each field's value comes from is in :mod:`koofr_emulator.behaviour`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from . import behaviour
from .store import Store


@dataclass(frozen=True)
class DeviceSpec:
    """A storage: Koofr-hosted, a team's, another user's, or a connected cloud."""

    slug: str
    origin: str = "hosted"
    space_total_mib: int = behaviour.DEFAULT_SPACE_TOTAL_MIB

    @property
    def keeps_mtime(self) -> bool:
        return behaviour.origin_keeps_mtime(self.origin)

    @property
    def has_md5(self) -> bool:
        return behaviour.origin_has_md5(self.origin)


@dataclass(frozen=True)
class MountSpec:
    """One mount of the account: a view of ``folder`` on device ``device``."""

    slug: str
    name: str
    device: str
    type: str = "device"  # device | export | import
    folder: str = "/"
    writable: bool = True
    online: bool = True
    shared: bool = False
    primary: bool = False
    owner: str | None = None  # another user's name for mounts shared with this one


#: One account, one primary mount: what the emulator serves unless asked for more.
PERSONAL: tuple[tuple[DeviceSpec, ...], tuple[MountSpec, ...]] = (
    (DeviceSpec("primary"),),
    (MountSpec("primary", behaviour.PRIMARY_MOUNT_NAME, "primary", primary=True),),
)

#: A Business account as it looks in Koofr's clients: its own storage with a folder it shared
#: out, a team's storage plus a folder of it shared again, a read-only share from another
#: user, and connected clouds of which one is offline.
BUSINESS: tuple[tuple[DeviceSpec, ...], tuple[MountSpec, ...]] = (
    (
        DeviceSpec("primary"),
        DeviceSpec("team", origin="share", space_total_mib=behaviour.TEAM_SPACE_TOTAL_MIB),
        DeviceSpec("ana"),
        DeviceSpec("dropbox", origin="dropbox", space_total_mib=2048),
        DeviceSpec("gdrive", origin="googledrive", space_total_mib=15360),
        DeviceSpec("onedrive", origin="onedrive", space_total_mib=5120),
    ),
    (
        MountSpec("primary", behaviour.PRIMARY_MOUNT_NAME, "primary", primary=True),
        MountSpec("team", "Acme Team", "team", shared=True),
        MountSpec("pictures", "Pictures", "primary", "export", "/Pictures", shared=True),
        MountSpec(
            "design", "Design", "team", "import", "/Projects/Design", shared=True, owner="Bo"
        ),
        MountSpec(
            "recipes", "Recipes", "ana", "import", "/Recipes", False, shared=True, owner="Ana"
        ),
        MountSpec("dropbox", "Dropbox", "dropbox"),
        MountSpec("gdrive", "Google Drive", "gdrive"),
        MountSpec("onedrive", "OneDrive", "onedrive", online=False),
    ),
)

PRESETS = {"personal": PERSONAL, "business": BUSINESS}


@dataclass
class MountView:
    """A mount at run time: its spec, id and the device store it shows a folder of."""

    spec: MountSpec
    id: str
    device: DeviceSpec
    store: Store
    root_id: str | None = None  # id of the device's own mount, when this one is a view of it
    online: bool = True

    def full(self, path: str) -> str:
        """The device path of a path in this mount."""
        if self.spec.folder == "/":
            return path
        return self.spec.folder if path == "/" else self.spec.folder + path


def mount_id(identity: str, slug: str) -> str:
    """A mount id that stays the same for one emulator root across restarts."""
    return str(uuid.uuid5(uuid.UUID(identity), slug))


def permissions(view: MountView) -> dict[str, bool]:
    """Permissions as go-koofrclient and java-koofr spell the keys [C]; what each mount kind
    grants is a guess [?] (owners get everything, a read-only share only READ)."""
    own = view.spec.owner is None
    write = view.spec.writable
    return {
        "READ": True,
        "WRITE": write,
        "OWNER": own,
        "MOUNT": own,
        "CREATE_RECEIVER": write,
        "CREATE_LINK": own or write,
        "COMMENT": True,
    }


def mount_json(view: MountView, account: dict[str, str], used_mib: int) -> dict[str, Any]:
    """The Mount JSON for ``view`` (fields: go-koofrclient, java-koofr, koofr/vault [C])."""
    perms = permissions(view)
    total = view.store.space_total_mib
    owner_name = view.spec.owner or f"{behaviour.USER_FIRST_NAME} {behaviour.USER_LAST_NAME}"
    doc: dict[str, Any] = {
        "id": view.id,
        "name": view.spec.name,
        "type": view.spec.type,
        "origin": view.device.origin if view.spec.type == "device" else "share",
        "online": view.online,
        "isPrimary": view.spec.primary,
        "isShared": view.spec.shared,
        "isDir": True,
        "spaceTotal": total,
        "spaceUsed": used_mib,
        "version": 1,
        "owner": {
            "id": account["userId"] if view.spec.owner is None else mount_id(view.id, "owner"),
            "name": owner_name,
            "email": account["email"] if view.spec.owner is None else "",
            "permissions": perms,
        },
        "users": [],
        "groups": [],
        "permissions": perms,
        "canWrite": perms["WRITE"],
        "canUpload": perms["WRITE"],
        "overQuota": used_mib >= total,
        "almostOverQuota": used_mib >= total * behaviour.ALMOST_OVER_QUOTA_FRACTION,
    }
    if view.root_id is not None:
        doc["root"] = {"id": view.root_id, "name": view.spec.name, "path": view.spec.folder}
    return doc
