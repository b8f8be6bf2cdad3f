"""Mapping for the Emporix target (pure): a Customer becomes a customer body and an address.

Spec §9 and DESIGN §5: the MAN ``customer_id`` is the Emporix customer number (a custom id),
so ``PUT`` is an idempotent upsert; the one MAN address gets the stable id
``<customer_id>-default``; ``role`` and ``businessUnit`` go into a mixin when mixins are on.
The customer is sent as a JSON merge patch (RFC 7396): fields the pipeline does not own
(``preferredLanguage``, ``b2b``, other mixins...) stay as Emporix holds them.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from pipeline.records import Customer
from pipeline.targets.emporix.settings import EmporixSettings
from pipeline.transform.hashing import payload_hash

__all__ = [
    "ADDRESS_SUFFIX",
    "EmxAddress",
    "EmxCustomer",
    "EmxMetadata",
    "EmxPayload",
    "address_id",
    "address_part_changed",
    "customer_part_changed",
    "had_address",
    "map_customer",
    "merge_patch",
    "title_of",
    "valid_customer_number",
]

ADDRESS_SUFFIX = "-default"
# Customer fields the pipeline owns that it may leave empty: a merge patch sends them as null.
_CLEARABLE = ("title", "contactPhone", "company")
_NUMBER = re.compile(r"^[A-Za-z0-9_-]{1,66}$")
_TITLES = {
    "mr": "MR",
    "herr": "MR",
    "ms": "MS",
    "mrs": "MRS",
    "frau": "MS",
    "dr": "DR",
    "prof": "PROF",
}
_HALF = 8  # bytes of the hash for the customer part, and as many for the address part


class _Dto(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Base of Emporix bodies: wire names as the API spells them, empty fields left out."""


class EmxMetadata(_Dto):
    mixins: dict[str, str] = {}
    version: int | None = None


class EmxCustomer(_Dto):
    contactEmail: str
    firstName: str
    lastName: str
    title: str | None = None
    contactPhone: str | None = None
    company: str | None = None
    active: bool | None = None
    """Sent true: a customer deactivated when it left the source comes back active."""
    mixins: dict[str, dict[str, str]] = {}
    metadata: EmxMetadata | None = None


class EmxAddress(_Dto):
    contactName: str
    country: str
    street: str | None = None
    streetAppendix: str | None = None
    extraLine1: str | None = None
    zipCode: str | None = None
    city: str | None = None
    contactPhone: str | None = None
    tags: list[str] = []
    isDefault: bool = False
    metadata: EmxMetadata | None = None


class EmxPayload(msgspec.Struct, frozen=True):
    """What one record needs in Emporix: the customer, and its address when MAN has one."""

    customer_number: str
    customer: EmxCustomer
    address: EmxAddress | None

    def hash(self) -> bytes:
        """Two halves: the customer's and the address's, so a change sends only its part."""
        customer = payload_hash(_encoder.encode(self.customer))[:_HALF]
        if self.address is None:
            return customer + bytes(_HALF)
        return customer + payload_hash(_encoder.encode(self.address))[:_HALF]


_encoder = msgspec.json.Encoder()


def customer_part_changed(previous: bytes | None, current: bytes) -> bool:
    return previous is None or previous[:_HALF] != current[:_HALF]


def address_part_changed(previous: bytes | None, current: bytes) -> bool:
    return previous is None or previous[_HALF:] != current[_HALF:]


def had_address(previous: bytes | None) -> bool:
    return previous is not None and previous[_HALF:] != bytes(_HALF)


def valid_customer_number(customer_id: str) -> bool:
    """Whether Emporix takes ``customer_id`` as a custom customer number (1-66 of [A-Za-z0-9_-])."""
    return _NUMBER.match(customer_id) is not None


def merge_patch(customer: EmxCustomer) -> dict[str, Any]:
    """The customer as a merge patch: owned fields left empty are sent null (removed)."""
    patch: dict[str, Any] = msgspec.to_builtins(customer)
    for name in _CLEARABLE:
        patch.setdefault(name, None)
    return patch


def address_id(customer_id: str) -> str:
    """The stable id of the customer's one address: re-runs update it instead of adding one."""
    return customer_id + ADDRESS_SUFFIX


def title_of(salutation: str) -> str | None:
    """``Herr`` -> ``MR``, ``Frau`` -> ``MS``, ``Dr.`` -> ``DR``; unknown ones upper-cased."""
    key = salutation.strip().rstrip(".").lower()
    if not key:
        return None
    return _TITLES.get(key, re.sub(r"[^A-Z0-9]", "", key.upper())[:20] or None)


def _or_none(text: str) -> str | None:
    return text or None


def map_customer(customer: Customer, settings: EmporixSettings) -> EmxPayload:
    """The Emporix bodies of one customer."""
    address = customer.address
    phone = address.phone if address is not None and address.phone else None
    body = EmxCustomer(
        contactEmail=customer.email,
        firstName=customer.first_name,
        lastName=customer.last_name,
        title=title_of(customer.salutation),
        contactPhone=phone,
        company=_or_none(customer.business_unit),
        active=True,
    )
    if settings.mixins and settings.mixin_schema_url:
        mixin = {"role": customer.role, "businessUnit": customer.business_unit}
        body.mixins = {settings.mixin_name: mixin}
        body.metadata = EmxMetadata(mixins={settings.mixin_name: settings.mixin_schema_url})
    emx_address = None
    if address is not None:
        tags = [
            tag
            for tag, on in (
                ("BILLING", address.default_billing),
                ("SHIPPING", address.default_shipping),
            )
            if on
        ]
        emx_address = EmxAddress(
            contactName=f"{customer.first_name} {customer.last_name}",
            country=address.iso2,
            street=_or_none(address.line1),
            streetAppendix=_or_none(address.line2),
            extraLine1=_or_none(address.line3),
            zipCode=_or_none(address.zip_code),
            city=_or_none(address.city),
            contactPhone=phone,
            tags=tags,
            isDefault=bool(tags),
        )
    return EmxPayload(customer.customer_id, body, emx_address)
