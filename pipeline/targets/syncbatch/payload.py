"""Mapping for the sync-batch target (pure): a Customer becomes an Account of its organisation.

DESIGN §5: one organisation (a ServiceStack "Customer") per business unit, each MAN customer a
user account of it; integer ids for both come from the configured rule or range
(:mod:`pipeline.targets.syncbatch.ids`); ``profileUrl`` from a template; ``roles`` = [role];
``permissions`` from configuration.
"""

from __future__ import annotations

import functools
import re
from typing import Any
from urllib.parse import quote

import msgspec

from pipeline.records import Customer
from pipeline.targets.syncbatch.settings import SyncBatchSettings

__all__ = [
    "SbAccount",
    "SbCustomer",
    "SbErrorResponse",
    "SbFieldError",
    "SbRequest",
    "SbResponseStatus",
    "SbResult",
    "SbResultAccount",
    "SbResultCustomer",
    "map_account",
    "profile_url",
    "read_error",
    "read_results",
]


class _Dto(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True, gc=False):
    """Base of the sync-batch DTOs: camelCase on the wire, empty optional fields left out."""


class SbAccount(_Dto):
    id: int
    index: int
    """Position in its customer's ``accounts``; required on the wire, set per request."""
    ref_id: int
    ref_id_str: str
    user_name: str
    email: str
    primary_email: str
    first_name: str
    last_name: str
    display_name: str
    full_name: str
    company: str
    profile_url: str
    roles: list[str]
    permissions: list[str]
    phone_number: str | None = None
    address: str | None = None
    address2: str | None = None
    city: str | None = None
    country: str | None = None
    postal_code: str | None = None
    locked_date: str | None = None
    """Set only to deactivate an account whose customer left the source."""
    meta: dict[str, str] = {}


class SbCustomer(_Dto):
    id: int
    index: int
    name: str
    type: str
    accounts: list[SbAccount]


class SbRequest(_Dto):
    customers: list[SbCustomer]


class _Answer(msgspec.Struct, kw_only=True, rename="camel", gc=False):
    """Base of what the service answers: camelCase on the wire, as ServiceStack writes on .NET
    Core. Its other hosts write PascalCase: :func:`read_results` and :func:`read_error` read
    those too, by folding the keys (a slower path, taken only when the fast one finds no key
    it knows)."""


class SbFieldError(_Answer):
    error_code: str | None = None
    field_name: str | None = None
    message: str | None = None


class SbResponseStatus(_Answer):
    error_code: str | None = None
    message: str | None = None
    errors: list[SbFieldError] = []

    @property
    def failed(self) -> bool:
        """An error code names a failure; none, or an empty one, is success, unless field
        errors come with it (a status that contradicts itself is not read as success)."""
        return bool(self.error_code) or bool(self.errors)


class SbResultAccount(_Answer):
    id: int | None = None
    user_name: str | None = None
    ref_id: int | None = None
    meta: msgspec.Raw = msgspec.Raw(b"null")
    """Left undecoded (it is read only for an account in question, see :meth:`customer_id`)."""

    def customer_id(self) -> str | None:
        """The MAN customer id this account was written for (``meta.customerId``), if echoed."""
        try:
            meta = msgspec.json.decode(self.meta, type=dict[str, str | None] | None)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        for key, value in (meta or {}).items():
            if key.replace("_", "").lower() == "customerid":
                return value
        return None


class SbResultCustomer(_Answer):
    id: int | None = None
    name: str | None = None
    accounts: list[SbResultAccount] = []
    """The accounts as the service holds them, when it echoes them: an account whose
    ``userName`` is not the one sent under its id is someone else's (an id conflict)."""


class SbResult(_Answer):
    index: int | None = None
    """Left out by a host with ``ExcludeDefaultValues`` when it is 0."""
    customer: SbResultCustomer | None = None
    response_status: SbResponseStatus | None = None

    @property
    def blank(self) -> bool:
        """Nothing known was read: the answer's keys are in another casing, or it is empty."""
        return self.index is None and self.customer is None and self.response_status is None


class SbErrorResponse(_Answer):
    response_status: SbResponseStatus | None = None


def _camel_names() -> dict[str, str]:
    """Every answer field's key folded (lower case, no "_") -> its camelCase key."""
    names: dict[str, str] = {}
    for kind in (SbFieldError, SbResponseStatus, SbResultAccount, SbResultCustomer, SbResult):
        for field in msgspec.structs.fields(kind):
            names[field.encode_name.lower()] = field.encode_name
    return names


_CAMEL = _camel_names()


def _camel(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: msgspec.Raw(msgspec.json.encode(v)) if key == "meta" else _camel(v)
            for key, v in ((_key(k), v) for k, v in value.items())
        }
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


def _key(key: object) -> str:
    folded = str(key).replace("_", "").lower()
    return _CAMEL.get(folded, folded)


_results = msgspec.json.Decoder(list[SbResult])
_error = msgspec.json.Decoder(SbErrorResponse)


def read_results(body: bytes) -> list[SbResult]:
    """The per-item results of a 200, whatever the casing of their keys.

    Raises:
        msgspec.DecodeError, msgspec.ValidationError: not JSON, or not of that shape.
    """
    results = _results.decode(body)
    if any(r.blank for r in results):
        results = msgspec.convert(_camel(msgspec.json.decode(body)), list[SbResult])
    return results


def read_error(body: bytes) -> SbResponseStatus | None:
    """The ``responseStatus`` of an error answer, whatever the casing of its keys.

    Raises:
        msgspec.DecodeError, msgspec.ValidationError: not JSON, or not of that shape.
    """
    status = _error.decode(body).response_status
    if status is None:
        status = msgspec.convert(_camel(msgspec.json.decode(body)), SbErrorResponse).response_status
    return status


def _or_none(text: str) -> str | None:
    return text or None


_URL_SAFE = re.compile(r"^[A-Za-z0-9_.~-]+$")


@functools.lru_cache(maxsize=8)
def _template(template: str) -> tuple[str, str] | None:
    head, found, tail = template.partition("{customer_id}")
    return (head, tail) if found else None


def profile_url(template: str, customer_id: str) -> str:
    """The template with the customer id in it, URL-quoted when it needs to be."""
    parts = _template(template)
    if parts is None:
        return template
    head, tail = parts
    if _URL_SAFE.match(customer_id) is None:
        customer_id = quote(customer_id, safe="")
    return head + customer_id + tail


def map_account(
    customer: Customer, account_id: int, organisation_id: int, settings: SyncBatchSettings
) -> SbAccount:
    """The account payload of one customer; ``index`` is set when a request is built."""
    name = f"{customer.first_name} {customer.last_name}"
    meta = {"customerId": customer.customer_id}
    if customer.salutation:
        meta["salutation"] = customer.salutation
    address = customer.address
    if address is not None:
        if address.line3:
            meta["address3"] = address.line3
        meta["isDefaultBilling"] = "true" if address.default_billing else "false"
        meta["isDefaultShipping"] = "true" if address.default_shipping else "false"
    return SbAccount(
        id=account_id,
        index=0,
        ref_id=organisation_id,
        ref_id_str=str(organisation_id),
        user_name=customer.email,
        email=customer.email,
        primary_email=customer.email,
        first_name=customer.first_name,
        last_name=customer.last_name,
        display_name=name,
        full_name=name,
        company=customer.business_unit,
        profile_url=profile_url(settings.profile_url, customer.customer_id),
        roles=[customer.role] if customer.role else [],
        permissions=list(settings.permissions),
        phone_number=_or_none(address.phone) if address else None,
        address=_or_none(address.line1) if address else None,
        address2=_or_none(address.line2) if address else None,
        city=_or_none(address.city) if address else None,
        country=address.iso2 if address else None,
        postal_code=_or_none(address.zip_code) if address else None,
        meta=meta,
    )
