"""koofrfs: an fsspec filesystem over Koofr's REST API, plus rclone remote import.

Usable without Kloset::

    import fsspec
    fs = fsspec.filesystem("koofr", user="me@example.com", password="APP-PASSWORD")
    fs.ls("/")

The ``koofr`` protocol is declared through the ``fsspec.specs`` entry point; importing this
package also registers it, so it works from a source checkout that was never pip-installed.
"""

from __future__ import annotations

from importlib import metadata

from koofrfs import lean_httpx

lean_httpx.install()  # before anything here imports httpx

try:
    __version__ = metadata.version("prefect-kloset")
except metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.1.0"

__all__ = ["KoofrFileSystem", "__version__"]


def _register() -> None:
    import contextlib

    import fsspec

    # ValueError: another implementation was registered on purpose; leave it alone.
    with contextlib.suppress(ValueError):
        fsspec.register_implementation("koofr", "koofrfs.filesystem.KoofrFileSystem")


_register()


def __getattr__(name: str) -> object:
    # Lazy: importing the package (e.g. for koofrfs.errors) should not build the fs class.
    if name == "KoofrFileSystem":
        from koofrfs.filesystem import KoofrFileSystem

        return KoofrFileSystem
    raise AttributeError(name)
