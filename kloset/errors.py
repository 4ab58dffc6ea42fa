"""Every error the engine raises on purpose; the CLI turns them into one-line messages."""

from __future__ import annotations


class KlosetError(Exception):
    """Base of all expected failures: the message is meant for the user, one line."""

    exit_code = 1


class StoreNotFound(KlosetError):
    """No store at the given location (no CONFIG)."""

    exit_code = 2


class StoreExists(KlosetError):
    """`create` on a location that already holds a store."""

    exit_code = 2


class WrongPassphrase(KlosetError):
    """The passphrase does not unwrap the store's master key."""

    exit_code = 3


class PassphraseRequired(KlosetError):
    """An encrypted store was opened with no way to ask for its passphrase."""

    exit_code = 3


class CorruptObject(KlosetError):
    """An object failed authentication, decoding or its id check; names the file."""

    exit_code = 4


class SnapshotNotFound(KlosetError):
    """No snapshot matches the given id prefix."""

    exit_code = 2


class AmbiguousSnapshot(KlosetError):
    """Several snapshots match the given id prefix."""

    exit_code = 2


class PathNotFound(KlosetError):
    """A path inside a snapshot does not exist."""

    exit_code = 2


class UnsafePath(KlosetError):
    """A name inside a snapshot would escape the restore target."""

    exit_code = 4


class LocationError(KlosetError):
    """A source, destination or store location cannot be understood or reached."""

    exit_code = 2


class StoreLocked(KlosetError):
    """Another process holds a conflicting lock on the store."""

    exit_code = 5


class CheckFailed(KlosetError):
    """`check` found damage; the message summarises, details were printed before."""

    exit_code = 6


class NoSpace(KlosetError):
    """The destination reports less free space than the restore or sync needs; nothing was
    written."""

    exit_code = 2


class SourceChanged(KlosetError):
    """A file read from the source does not match the size or MD5 its listing gave: it changed
    while it was read, or a download came back torn. The backup reads it once more, then records
    it as a snapshot error; it never stores a torn file."""
