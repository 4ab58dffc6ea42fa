"""Every error koofrfs raises on purpose.

Transport errors derive from :class:`OSError` so that code written for any fsspec filesystem
(``except FileNotFoundError``, ``except OSError``) handles Koofr failures without knowing Koofr.
Messages are one line and name the method and the Koofr path, because that is what a user needs
to find the failing file in a report of thousands.
"""

from __future__ import annotations

import errno


class KoofrError(OSError):
    """Base of all failures talking to Koofr.

    Attributes carry what the message says, for callers that want to branch on it.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        method: str | None = None,
        path: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.method = method
        self.path = path
        self.code = code

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class KoofrAuthError(KoofrError, PermissionError):
    """Koofr answered 401: wrong user or password, or a web password instead of an app password."""


class KoofrPermissionError(KoofrError, PermissionError):
    """The mount does not allow this (403, or a write to a mount shared with you read-only)."""


class KoofrNotFound(KoofrError, FileNotFoundError):
    """The file, its parent folder or the mount does not exist (404)."""


class KoofrExists(KoofrError, FileExistsError):
    """The target already exists (409, or 400 "AlreadyExists")."""


class KoofrNotADirectory(KoofrError, NotADirectoryError):
    """A directory operation met a file (Koofr code ``NotDir``)."""


class KoofrIsADirectory(KoofrError, IsADirectoryError):
    """A file operation met a directory (Koofr code ``NotFile``)."""


class KoofrHTTPError(KoofrError):
    """Koofr answered with a status the operation does not expect and that is not retried."""


class KoofrRetryError(KoofrError):
    """A retryable failure (429, 5xx, dropped connection) persisted through every attempt."""


class KoofrMountError(KoofrError):
    """The requested mount does not exist (or its name is ambiguous), or there is no primary."""


class KoofrMountOffline(KoofrMountError):
    """The mount is offline: a computer that is not connected, or a connected cloud whose link
    to Koofr is broken (Koofr's error code ``DeviceOffline``)."""


class KoofrQuotaExceeded(KoofrError):
    """The mount has no room for the upload (``errno`` is ENOSPC, like a full disk)."""

    def __init__(self, message: str, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.errno = errno.ENOSPC


class KoofrUploadError(KoofrError):
    """A streamed upload failed and its data cannot be sent again (nothing was stored)."""


class KoofrChangedError(KoofrError):
    """A file changed on Koofr while it was being read in several ranged requests."""


class InvalidName(ValueError):
    """A path component Koofr would reject: empty, ``.``/``..``, a backslash or a control char."""


class RcloneConfigError(ValueError):
    """An rclone configuration cannot be turned into a Koofr remote; the message says why."""
