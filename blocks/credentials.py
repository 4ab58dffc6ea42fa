"""`KoofrCredentials`: who to log in as, kept once in Prefect and shared by every Koofr block.

Like prefect-aws's `AwsCredentials`, the block holds the account and the client's tuning knobs
and hands out a ready client (here an fsspec `KoofrFileSystem`), so flows never handle the
password themselves and the UI masks it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

if TYPE_CHECKING:
    from koofrfs.filesystem import KoofrFileSystem
    from koofrfs.rclone import KoofrRemote

# No logo: Prefect's client validates logo URLs as http(s) when it reads a block type back, so a
# data: URL would break loading the blocks, and we host no images; an empty logo shows Prefect's
# own placeholder instead of fetching someone else's image.
LOGO_URL = None
DOCS_URL = "https://rclone.org/koofr/"


class KoofrCredentials(Block):
    """Log-in details for a Koofr account (or Digi Storage, or a Koofr-compatible server).

    Koofr's API only accepts an *application* password (generated under Preferences →
    Password), never the web log-in password. Create the block in the UI, from Python, or
    from an existing rclone remote with ``kloset source import --prefect-block NAME``.

    Example:
        Load stored Koofr credentials and list the mount's root:
        ```python
        from blocks import KoofrCredentials

        koofr_credentials_block = KoofrCredentials.load("BLOCK_NAME")
        fs = koofr_credentials_block.get_filesystem()
        print(fs.ls("", detail=False))
        ```
    """

    _block_type_name = "Koofr Credentials"
    _block_type_slug = "koofr-credentials"
    _logo_url = LOGO_URL  # type: ignore[assignment]
    _documentation_url = DOCS_URL  # type: ignore[assignment]

    email: str = Field(
        default=...,
        description="E-mail address of the Koofr account.",
        examples=["me@example.com"],
    )
    app_password: SecretStr = Field(
        default=...,
        description="Application password generated in Koofr's preferences (not the web one).",
    )
    provider: Literal["koofr", "digistorage", "other"] = Field(
        default="koofr",
        description="Service: koofr, digistorage, or other for a self-hosted endpoint.",
    )
    endpoint: str = Field(
        default="https://app.koofr.net",
        description="Base URL of the API; only used when the provider is other.",
    )
    mount_id: str | None = Field(
        default=None,
        description="Id of the mount to use; empty means the account's primary mount.",
    )
    client_options: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Extra keyword arguments for koofrfs.KoofrFileSystem, such as max_concurrency, "
            "retries, backoff_base or timeout."
        ),
        examples=[{"max_concurrency": 4, "retries": 8}],
    )

    def storage_options(self) -> dict[str, Any]:
        """Keyword arguments for ``fsspec.filesystem("koofr", ...)``, password included."""
        options: dict[str, Any] = {
            "user": self.email,
            "password": self.app_password.get_secret_value(),
            "endpoint": self.endpoint,
            "provider": self.provider,
        }
        if self.mount_id:
            options["mountid"] = self.mount_id
        options.update(self.client_options)
        return options

    def get_filesystem(self, **options: Any) -> KoofrFileSystem:
        """A `KoofrFileSystem` logged in as this account (the client, in prefect-aws terms)."""
        from koofrfs.filesystem import KoofrFileSystem

        return KoofrFileSystem(**{**self.storage_options(), **options})

    def get_client(self) -> KoofrFileSystem:
        """Alias of :meth:`get_filesystem`, named like prefect-aws's credentials method."""
        return self.get_filesystem()

    def account_label(self) -> str:
        """``email@host[#mount]``: names the account in snapshots without any secret."""
        if self.provider == "koofr":
            host = "app.koofr.net"
        elif self.provider == "digistorage":
            host = "storage.rcs-rds.ro"
        else:
            host = urlsplit(self.endpoint).netloc or self.endpoint
        mount = f"#{self.mount_id}" if self.mount_id else ""
        return f"{self.email}@{host}{mount}"

    @classmethod
    def from_remote(cls, remote: KoofrRemote) -> KoofrCredentials:
        """Credentials for an rclone remote imported by ``kloset ... import``."""
        return cls(
            email=remote.user,
            app_password=SecretStr(remote.password),
            provider=remote.provider,  # type: ignore[arg-type]
            endpoint=remote.endpoint,
            mount_id=remote.mountid,
        )
