"""Validation: one decoded MAN record becomes a canonical Customer or a reason (pure, no I/O).

Reasons name the field and the rule, never the value, except for values that are not personal
data (a country code).
"""

from __future__ import annotations

import re

from pipeline.config import AddressPick
from pipeline.records import Address, Customer
from pipeline.transform.countries import iso2_code, iso2_of_country
from pipeline.transform.wire import ManAddress, ManRecord

__all__ = ["SUSPECT", "Invalid", "customer_id_of", "email_key", "validate"]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_ISO2 = re.compile(r"^[A-Za-z]{2}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
"""C0 and C1 control characters: never in a field (they would reach a terminal, see
:mod:`pipeline.text`)."""
SUSPECT = re.compile(rb"[\\\x7f\xc2]")
"""Bytes without which a JSON record cannot hold a control character: an escape, DEL, or the
UTF-8 lead byte of U+0080..U+00BF. A record without any skips the per-field check."""
MAX_ID_LENGTH = 64
MAX_EMAIL_LENGTH = 254
MAX_FIELD_LENGTH = 1000
_TEXT_FIELDS = ("salutation", "firstName", "lastName", "email", "businessUnit", "role")
_ADDRESS_FIELDS = ("address1", "address2", "address3", "zipCode", "city", "country", "phone")
_ADDRESS_TEXT = (*_ADDRESS_FIELDS, "iso2Code")
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no", ""})


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


def _flag(value: object, field: str) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if value in (0, 1):
            return value == 1
    elif isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    raise Invalid(f"{field} is not a boolean")


def _is_blank(raw: ManAddress) -> bool:
    """Every field null, absent or empty, and no flag set: no address at all."""
    for field in _ADDRESS_TEXT:
        value = getattr(raw, field)
        if value is not None and (not isinstance(value, str) or value.strip()):
            return False
    try:
        return not (_flag(raw.isDefaultBilling, "") or _flag(raw.isDefaultShipping, ""))
    except Invalid:
        return False


def _iso2_of(country: str | None) -> str:
    # Only for an address without a code: the country name is the code's last chance.
    name = (country or "").strip()
    if not name:
        raise Invalid("address.iso2Code is missing")
    code = iso2_of_country(name)
    if code is None:
        raise Invalid(
            "address.iso2Code is missing and address.country does not name a known country"
        )
    return code


def _address(raw: ManAddress) -> Address | None:
    # The hot path: the wire Struct bounded every length already; only trimming is left.
    iso2 = (raw.iso2Code or "").strip()
    if not iso2:
        if _is_blank(raw):
            return None
        iso2 = _iso2_of(raw.country)
    else:
        code = iso2_code(iso2) if _ISO2.match(iso2) else None
        if code is None:
            # A code-like value is quoted (it is no personal data); anything longer is not.
            shown = f" {iso2!r}" if len(iso2) <= 3 and iso2.isascii() and iso2.isalnum() else ""
            raise Invalid(f"address.iso2Code{shown} is not an ISO 3166-1 alpha-2 code")
        iso2 = code
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


def _pick(addresses: list[ManAddress], pick: AddressPick) -> ManAddress | None:
    """The customer's address among several: blank ones are none; then by ``pick``."""
    candidates = [a for a in addresses if not _is_blank(a)]
    if len(candidates) <= 1 or pick == "first":
        return candidates[0] if candidates else None
    billing = [a for a in candidates if _flag(a.isDefaultBilling, "address.isDefaultBilling")]
    shipping = [a for a in candidates if _flag(a.isDefaultShipping, "address.isDefaultShipping")]
    for flagged in (billing, shipping) if pick == "billing" else (shipping, billing):
        if flagged:
            return flagged[0]
    return candidates[0]


def _address_of(value: ManAddress | list[ManAddress] | None, pick: AddressPick) -> Address | None:
    if value is None:
        return None
    if isinstance(value, list):
        picked = _pick(value, pick)
        return _address(picked) if picked is not None else None
    return _address(value)


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


def _check_controls(raw: ManRecord) -> None:
    """No control character inside a field (around it, whitespace is trimmed anyway; the
    country code has its own rule)."""
    for field in _TEXT_FIELDS:
        value = getattr(raw, field)
        if isinstance(value, str) and _CONTROL.search(value.strip()):
            raise Invalid(f"{field} holds a control character")
    address = raw.address
    for item in [address] if isinstance(address, ManAddress) else address or ():
        for field in _ADDRESS_FIELDS:
            value = getattr(item, field)
            if isinstance(value, str) and _CONTROL.search(value.strip()):
                raise Invalid(f"address.{field} holds a control character")


def _check_lengths(raw: ManRecord) -> None:
    for field in _TEXT_FIELDS:
        value = getattr(raw, field)
        if isinstance(value, str) and len(value.strip()) > MAX_FIELD_LENGTH:
            raise Invalid(f"{field} is longer than {MAX_FIELD_LENGTH} characters")
    address = raw.address
    for item in [address] if isinstance(address, ManAddress) else address or ():
        for field in _ADDRESS_FIELDS:
            value = getattr(item, field)
            if isinstance(value, str) and len(value.strip()) > MAX_FIELD_LENGTH:
                raise Invalid(f"address.{field} is longer than {MAX_FIELD_LENGTH} characters")


def validate(
    raw: ManRecord,
    customer_id: str,
    *,
    size: int | None = None,
    pick: AddressPick = "billing",
    suspect: bool = True,
) -> Customer:
    """Check every rule on one record and return its canonical form.

    ``size`` is the record's length in bytes when known: a record no longer than
    ``MAX_FIELD_LENGTH`` cannot hold a field that is, so the per-field length checks are skipped.
    ``pick`` chooses the address when the record holds a list of them (``RecordDecoder.pick``).
    ``suspect`` false says the record's bytes cannot hold a control character (see
    :data:`SUSPECT`), so the per-field check for them is skipped.

    Raises:
        Invalid: the first rule the record breaks.
    """
    if size is None or size > MAX_FIELD_LENGTH:
        _check_lengths(raw)
    if suspect:
        _check_controls(raw)
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
        address=_address_of(raw.address, pick),
    )
