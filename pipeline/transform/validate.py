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
    iso2 = (raw.iso2Code or "").strip()
    if not iso2:
        raise Invalid("address.iso2Code is missing")
    if not _ISO2.match(iso2):
        raise Invalid(f"address.iso2Code {iso2[:8]!r} is not an ISO 3166-1 alpha-2 code")
    zip_code = raw.zipCode if isinstance(raw.zipCode, str) else str(raw.zipCode or "")
    return Address(
        line1=_text(raw.address1, "address.address1", required=False),
        line2=_text(raw.address2, "address.address2", required=False),
        line3=_text(raw.address3, "address.address3", required=False),
        zip_code=_text(zip_code, "address.zipCode", required=False),
        city=_text(raw.city, "address.city", required=False),
        country=_text(raw.country, "address.country", required=False),
        iso2=iso2.upper(),
        phone=_text(raw.phone, "address.phone", required=False),
        default_billing=_flag(raw.isDefaultBilling, "address.isDefaultBilling"),
        default_shipping=_flag(raw.isDefaultShipping, "address.isDefaultShipping"),
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


def validate(raw: ManRecord, customer_id: str) -> Customer:
    """Check every rule on one record and return its canonical form.

    Raises:
        Invalid: the first rule the record breaks.
    """
    email = _text(raw.email, "email", required=True)
    if len(email) > MAX_EMAIL_LENGTH or not _EMAIL.match(email) or _CONTROL.search(email):
        raise Invalid("email is malformed")
    return Customer(
        customer_id=customer_id,
        salutation=_text(raw.salutation, "salutation", required=False),
        first_name=_text(raw.firstName, "firstName", required=True),
        last_name=_text(raw.lastName, "lastName", required=True),
        email=email_key(email),
        business_unit=_text(raw.businessUnit, "businessUnit", required=True),
        role=_text(raw.role, "role", required=False),
        address=_address(raw.address) if raw.address is not None else None,
    )
