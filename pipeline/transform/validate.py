"""Validation: one decoded MAN record becomes a canonical Customer or a reason (pure, no I/O).

Reasons name the field and the rule, never the value, except for values that are not personal
data (a country code).
"""

from __future__ import annotations

import re

from pipeline.records import Address, Customer
from pipeline.transform.wire import ManAddress, ManRecord

__all__ = ["Invalid", "customer_id_of", "email_key", "validate"]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_ISO2 = re.compile(r"^[A-Za-z]{2}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_ID_LENGTH = 64
MAX_EMAIL_LENGTH = 254
MAX_FIELD_LENGTH = 1000


class Invalid(ValueError):
    """A record broke a rule; the message is the dead-letter reason."""


def email_key(email: str) -> str:
    """The form in which emails are compared: trimmed and lower-cased."""
    return email.strip().lower()


def _text(value: str | None, field: str, *, required: bool) -> str:
    if value is None:
        if required:
            raise Invalid(f"{field} is missing")
        return ""
    text = value.strip()
    if required and not text:
        raise Invalid(f"{field} is empty")
    if len(text) > MAX_FIELD_LENGTH:
        raise Invalid(f"{field} is longer than {MAX_FIELD_LENGTH} characters")
    return text


def _flag(value: bool | str | None, field: str) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no", ""):
        return False
    raise Invalid(f"{field} is not a boolean")


def _address(raw: ManAddress) -> Address:
    # The hot path: the wire Struct bounded every length already; only trimming is left.
    iso2 = (raw.iso2Code or "").strip()
    if not iso2:
        raise Invalid("address.iso2Code is missing")
    if not _ISO2.match(iso2):
        raise Invalid(f"address.iso2Code {iso2[:8]!r} is not an ISO 3166-1 alpha-2 code")
    zip_code = raw.zipCode
    billing, shipping = raw.isDefaultBilling, raw.isDefaultShipping
    if not isinstance(billing, bool):
        billing = _flag(billing, "address.isDefaultBilling")
    if not isinstance(shipping, bool):
        shipping = _flag(shipping, "address.isDefaultShipping")
    return Address(
        line1=(raw.address1 or "").strip(),
        line2=(raw.address2 or "").strip(),
        line3=(raw.address3 or "").strip(),
        zip_code=zip_code.strip() if isinstance(zip_code, str) else str(zip_code or ""),
        city=(raw.city or "").strip(),
        country=(raw.country or "").strip(),
        iso2=iso2.upper(),
        phone=(raw.phone or "").strip(),
        default_billing=billing,
        default_shipping=shipping,
    )


def customer_id_of(raw: ManRecord) -> str:
    """The record's id as text.

    Raises:
        Invalid: missing, empty, too long or holding control characters.
    """
    value = raw.customer_id
    if value is None:
        raise Invalid("customer_id is missing")
    text = str(value).strip()
    if not text:
        raise Invalid("customer_id is empty")
    if len(text) > MAX_ID_LENGTH or _CONTROL.search(text):
        raise Invalid("customer_id is too long or holds control characters")
    return text


_TEXT_FIELDS = ("salutation", "firstName", "lastName", "email", "businessUnit", "role")
_ADDRESS_FIELDS = ("address1", "address2", "address3", "zipCode", "city", "country", "phone")


def _check_lengths(raw: ManRecord) -> None:
    for field in _TEXT_FIELDS:
        value = getattr(raw, field)
        if isinstance(value, str) and len(value.strip()) > MAX_FIELD_LENGTH:
            raise Invalid(f"{field} is longer than {MAX_FIELD_LENGTH} characters")
    if raw.address is not None:
        for field in _ADDRESS_FIELDS:
            value = getattr(raw.address, field)
            if isinstance(value, str) and len(value.strip()) > MAX_FIELD_LENGTH:
                raise Invalid(f"address.{field} is longer than {MAX_FIELD_LENGTH} characters")


def validate(raw: ManRecord, customer_id: str, *, size: int | None = None) -> Customer:
    """Check every rule on one record and return its canonical form.

    ``size`` is the record's length in bytes when known: a record no longer than
    ``MAX_FIELD_LENGTH`` cannot hold a field that is, so the per-field length checks are skipped.

    Raises:
        Invalid: the first rule the record breaks.
    """
    if size is None or size > MAX_FIELD_LENGTH:
        _check_lengths(raw)
    email = _text(raw.email, "email", required=True)
    if len(email) > MAX_EMAIL_LENGTH or not _EMAIL.match(email) or _CONTROL.search(email):
        raise Invalid("email is malformed")
    return Customer(
        customer_id=customer_id,
        salutation=(raw.salutation or "").strip(),
        first_name=_text(raw.firstName, "firstName", required=True),
        last_name=_text(raw.lastName, "lastName", required=True),
        email=email_key(email),
        business_unit=_text(raw.businessUnit, "businessUnit", required=True),
        role=(raw.role or "").strip(),
        address=_address(raw.address) if raw.address is not None else None,
    )
