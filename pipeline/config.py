"""The settings tree: msgspec Structs decoded strictly from TOML; secrets come from the environment.

Only this module reads ``os.environ``. Two things come from it:

* overrides, applied *before* decoding: ``PIPELINE__SOURCE__PAGE_SIZE=500`` sets
  ``[source] page_size``; the value is read as a TOML value when it parses as one, else as text;
* secrets, named in the file by ``*_env`` keys and resolved by :func:`secret`.

Every key typed :data:`Url` is checked after decoding by one rule (:func:`_check_urls`): an
http(s) URL with a host and no user name or password.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_type_hints
from urllib.parse import urlsplit

import msgspec

from pipeline.errors import ConfigError

__all__ = [
    "DEFAULT_MAX_RESPONSE_MB",
    "EMPORIX_CUSTOMERS_PATH",
    "EMPORIX_TOKEN_PATH",
    "FIRST_ELEMENT",
    "NORCE_TOKEN_PATH",
    "SYNCBATCH_PATH",
    "AddressFieldMap",
    "AddressPick",
    "EmporixSettings",
    "FieldMap",
    "FlowSettings",
    "MetricsSettings",
    "NorceSettings",
    "PagingMode",
    "RetrySettings",
    "Secret",
    "ServeSettings",
    "Settings",
    "SourceSettings",
    "StateSettings",
    "SyncBatchSettings",
    "TargetsSettings",
    "Url",
    "check_field_maps",
    "listen_address",
    "load_settings",
    "secret",
    "settings_from_mapping",
]

ENV_PREFIX = "PIPELINE__"

PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
FOREVER = 1e9
"""No duration, rate or share in the settings is this large (about 31 years): ``inf`` and its
like are refused rather than taken as "never"."""
PositiveFloat = Annotated[float, msgspec.Meta(gt=0, lt=FOREVER)]
NonNegativeFloat = Annotated[float, msgspec.Meta(ge=0, lt=FOREVER)]
DEFAULT_MAX_RESPONSE_MB = 64
MAX_ID = 2_147_483_647
"""The largest id a ServiceStack ``int`` holds."""
TargetId = Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)]

SYNCBATCH_PATH = "/sync/customers/batch"
EMPORIX_CUSTOMERS_PATH = "/customer/{tenant}/customers"
EMPORIX_TOKEN_PATH = "/oauth/token"
NORCE_TOKEN_PATH = "/identity/1.0/connect/token"
"""The paths the targets add to their base ``url`` (a base that holds one is refused)."""


class _UrlKind:
    """Marks a setting as a URL, for :func:`_check_urls`."""


Url = Annotated[str, _UrlKind()]
"""An http(s) URL with a host, and without credentials (those come from ``*_env`` secrets)."""


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
    """``[state]``: the SQLite state store."""

    path: str = "pipeline-state.sqlite3"


class ServeSettings(_Section, frozen=True):
    """``[serve]``: the long-running loop."""

    interval_seconds: PositiveFloat = 900.0
    grace_seconds: NonNegativeFloat = 30.0


class MetricsSettings(_Section, frozen=True):
    """``[metrics]``: where /metrics, /healthz and /readyz are served."""

    listen: str = "127.0.0.1:9108"


class SyncBatchSettings(_Section, frozen=True):
    """``[targets.syncbatch]``: the ServiceStack ``POST /sync/customers/batch`` endpoint."""

    url: Url
    """Base URL; the pipeline posts to ``/sync/customers/batch``."""
    profile_url: Url
    """The account's profile page in the shop, ``{customer_id}`` filled in per customer
    (``https://shop.example.com/users/{customer_id}``); required: an example host is no URL."""
    account_ids: Literal["customer_id", "range"]
    """How accounts get their integer ``id`` (required: there is no safe default, an id
    another feed uses is overwritten). ``customer_id``: the number in the customer id, after
    ``customer_id_prefix``, plus ``account_id_offset``; ``range``: allocated once per customer
    from ``account_id_range`` and kept in the state file."""
    token_env: str | None = None
    batch_size: Annotated[int, msgspec.Meta(gt=0, le=1000)] = 100
    """Accounts (MAN customers) per request."""
    rate_per_second: PositiveFloat | None = None
    """Requests per second; absent means no limit."""
    max_in_flight: PositiveInt = 4
    permissions: tuple[str, ...] = ()
    customer_type: Literal["Internal", "Network", "External"] = "External"
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
    customer_id_prefix: str = ""
    """Stripped from the customer id before its number is read (``C`` for ``C0001234``)."""
    account_id_offset: Annotated[int, msgspec.Meta(ge=0, lt=MAX_ID)] = 0
    """Added to the number read from the customer id, to keep two feeds' ids apart."""
    account_id_range: tuple[TargetId, TargetId] | None = None
    """``[first, last]`` ids this feed may allocate, with ``account_ids = "range"``."""
    organisation_ids: dict[str, int] = {}
    """Business unit -> organisation id, for the units named."""
    organisation_id_range: tuple[TargetId, TargetId] | None = None
    """``[first, last]`` ids for the business units ``organisation_ids`` does not name."""


class EmporixSettings(_Section, frozen=True):
    """``[targets.emporix]``: Emporix Customer Service, one customer and its address at a time."""

    url: Url
    """API base URL (``https://api.emporix.io``)."""
    tenant: Annotated[str, msgspec.Meta(pattern="^[a-z][a-z0-9]+$", min_length=3, max_length=16)]
    client_id_env: str
    client_secret_env: str
    token_url: Url | None = None
    """OAuth2 token endpoint; ``{url}/oauth/token`` when absent."""
    scope: str | None = None
    """Space-separated scopes to ask for; absent asks for all the client has."""
    rate_per_second: PositiveFloat | None = None
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


class NorceSettings(_Section, frozen=True):
    """``[targets.norce]``: Norce Commerce Connect 4.0, batched asynchronous imports."""

    url: Url
    """Client base URL (``https://{client}.api-se.norce.tech``)."""
    application_id: int
    account_id: int
    """AccountId of the integration user, sent in ``X-StormConnect-Header``."""
    scope: str
    """The environment: ``playground``, ``stage`` or ``prod``."""
    client_id_env: str
    client_secret_env: str
    token_url: Url | None = None
    """``{url}/identity/1.0/connect/token`` when absent."""
    connect_path: str = "/commerce/connect/4.0"
    batch_size: Annotated[int, msgspec.Meta(gt=0, le=1000)] = 500
    rate_per_second: PositiveFloat | None = None
    max_in_flight: PositiveInt = 2
    company_codes: dict[str, str] = {}
    """Business unit name -> Norce company code; a unit not listed uses its name."""
    create_companies: bool = False
    """Import missing companies first (``Customer/ImportCompanies``) and wait for that job."""
    application_key: str | None = None
    """Application uuid (``ApplicationKey``); required when ``create_companies`` or
    ``accounts`` is on."""
    accounts: bool = False
    """Also write a login account per customer, with ``role`` as its role code."""
    job_timeout_seconds: PositiveFloat = 600.0
    """A job not finished by then fails its batch; the records are tried again next pass."""
    job_queue_timeout_seconds: PositiveFloat = 3600.0
    """A job still queued (not started by Norce) after this long fails its batch, which is sent
    again next pass: a pass never waits for ever on a queue that does not move."""
    poll_initial_seconds: PositiveFloat = 0.05
    poll_max_seconds: PositiveFloat = 5.0
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


class TargetsSettings(_Section, frozen=True):
    """``[targets.*]``: a section that is absent is a target that is off."""

    syncbatch: SyncBatchSettings | None = None
    emporix: EmporixSettings | None = None
    norce: NorceSettings | None = None

    def enabled(self) -> list[str]:
        return [name for name in self.__struct_fields__ if getattr(self, name) is not None]


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


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
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
    if _CONTROL.search(value):
        raise ConfigError(f"environment variable {env_name} holds a control character", path=key)
    return Secret(value)


def _env_overrides(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__") if p]
        if not parts:
            continue
        node = data
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{name} overrides a value that is not a section")
            node = child
        try:
            value: Any = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        node[parts[-1]] = value
    return data


_UNKNOWN = re.compile(r"^Object (?:contains unknown|missing required) field `([^`]*)`")


def _path_of(message: str) -> tuple[str, str | None]:
    # msgspec says "... - at `$.targets.syncbatch.batch_size`": keep the path apart, and put
    # an unknown key at the end of it, so the path names the key itself.
    text, sep, where = message.rpartition(" - at `")
    if not sep:
        text, where = message, "$"
    path = where.rstrip("`").removeprefix("$").removeprefix(".")
    unknown = _UNKNOWN.match(text)
    if unknown:
        path = f"{path}.{unknown.group(1)}" if path else unknown.group(1)
    return text, path or None


def settings_from_mapping(
    data: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> Settings:
    """Decode settings from parsed TOML, after environment overrides.

    Raises:
        ConfigError: an unknown key, a wrong type or an out-of-range value, with its path.
    """
    merged = _env_overrides(_deep_copy(data), os.environ if environ is None else environ)
    try:
        settings = msgspec.convert(merged, Settings)
    except msgspec.ValidationError as exc:
        message, path = _path_of(str(exc))
        raise ConfigError(message, path=path) from exc
    _check_urls(settings)
    listen_address(settings.metrics.listen)
    _check_source(settings.source)
    _check_deactivation(settings)
    _check_syncbatch(settings.targets.syncbatch)
    _check_emporix(settings.targets.emporix)
    _check_norce(settings.targets.norce)
    return settings


FIRST_ELEMENT = "[0]"
"""Suffix of a field map value naming a list's first element (``addresses[0]``)."""


def check_field_maps(fields: FieldMap, address_fields: AddressFieldMap) -> None:
    """The field maps' rules: no empty key, no key read by two fields, and no list index
    but ``[0]`` on ``address``.

    Raises:
        ConfigError: naming the key (``source.fields.email``) or the map.
    """
    names = msgspec.structs.asdict(fields)
    names["address"] = names["address"].removesuffix(FIRST_ELEMENT)
    for field, key in names.items():
        if "[" in key or "]" in key:
            message = (
                'a list is named whole ("addresses") or by its first element ("addresses[0]")'
                if field == "address"
                else "only address may name a list element"
            )
            raise ConfigError(message, path=f"source.fields.{field}")
    for section, mapping in (
        ("fields", names),
        ("address_fields", msgspec.structs.asdict(address_fields)),
    ):
        seen: dict[str, str] = {}
        for field, key in mapping.items():
            if not key:
                raise ConfigError("must not be empty", path=f"source.{section}.{field}")
            if key in seen:
                raise ConfigError(
                    f"{seen[key]} and {field} are both read from key {key!r}",
                    path=f"source.{section}",
                )
            seen[key] = field


def _url_problem(url: str) -> str | None:
    # The message never quotes the URL: it may hold a password.
    if _CONTROL.search(url) or " " in url:
        return "must not hold spaces or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "is not a URL (a port out of range, or a stray bracket?)"
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "must be a whole URL starting with http:// or https://"
    if "@" in parts.netloc:
        return "must not hold a user name or password: credentials come from *_env variables"
    if not parts.hostname:
        return "must name a host"
    if port == 0:
        return "port must be within 1..65535"
    return None


def _check_urls(section: msgspec.Struct, path: str = "") -> None:
    """Every key typed :data:`Url`, in every section, follows the same rule."""
    hints = get_type_hints(type(section), include_extras=True)
    for name in section.__struct_fields__:
        value = getattr(section, name)
        key = f"{path}{name}"
        if isinstance(value, _Section):
            _check_urls(value, f"{key}.")
        elif hints[name] in (Url, Url | None) and value is not None:
            problem = _url_problem(value)
            if problem is not None:
                raise ConfigError(problem, path=key)


def _check_base_url(url: str, endpoints: tuple[str, ...], key: str) -> None:
    """A target's ``url`` is the base its endpoint paths are added to: it must not already hold
    one (its first two segments are enough to tell, ``/sync/customers``)."""
    path = urlsplit(url).path.rstrip("/") + "/"
    for endpoint in endpoints:
        lead = "/".join(endpoint.strip("/").split("/")[:2])
        if f"/{lead}/" in path:
            raise ConfigError(
                f"must be the base URL only: the pipeline adds {endpoint} itself", path=key
            )


def listen_address(listen: str) -> tuple[str, int]:
    """``[metrics] listen`` as host and port: ``host:port``, ``[ipv6]:port``, or ``:port`` for
    every interface; port 0 picks a free one.

    Raises:
        ConfigError: not of that form, or the port is not within 0..65535.
    """
    host, sep, port = listen.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    if bracketed:
        host = host[1:-1]
    if not sep or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise ConfigError("must be host:port with a port within 0..65535", path="metrics.listen")
    # An IPv6 address without brackets: which colon ends it would be a guess.
    if (":" in host and not bracketed) or any(c in host for c in "[]/@ ") or _CONTROL.search(host):
        raise ConfigError(
            "must be host:port (an IPv6 host in brackets: [::1]:9108), not a URL",
            path="metrics.listen",
        )
    return host, int(port)


def _check_deactivation(settings: Settings) -> None:
    """Deactivation trusts a read to have seen every record: with offset paging that needs an
    overlap, or one deletion between two page requests skips a live customer, who is then
    deactivated."""
    targets = settings.targets
    deactivating = [
        name
        for name in targets.enabled()
        if getattr(getattr(targets, name), "deactivate_missing", False)
    ]
    if deactivating and settings.source.paging == "offset" and settings.source.overlap == 0:
        raise ConfigError(
            f"must be at least 1 while targets.{deactivating[0]}.deactivate_missing is true: "
            "without it, a deletion at the source during a pass skips a live customer",
            path="source.overlap",
        )


def _check_range(span: tuple[int, int] | None, key: str) -> None:
    if span is not None and span[0] > span[1]:
        raise ConfigError("must be [first, last] with first <= last", path=key)


def _check_ids(syncbatch: SyncBatchSettings) -> None:
    """Ids come from a rule or a range named on purpose, never from a default."""
    key = "targets.syncbatch"
    _check_range(syncbatch.account_id_range, f"{key}.account_id_range")
    _check_range(syncbatch.organisation_id_range, f"{key}.organisation_id_range")
    if syncbatch.account_ids == "range":
        if syncbatch.account_id_range is None:
            raise ConfigError(
                'is required with account_ids = "range": the ids this feed alone may use, '
                "such as [1000000, 1999999]",
                path=f"{key}.account_id_range",
            )
        for name in ("customer_id_prefix", "account_id_offset"):
            if getattr(syncbatch, name):
                raise ConfigError(
                    'applies to account_ids = "customer_id" only', path=f"{key}.{name}"
                )
    elif syncbatch.account_id_range is not None:
        raise ConfigError('applies to account_ids = "range" only', path=f"{key}.account_id_range")
    if not syncbatch.organisation_ids and syncbatch.organisation_id_range is None:
        raise ConfigError(
            "name the organisation id of each business unit here, or set "
            "organisation_id_range (or both): ids are never counted from 1",
            path=f"{key}.organisation_ids",
        )
    owners: dict[int, str] = {}
    span = syncbatch.organisation_id_range
    for unit, number in syncbatch.organisation_ids.items():
        if not 1 <= number <= MAX_ID:
            raise ConfigError(
                f"must be an id within 1..{MAX_ID}, got {number}",
                path=f"{key}.organisation_ids.{unit}",
            )
        if number in owners:
            raise ConfigError(
                f"{owners[number]!r} and {unit!r} have the same id {number}",
                path=f"{key}.organisation_ids",
            )
        owners[number] = unit
        if span is not None and span[0] <= number <= span[1]:
            raise ConfigError(
                f"id {number} of {unit!r} lies in organisation_id_range: the range is for the "
                "units the map does not name",
                path=f"{key}.organisation_ids",
            )


def _check_syncbatch(syncbatch: SyncBatchSettings | None) -> None:
    """``url`` is the service's base; ``profile_url`` must be a whole http(s) URL that places
    the customer id; ids come from a rule or a named range."""
    if syncbatch is None:
        return
    _check_ids(syncbatch)
    _check_base_url(syncbatch.url, (SYNCBATCH_PATH,), "targets.syncbatch.url")
    url = syncbatch.profile_url
    parts = urlsplit(url.replace("{customer_id}", "id"))
    if parts.scheme not in ("http", "https") or not parts.netloc or "{customer_id}" not in url:
        raise ConfigError(
            "must be an http(s) URL holding {customer_id} "
            "(https://shop.example.com/users/{customer_id})",
            path="targets.syncbatch.profile_url",
        )


def _check_emporix(emporix: EmporixSettings | None) -> None:
    """``url`` is the API's base; mixins are opt-in, and Emporix needs their schema hosted: an
    https URL is required."""
    if emporix is None:
        return
    customers = EMPORIX_CUSTOMERS_PATH.format(tenant=emporix.tenant)
    _check_base_url(emporix.url, (customers, EMPORIX_TOKEN_PATH), "targets.emporix.url")
    if not emporix.mixins:
        return
    url = urlsplit(emporix.mixin_schema_url or "")
    if url.scheme != "https" or not url.hostname:
        raise ConfigError(
            "must be the https URL of the hosted mixin schema while mixins is true",
            path="targets.emporix.mixin_schema_url",
        )


def _check_norce(norce: NorceSettings | None) -> None:
    """``url`` is the client's base; Norce requires an ``ApplicationKey`` on every company and
    account it creates; a company code is never blank."""
    if norce is not None:
        endpoints = (norce.connect_path, NORCE_TOKEN_PATH)
        _check_base_url(norce.url, endpoints, "targets.norce.url")
    for unit, code in (norce.company_codes if norce is not None else {}).items():
        if not code.strip():
            raise ConfigError(
                "must not be blank: it is the company's code in Norce",
                path=f"targets.norce.company_codes.{unit}",
            )
    key = (norce.application_key or "").strip() if norce is not None else ""
    if norce is None or key or not (norce.create_companies or norce.accounts):
        return
    option = "create_companies" if norce.create_companies else "accounts"
    raise ConfigError(
        f"is required while targets.norce.{option} is true: Norce refuses companies and "
        "accounts without an ApplicationKey",
        path="targets.norce.application_key",
    )


def _check_source(source: SourceSettings) -> None:
    """Rules across keys of ``[source]`` (a single key's rules are in its type)."""
    check_field_maps(source.fields, source.address_fields)
    if source.paging == "page" and source.first_page is None:
        raise ConfigError(
            'is required with paging = "page" (0 or 1): a wrong guess would skip a page',
            path="source.first_page",
        )
    params = [source.limit_param, source.offset_param if source.paging == "offset" else None]
    if source.paging == "page":
        params.append(source.page_param)
    names = [p for p in params if p is not None]
    if len(set(names)) != len(names) or not all(names):
        raise ConfigError("paging parameters must be distinct and not empty", path="source")


def load_settings(path: str | Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Read and decode a TOML configuration file.

    Raises:
        ConfigError: the file is missing, is not TOML, or does not decode.
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read configuration file: {exc.strerror}", path=str(path)
        ) from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=str(path)) from exc
    return settings_from_mapping(data, environ)


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}
