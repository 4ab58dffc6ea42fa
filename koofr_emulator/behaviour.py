"""Every guess the emulator makes about the real Koofr service, in one place.

The wire reference is ``/work/shared/koofr-api.md`` (evidence tags [V] wire, [C] source code,
[D] docs, [?] inference).  Anything below tagged [?] was *not* confirmed against the real
service: if the real Koofr turns out to behave differently, change it here and only here.

Inferences that are structural rather than a constant (documented here, coded in ``store.py``):

* a file where a directory is expected (parent of folder/put/copy/move target) is
  400 ``NotDir`` "Directory expected" (the fake has no such check) [?];
* the checks run in the fake's order: into-self (400) -> target exists (409) -> source
  missing (404) -> target parent missing (404) [C];
* into-self and "target exists" compare case-insensitively (the fake compares raw paths) [?];
* deletions go to the trash (``/api/v2/trash``, ``retentionDays``) [C java-koofr ``Trash``];
  that trashed files count against the quota until they expire is a guess [?] (see below);
* file versions (``files/versions``) are not emulated [C][?];
* copy and move between mounts (``toMountId``) work, also between devices [C] (body field);
* a mount that is a folder of another ("export" = shared out, "import" = shared with you) is a
  view of that folder: its files are the same files [D koofr/node-koofr README: "A mount may
  contain other mounts ... a picture stored under My Place /Pictures/01.jpg will also be
  accessible through Pictures /01.jpg"]; the Mount JSON says where in ``root``
  (``{id, name, path}``) [C java-koofr ``Mounts.MountRoot``]; that ``root.id`` is the id of the
  enclosing device's mount is an inference [?].

Mounts (``mounts.py``; the ``business`` layout has one of each kind):

* Mount JSON fields ``id, name, type, origin, online, isPrimary, isShared, spaceTotal,
  spaceUsed, owner, users, groups, version, permissions`` [C go-koofrclient ``api_scheme.go``],
  plus ``root, isDir, canWrite, canUpload, overQuota, almostOverQuota`` [C java-koofr
  ``Mounts.java``]; ``permissions`` keys ``READ WRITE OWNER MOUNT CREATE_RECEIVER CREATE_LINK
  COMMENT`` [C go-koofrclient, java-koofr; shared/koofr-api.md §5]; exactly one ``isPrimary``,
  which rclone picks without ``mountid`` [C rclone backend/koofr/koofr.go, shared/koofr-api.md
  §6]. ``spaceTotal``/``spaceUsed`` in MiB [C rclone ``About``].
* ``type`` is device | export | import and ``origin`` hosted | desktop | dropbox | googledrive |
  onedrive | share [C koofr/vault ``remote_files/state.rs``]; a computer (``desktop``) or a
  connected cloud can be ``online: false`` [C same file: ``DesktopOffline``]; rclone reaches
  any mount but one at a time, through ``mountid`` [C rclone], OpenDAL's Koofr service has no
  mount option at all (root, endpoint, email, password) [D opendal services/koofr/docs.md].
* ``GET /api/v2/places`` lists devices and ``GET /api/v2/shared`` the shares, each with its
  mount [C koofr/vault ``remote_files/service.rs``, java-koofr ``RPlaces``/``RShared``].
* What each kind grants (owner: all; a share without write: ``READ`` and ``COMMENT``) [?].
"""

from __future__ import annotations

import mimetypes

# --- Account / mount presentation ------------------------------------------------------------

#: Name of the primary mount as shown by the fake server and the web UI [C].
PRIMARY_MOUNT_NAME = "Koofr"
#: Mount ``type`` / ``origin`` for Koofr-hosted storage [C].
PRIMARY_MOUNT_TYPE = "device"
PRIMARY_MOUNT_ORIGIN = "hosted"
#: Free-tier quota, MiB [C][?].
DEFAULT_SPACE_TOTAL_MIB = 10240
#: ``spaceUsed`` is reported in whole MiB; rounding direction unknown [?] - we round up so a
#: small upload is visible in ``rclone about``.
SPACE_USED_ROUND_UP = True
#: Refuse uploads/copies that would exceed ``spaceTotal`` [?]; status and code are guesses.
ENFORCE_QUOTA = True
QUOTA_EXCEEDED_STATUS = 413
QUOTA_EXCEEDED_CODE = "QuotaExceeded"
#: Quota of a Business team's storage, MiB [?].
TEAM_SPACE_TOTAL_MIB = 102400


def origin_keeps_mtime(origin: str) -> bool:
    """Whether a device keeps the ``modified`` given at upload. Connected clouds do not:
    rclone's ``setmtime`` exists "if you use a mount ID that points to a Dropbox or Amazon
    Drive backend" [D rclone docs/content/koofr.md]; Google Drive and OneDrive are assumed
    alike [?]. Their files show the time Koofr wrote them."""
    return origin not in ("dropbox", "googledrive", "onedrive", "amazon")


def origin_has_md5(origin: str) -> bool:
    """Whether listings of a device carry an MD5 ``hash``: "may be missing on non-Koofr-hosted
    mounts" [?]. Dropbox and OneDrive hash files their own way (Dropbox content hash,
    QuickXorHash; rclone's hash table [D]), Google Drive keeps MD5, so only the first two go
    without [?]."""
    return origin not in ("dropbox", "onedrive")


#: ``origin`` values Koofr's clients know: hosted, desktop, dropbox, googledrive, onedrive,
#: share [C koofr/vault remote_files/state.rs]; mount ``type``: device, export, import [C].
#: A Business team's storage is a device of origin ``share`` [?].
#: Writing to a mount shared read-only: status and code are guesses [?].
READ_ONLY_STATUS = 403
READ_ONLY_CODE = "Forbidden"
#: A computer that is not connected, or a connected cloud Koofr cannot reach: error code
#: ``DeviceOffline`` "Device is offline" [C koofr/vault remote.rs]; the status is a guess [?].
DEVICE_OFFLINE_STATUS = 503
DEVICE_OFFLINE_CODE = "DeviceOffline"

# --- Trash -----------------------------------------------------------------------------------

#: Deleted files go to the trash, kept ``retentionDays`` [C java-koofr ``Trash``]; 30 days is
#: what Koofr's desktop app says of its own SyncTrash [D koofr.eu help] and a guess here [?].
TRASH_RETENTION_DAYS = 30
#: Whether trashed files still count in ``spaceUsed``. No public source says; like most
#: services (Google Drive, Dropbox, OneDrive) they are assumed to, until emptied [?].
TRASH_COUNTS_AGAINST_QUOTA = True
#: The v2.1 fake accepts the literal mount id ``primary``; unknown for v2 [C][?].
ACCEPT_PRIMARY_ALIAS = False
#: ``firstName``/``lastName`` reported by ``GET /api/v2/user`` [?].
USER_FIRST_NAME = "Test"
USER_LAST_NAME = "User"
USER_LEVEL = 1000
#: ``almostOverQuota`` in the mount JSON flips at this fraction of ``spaceTotal`` [?].
ALMOST_OVER_QUOTA_FRACTION = 0.95

# --- Authentication --------------------------------------------------------------------------

#: Email comparison for Basic auth and ``POST /token`` is case-insensitive [?].
EMAIL_CASE_INSENSITIVE = True
#: 401 responses carry an empty body and no ``WWW-Authenticate`` header [V][C][?].
SEND_WWW_AUTHENTICATE = False

# --- Namespace rules -------------------------------------------------------------------------


def fold_name(name: str) -> str:
    """Case-folding used for case-insensitive lookup: plain Unicode lower-casing, as the
    fake's ``to_lowercase()`` [C]; no Unicode normalisation (NFC/NFD) is applied [?]."""
    return name.lower()


#: Longest name in UTF-8 bytes. Koofr's own limit is undocumented [?]; 255 is what the
#: emulator's on-disk storage (ext4/tmpfs) can hold, so longer names get 400 InvalidName.
MAX_NAME_BYTES = 255
#: Renaming an item to a name that differs only in case (``a.txt`` -> ``A.txt``) is allowed.
#: The v2.1 fake answers 409 AlreadyExists here; real services generally allow it [?].
CASE_ONLY_RENAME_ALLOWED = True
#: Overwriting ``f1.txt`` by uploading ``F1.TXT``: the uploaded spelling replaces the old one
#: (the fake deletes and re-creates) [C][?].
OVERWRITE_TAKES_NEW_CASE = True
#: Directory ``modified``: set when the directory is created (or copied) and not bumped when
#: children change, as in the fake [C][?].  Root reports the storage creation time.
DIR_MODIFIED_IS_CREATION_TIME = True
#: Listings are sorted case-insensitively by name; real ordering is unknown [?].
SORT_LISTINGS = True
#: ``files/list`` on a file: 400 NotDir [?].
LIST_ON_FILE_STATUS = 400

# --- Status codes for conflicts --------------------------------------------------------------

#: ``files/folder`` when the name exists: 400 on real v2 (rclone relies on it; 409 breaks
#: ``rclone copy --transfers 8``) [V][D].
FOLDER_EXISTS_STATUS = 400
#: Upload to an existing name with neither overwrite nor autorename: 400 on v2.0 (fake comment:
#: "should be BAD_REQUEST for api v2.0"), 409 on v2.1 [C].
UPLOAD_EXISTS_STATUS = 400
#: ``files/copy``/``files/move`` require ``toMountId`` in the body [?]; rclone always sends it.
REQUIRE_TO_MOUNT_ID = True
#: ``files/copy`` without ``modified`` keeps the source's modified time (fake copies FileInfo) [C].
COPY_KEEPS_SOURCE_MODIFIED = True
#: Link create answers 200 (rclone accepts 200/201) [?].
LINK_CREATE_STATUS = 200
#: ``files/folder`` and ``files/remove`` answer 200 with an empty body (fake) [C].
EMPTY_OK_BODY = b""

# --- Uploads ---------------------------------------------------------------------------------

#: Multipart field carrying the file; any other part with a ``filename`` is used as fallback [V][?].
UPLOAD_FIELD_NAME = "file"
#: Without ``info=true`` v2 answers ``[{"name": ...}]`` (python/node clients) [C]; the v2.1
#: fake would reject the request instead.
UPLOAD_WITHOUT_INFO_RETURNS_NAME_LIST = True
#: Flag values recognised as true for ``overwrite``/``info`` (Go sends ``true``) [C].
TRUE_VALUES = frozenset({"true"})

# --- Downloads -------------------------------------------------------------------------------

#: Multi-range and malformed ``Range`` headers get 416 + ``Content-Range: bytes */SIZE``
#: (fake) rather than being ignored as RFC 9110 would allow [C].
BAD_RANGE_STATUS = 416
#: ``X-File-Info`` is JSON with non-ASCII escaped so it is a valid (Latin-1) header value [?].
SEND_X_FILE_INFO = True

#: MIME types by *last* extension (fake: ext after the last dot) [C]; the table is a guess
#: seeded from Python's built-in defaults (not the host's /etc/mime.types, for determinism).
_MIME = mimetypes.MimeTypes()
_EXTRA_MIME = {
    "gz": "application/gzip",
    "tgz": "application/gzip",
    "bz2": "application/x-bzip2",
    "xz": "application/x-xz",
    "zst": "application/zstd",
    "7z": "application/x-7z-compressed",
    "md": "text/markdown",
    "heic": "image/heic",
    "webp": "image/webp",
    "mkv": "video/x-matroska",
    "flac": "audio/flac",
}
DEFAULT_CONTENT_TYPE = "application/octet-stream"


def content_type_for(name: str) -> str:
    """Content type the emulator reports for a file name (extension after the last dot)."""
    if "." not in name:
        return DEFAULT_CONTENT_TYPE
    ext = name.rsplit(".", 1)[1].lower()
    if ext in _EXTRA_MIME:
        return _EXTRA_MIME[ext]
    return _MIME.types_map[True].get("." + ext) or DEFAULT_CONTENT_TYPE


# --- Errors ---------------------------------------------------------------------------------

#: Error codes used for injected faults by status [?].
FAULT_ERROR_CODES = {429: "TooManyRequests", 500: "Other", 502: "Other", 503: "Other", 504: "Other"}
#: ``Retry-After`` is sent with these injected statuses (HTTP semantics); the real service's
#: use of it is unknown [?], rclone ignores it [V].
RETRY_AFTER_STATUSES = frozenset({429, 503})
#: Unknown method on a known route: 405 with ``Allow`` [?].
METHOD_NOT_ALLOWED_STATUS = 405

# --- Transport -------------------------------------------------------------------------------

#: Idle keep-alive connections are closed after this many seconds [?].
KEEPALIVE_TIMEOUT_S = 120.0
#: Leftover request bodies up to this size are drained to keep the connection reusable;
#: larger ones make the emulator close the connection instead.
DRAIN_LIMIT_BYTES = 64 * 1024 * 1024
