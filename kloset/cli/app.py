"""The `kloset` command tree. Verb modules register on `at_app`; `main` turns errors into one line.

Usage shape (Plakar's): ``kloset at STORE VERB [ARGS]``. No command here ever starts or needs a
Prefect server: the CLI drives the engine directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import typer

from kloset import passphrase as pp
from kloset.errors import StoreNotFound
from kloset.repository import Repository
from kloset.storage import Storage

app = typer.Typer(
    name="kloset",
    help="Encrypted, deduplicated snapshots of local folders, Koofr and any fsspec storage.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
at_app = typer.Typer(
    help="Work on the store at STORE (a path, an fsspec URL, or @NAME).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@dataclass
class StoreContext:
    """What every verb needs: the store location and how to unlock it."""

    location: str
    passphrase_file: str | None = None

    def storage(self) -> Storage:
        from kloset.locations import open_storage

        return open_storage(self.location)

    def open(self) -> Repository:
        storage = self.storage()
        given = pp.resolve(self.passphrase_file)
        try:
            return Repository.open(storage, given if given is not None else (lambda: pp.prompt()))
        except StoreNotFound as exc:
            if not isinstance(exc.__cause__, FileNotFoundError):
                raise  # the location could not be read: creating a store would not help
            raise StoreNotFound(
                f"{exc}: create one with `kloset at {self.location} create`"
            ) from exc


@at_app.callback()
def at(
    ctx: typer.Context,
    store: str = typer.Argument(..., metavar="STORE", help="Store location: path, URL or @NAME."),
    passphrase_file: str | None = typer.Option(
        None,
        "--passphrase-file",
        help="Read the passphrase from this file (else KLOSET_PASSPHRASE, else a prompt).",
    ),
    limit_upload: str | None = typer.Option(
        None,
        "--limit-upload",
        metavar="KIB/S",
        envvar="KLOSET_LIMIT_UPLOAD",
        help="Limit uploads to remote locations.",
    ),
    limit_download: str | None = typer.Option(
        None,
        "--limit-download",
        metavar="KIB/S",
        envvar="KLOSET_LIMIT_DOWNLOAD",
        help="Limit downloads from remote locations.",
    ),
) -> None:
    from kloset import throttle

    throttle.set_limits(
        throttle.parse_kib(limit_upload, "--limit-upload"),
        throttle.parse_kib(limit_download, "--limit-download"),
    )
    ctx.obj = StoreContext(store, passphrase_file)


app.add_typer(at_app, name="at")


def store_ctx(ctx: typer.Context) -> StoreContext:
    obj = ctx.find_object(StoreContext)
    assert obj is not None
    return obj
