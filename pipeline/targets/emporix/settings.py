"""``[targets.emporix]``: Emporix Customer Service, one customer and its address at a time."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

import msgspec

from pipeline.config import PositiveInt, TargetSettings, Url
from pipeline.errors import ConfigError

__all__ = ["EMPORIX_CUSTOMERS_PATH", "EMPORIX_TOKEN_PATH", "EmporixSettings"]

EMPORIX_CUSTOMERS_PATH = "/customer/{tenant}/customers"
EMPORIX_TOKEN_PATH = "/oauth/token"


class EmporixSettings(TargetSettings, frozen=True, kw_only=True):
    """``[targets.emporix]``: ``url`` is the API base (``https://api.emporix.io``)."""

    tenant: Annotated[str, msgspec.Meta(pattern="^[a-z][a-z0-9]+$", min_length=3, max_length=16)]
    client_id_env: str
    client_secret_env: str
    token_url: Url | None = None
    """OAuth2 token endpoint; ``{url}/oauth/token`` when absent."""
    scope: str | None = None
    """Space-separated scopes to ask for; absent asks for all the client has."""
    max_in_flight: PositiveInt = 8
    batch_size: PositiveInt = 50
    """Customers handed to one writer at a time (each is still its own requests)."""
    mixins: bool = False
    """Write ``role`` and ``businessUnit`` into a mixin (its schema must be hosted)."""
    mixin_name: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")] = "manCustomer"
    """Mixin holding ``role`` and ``businessUnit``."""
    mixin_schema_url: Url | None = None
    """https URL of the hosted mixin schema; required when ``mixins`` is true."""
    adopt_existing: bool = False
    """A customer Emporix already holds under its own number (same ``contactEmail``) is
    adopted: its number is kept in the state and it is updated from then on."""

    def endpoints(self) -> tuple[str, ...]:
        return (EMPORIX_CUSTOMERS_PATH.format(tenant=self.tenant), EMPORIX_TOKEN_PATH)

    def check(self, key: str) -> None:
        """Mixins are opt-in, and Emporix needs their schema hosted: an https URL is required."""
        if not self.mixins:
            return
        url = urlsplit(self.mixin_schema_url or "")
        if url.scheme != "https" or not url.hostname:
            raise ConfigError(
                "must be the https URL of the hosted mixin schema while mixins is true",
                path=f"{key}.mixin_schema_url",
            )
