"""Wire view of a MAN customer-user record (MANPINT002): only the fields we use, decoded once."""

from __future__ import annotations

import msgspec

__all__ = ["RECORD_ERRORS", "ManAddress", "ManRecord", "decode_record", "probe_customer_id"]

# What decoding one hostile record can raise: wrong types, broken JSON, invalid UTF-8 inside a
# string (msgspec checks it only when it decodes that string), nesting deeper than the stack.
RECORD_ERRORS = (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError, RecursionError)


class _Wire(msgspec.Struct, kw_only=True):
    """Base of MAN wire Structs.

    Every field is optional and loosely typed where MAN is known to be loose (flags sent as
    strings, numeric ids), so that a missing value becomes a readable validation reason
    instead of a decode error; unknown fields are ignored, a new source field never breaks a pass.
    """


class ManAddress(_Wire):
    address1: str | None = None
    address2: str | None = None
    address3: str | None = None
    zipCode: str | int | None = None
    city: str | None = None
    country: str | None = None
    iso2Code: str | None = None
    phone: str | None = None
    isDefaultBilling: bool | str | None = False
    isDefaultShipping: bool | str | None = False


class ManRecord(_Wire):
    customer_id: str | int | None = None
    salutation: str | None = None
    firstName: str | None = None
    lastName: str | None = None
    email: str | None = None
    businessUnit: str | None = None
    role: str | None = None
    address: ManAddress | None = None


class _IdProbe(msgspec.Struct):
    customer_id: str | int | None = None


_record_decoder = msgspec.json.Decoder(ManRecord)
_probe_decoder = msgspec.json.Decoder(_IdProbe)


def decode_record(raw: msgspec.Raw | bytes) -> ManRecord:
    """Decode one record.

    Raises:
        msgspec.ValidationError: a field has the wrong type; the message names the field.
        msgspec.DecodeError: the bytes are not JSON.
        UnicodeDecodeError, RecursionError: hostile bytes (all four are in RECORD_ERRORS).
    """
    return _record_decoder.decode(raw)


def probe_customer_id(raw: msgspec.Raw | bytes) -> str | None:
    """The ``customer_id`` of a record that failed to decode, when it can still be read."""
    try:
        value = _probe_decoder.decode(raw).customer_id
    except RECORD_ERRORS:
        return None
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    return text or None
