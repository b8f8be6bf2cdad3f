"""The settings tree: msgspec Structs decoded strictly from TOML (by
:mod:`pipeline.config_load`); secrets come from the environment (:func:`secret`).

Only this module and :mod:`pipeline.config_load` read ``os.environ``: secrets here, named in
the file by ``*_env`` keys; overrides there (``PIPELINE__SOURCE__PAGE_SIZE=500``), and the
plug-in modules of ``PIPELINE_PLUGINS``.
"""

from __future__ import annotations

import os
import re
from typing import Annotated, Literal, TypeVar

import msgspec

from pipeline.errors import ConfigError

__all__ = [
    "CONTROL",
    "DEFAULT_MAX_RESPONSE_MB",
    "ENV_PREFIX",
    "AddressFieldMap",
    "AddressPick",
    "DatabaseUrl",
    "FieldMap",
    "FlowSettings",
    "MetricsSettings",
    "NonNegativeFloat",
    "PagingMode",
    "PositiveFloat",
    "PositiveInt",
    "RetrySettings",
    "Secret",
    "ServeSettings",
    "Settings",
    "SourceSettings",
    "StateSettings",
    "TargetSettings",
    "TargetsSettings",
    "Url",
    "secret",
]

ENV_PREFIX = "PIPELINE__"

PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
FOREVER = 1e9
"""No duration, rate or share in the settings is this large (about 31 years): ``inf`` and its
like are refused rather than taken as "never"."""
PositiveFloat = Annotated[float, msgspec.Meta(gt=0, lt=FOREVER)]
NonNegativeFloat = Annotated[float, msgspec.Meta(ge=0, lt=FOREVER)]
Rate = Annotated[float, msgspec.Meta(ge=0.01, lt=FOREVER)]
"""Requests per second: a rate below one request in 100 s is a typo, not a limit."""
DEFAULT_MAX_RESPONSE_MB = 64


class _UrlKind:
    """Marks a setting as a URL, for :func:`_check_urls`."""


Url = Annotated[str, _UrlKind()]
"""An http(s) URL with a host, and without credentials (those come from ``*_env`` secrets)."""
DatabaseUrl = Annotated[str, msgspec.Meta(min_length=1)]
"""A database URL (``postgresql://user@host/database``), checked by its own rule
(:func:`pipeline.state.url.check_state_url`), not the http one of :data:`Url`."""


class _Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every settings section: immutable, keyword-only, unknown keys are errors."""


class RetrySettings(_Section, frozen=True):
    """Retries with exponential backoff and full jitter; ``Retry-After`` wins when sent."""

    max_attempts: PositiveInt = 8
    """Attempts per request, the first included."""
    initial_seconds: NonNegativeFloat = 0.1
    """Upper bound of the first backoff delay."""
    max_seconds: PositiveFloat = 30.0
    """No single wait is longer than this, ``Retry-After`` included."""


class FieldMap(_Section, frozen=True):
    """``[source.fields]``: the name MAN gives each record field, where it differs from the
    interface document (MANPINT002). Keys are the document's names; values are flat JSON keys.

    ``address`` may hold one object or a list of them (``"addresses"``, or ``"addresses[0]"``
    to always take the first); from a list the address is picked by ``source.address_pick``.
    """

    customer_id: str = "customer_id"
    salutation: str = "salutation"
    firstName: str = "firstName"
    lastName: str = "lastName"
    email: str = "email"
    businessUnit: str = "businessUnit"
    role: str = "role"
    address: str = "address"


class AddressFieldMap(_Section, frozen=True):
    """``[source.address_fields]``: the name MAN gives each field of the address object."""

    address1: str = "address1"
    address2: str = "address2"
    address3: str = "address3"
    zipCode: str = "zipCode"
    city: str = "city"
    country: str = "country"
    iso2Code: str = "iso2Code"
    phone: str = "phone"
    isDefaultBilling: str = "isDefaultBilling"
    isDefaultShipping: str = "isDefaultShipping"


AddressPick = Literal["billing", "shipping", "first"]
"""Which address of a list is the customer's: the default billing one (else the default
shipping one, else the first), the default shipping one (else billing, else first), or the first."""

PagingMode = Literal["offset", "page"]


class SourceSettings(_Section, frozen=True):
    """``[source]``: the MAN customer-users API (MANPINT002).

    The interface document leaves the endpoint, the page-size cap, the envelope and the field
    names to be determined, so each is a setting whose default is the document's reading.
    """

    url: Url
    """The paged endpoint itself; the paging parameters are added."""
    page_size: PositiveInt = 100
    """Records asked for per page; a server that answers fewer is followed at its own size."""
    max_in_flight: PositiveInt = 4
    """Page requests in flight."""
    overlap: Annotated[int, msgspec.Meta(ge=0)] = 10
    """Records each page re-reads from the end of the one before (repeats are dropped): up to
    this many deletions at the source between two page requests skip no record. Offset
    paging only."""
    paging: PagingMode = "offset"
    """``offset``: ``?limit=L&offset=O`` (MANPINT002). ``page``: ``?page=P&limit=L``."""
    limit_param: str = "limit"
    """Query parameter of the page size (both modes)."""
    offset_param: str = "offset"
    """Query parameter of the offset (``paging = "offset"``)."""
    page_param: str = "page"
    """Query parameter of the page number (``paging = "page"``)."""
    first_page: Annotated[int, msgspec.Meta(ge=0, le=1)] | None = None
    """Number of the first page, 0 or 1; required with ``paging = "page"``."""
    token_env: str | None = None
    """Environment variable holding a bearer token."""
    client_id_env: str | None = None
    """Environment variables of the ``client_id``/``client_secret`` header pair (Mulesoft style)."""
    client_secret_env: str | None = None
    data_path: Annotated[str, msgspec.Meta(pattern=r"^[^.\s]+(\.[^.\s]+)*$")] = "data"
    """Dotted path of the record list when the answer is an object (``result.data``); a bare
    array is always accepted."""
    total_path: Annotated[str, msgspec.Meta(pattern=r"^([^.\s]+(\.[^.\s]+)*)?$")] = "total"
    """Dotted path of the record count in the answer; ``""`` ignores any count."""
    fields: FieldMap = FieldMap()
    address_fields: AddressFieldMap = AddressFieldMap()
    address_pick: AddressPick = "billing"
    timeout_seconds: PositiveFloat = 30.0
    ca_bundle: str | None = None
    """PEM file of extra CAs to trust; certificates are always checked, there is no opt-out."""
    retry: RetrySettings = RetrySettings()
    max_response_mb: PositiveInt = DEFAULT_MAX_RESPONSE_MB
    """No answer is read past this many MB (MiB) once decoded: that request fails instead."""


class FlowSettings(_Section, frozen=True):
    """``[flow]``: buffering between stages."""

    queue_size: PositiveInt = 8
    """Batches buffered between two stages."""


class StateSettings(_Section, frozen=True):
    """``[state]``: where the state is kept: a SQLite file (the default), or PostgreSQL."""

    path: str = "pipeline-state.sqlite3"
    """The SQLite file (and, beside it, the pass's temporary seen-set)."""
    url: DatabaseUrl | None = None
    """``postgresql://user@host:port/database``: the state on PostgreSQL instead of ``path``
    (the seen-set stays beside ``path``). No password in it: ``password_env`` names it."""
    password_env: str | None = None
    """Environment variable holding the PostgreSQL user's password."""


class ServeSettings(_Section, frozen=True):
    """``[serve]``: the long-running loop."""

    interval_seconds: PositiveFloat = 900.0
    grace_seconds: NonNegativeFloat = 30.0


class MetricsSettings(_Section, frozen=True):
    """``[metrics]``: where /metrics, /healthz and /readyz are served."""

    listen: str = "127.0.0.1:9108"


class TargetSettings(_Section, frozen=True):
    """What every ``[targets.<name>]`` section holds; a target's own settings subclass it (in
    its folder, ``pipeline/targets/<name>/settings.py``) and may change a default."""

    url: Url
    """The target's base URL; the target adds its endpoint paths (:meth:`endpoints`)."""
    batch_size: PositiveInt = 100
    """Records handed to one writer at a time."""
    rate_per_second: Rate | None = None
    """Requests per second, at least 0.01 (one in 100 s); absent means no limit."""
    max_in_flight: PositiveInt = 4
    """Requests (writers) in flight."""
    deactivate_missing: bool = False
    """After a complete pass, deactivate customers the source no longer returns."""
    max_deactivate_share: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.05
    """Skip deactivation (with a warning) when more than this share of known customers would go."""
    timeout_seconds: PositiveFloat = 30.0
    ca_bundle: str | None = None
    """PEM file of extra CAs to trust; certificates are always checked, there is no opt-out."""
    retry: RetrySettings = RetrySettings()
    max_response_mb: PositiveInt = DEFAULT_MAX_RESPONSE_MB
    """No answer is read past this many MB (MiB) once decoded: that request fails instead."""

    def endpoints(self) -> tuple[str, ...]:
        """The paths the target adds to ``url``: a ``url`` that already holds one is refused."""
        return ()

    def check(self, key: str) -> None:
        """The rules across this section's keys (``key`` is ``targets.<name>``), run once it
        decoded; a single key's rules are in its type.

        Raises:
            ConfigError: naming the key.
        """

    def describe(self) -> list[str]:
        """Lines ``pipeline check-config`` prints about this target (where its ids come from,
        say); none by default."""
        return []


S = TypeVar("S", bound=TargetSettings)


class TargetsSettings(_Section, frozen=True):
    """``[targets.*]``: the section of each target that is on, by name, in the registry's
    order (decoded by :mod:`pipeline.config_load`, each with its registered type)."""

    sections: dict[str, TargetSettings] = {}

    def enabled(self) -> list[str]:
        return list(self.sections)

    def __getitem__(self, name: str) -> TargetSettings:
        return self.sections[name]

    def get(self, kind: type[S]) -> S | None:
        """The section of type ``kind``, if that target is on."""
        for section in self.sections.values():
            if isinstance(section, kind):
                return section
        return None


class Settings(_Section, frozen=True):
    """The whole configuration."""

    source: SourceSettings
    flow: FlowSettings = FlowSettings()
    state: StateSettings = StateSettings()
    serve: ServeSettings = ServeSettings()
    metrics: MetricsSettings = MetricsSettings()
    targets: TargetsSettings = TargetsSettings()


class Secret:
    """A secret value whose repr and str never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
"""C0 and C1 control characters and the Unicode line separators: never in a secret or URL."""


def secret(env_name: str | None, *, key: str) -> Secret | None:
    """The secret held by environment variable ``env_name``; None when no variable is named.

    One trailing newline is dropped (a secret mounted from a file usually ends with one).

    Raises:
        ConfigError: a variable is named but not set, is blank, or holds a control character
            (``key`` is the config key that named it; the value is never shown).
    """
    if env_name is None:
        return None
    value = os.environ.get(env_name)
    if not value:
        raise ConfigError(f"environment variable {env_name} is not set", path=key)
    value = value.removesuffix("\n").removesuffix("\r")
    if not value.strip():
        raise ConfigError(f"environment variable {env_name} is blank", path=key)
    if CONTROL.search(value):
        raise ConfigError(f"environment variable {env_name} holds a control character", path=key)
    return Secret(value)
