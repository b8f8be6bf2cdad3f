"""Wire view of a MAN customer-user record (MANPINT002): only the fields we use, decoded once.

The interface document leaves the real field names open, so the JSON keys come from
``[source.fields]`` and ``[source.address_fields]``. A :class:`RecordDecoder` is built once
from them: its Structs keep the document's names as Python attributes and read the
configured names from JSON, so nothing downstream knows the names were different.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from msgspec.structs import fields as struct_fields

from pipeline.config import AddressFieldMap, AddressPick, FieldMap, SourceSettings
from pipeline.config_load import FIRST_ELEMENT, check_field_maps

__all__ = [
    "DEFAULT_DECODER",
    "RECORD_ERRORS",
    "ManAddress",
    "ManRecord",
    "RecordDecoder",
    "decode_record",
    "probe_customer_id",
]

# What decoding one hostile record can raise: wrong types, broken JSON, invalid UTF-8 inside a
# string (msgspec checks it only when it decodes that string), nesting deeper than the stack.
RECORD_ERRORS = (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError, RecursionError)


class _Wire(msgspec.Struct, kw_only=True):
    """Base of MAN wire Structs.

    Every field is optional and loosely typed where MAN is known to be loose (flags sent as
    strings or numbers, numeric ids, one address or a list of them), so that a missing or odd
    value becomes a readable validation reason instead of a decode error; unknown fields are
    ignored, a new source field never breaks a pass.
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
    # Any JSON value: validation accepts the boolean spellings and names the field otherwise.
    isDefaultBilling: object = False
    isDefaultShipping: object = False


class ManRecord(_Wire):
    customer_id: str | int | None = None
    salutation: str | None = None
    firstName: str | None = None
    lastName: str | None = None
    email: str | None = None
    businessUnit: str | None = None
    role: str | None = None
    address: ManAddress | list[ManAddress] | None = None


class _IdProbe(msgspec.Struct):
    customer_id: str | int | None = None


def _renames(names: dict[str, str]) -> dict[str, str]:
    """The map's renamed entries (the maps were checked by ``check_field_maps``)."""
    return {field: key for field, key in names.items() if field != key}


def _renamed(base: type[msgspec.Struct], rename: dict[str, str], **types: Any) -> Any:
    # Every field is declared again: msgspec applies `rename` only to a class's own fields.
    # The subclass stays a `base`, so everything typed against `base` takes it unchanged.
    declared = [(f.name, types.get(f.name, f.type), f.default) for f in struct_fields(base)]
    return msgspec.defstruct(
        f"{base.__name__.lstrip('_')}Renamed", declared, bases=(base,), rename=rename, kw_only=True
    )


class RecordDecoder:
    """Decodes MAN records whose keys are named as configured; build once, use for every page.

    ``pick`` is the rule that chooses the customer's address from a list (``"first"`` when
    the field map names the list's first element, ``"addresses[0]"``).
    """

    __slots__ = ("_probe", "address_fields", "decode", "fields", "pick")

    decode: Callable[[msgspec.Raw | bytes], ManRecord]
    """Decode one record (msgspec's own decoder: no Python call between it and the bytes).

    Raises ``msgspec.ValidationError`` (a field has the wrong type; the message names it by its
    JSON key), ``msgspec.DecodeError`` (not JSON), ``UnicodeDecodeError`` or ``RecursionError``
    (hostile bytes): all four are in RECORD_ERRORS.
    """

    def __init__(
        self,
        fields: FieldMap | None = None,
        address_fields: AddressFieldMap | None = None,
        pick: AddressPick = "billing",
    ) -> None:
        """Build the decoders.

        Raises:
            ConfigError: a key is empty, is read by two fields, or holds an index other than
                ``[0]`` (which only ``address`` may hold).
        """
        self.fields = fields = fields if fields is not None else FieldMap()
        self.address_fields = address_fields = (
            address_fields if address_fields is not None else AddressFieldMap()
        )
        check_field_maps(fields, address_fields)
        names = msgspec.structs.asdict(fields)
        if names["address"].endswith(FIRST_ELEMENT):
            names["address"] = names["address"].removesuffix(FIRST_ELEMENT)
            pick = "first"
        self.pick: AddressPick = pick
        record_rename = _renames(names)
        address_rename = _renames(msgspec.structs.asdict(address_fields))
        address: Any = ManAddress
        if address_rename:
            address = _renamed(ManAddress, address_rename)
        record: Any = ManRecord
        if record_rename or address is not ManAddress:
            record = _renamed(ManRecord, record_rename, address=address | list[address] | None)
        probe: Any = _IdProbe
        if "customer_id" in record_rename:
            probe = _renamed(_IdProbe, {"customer_id": record_rename["customer_id"]})
        self.decode = msgspec.json.Decoder(record).decode
        self._probe: msgspec.json.Decoder[_IdProbe] = msgspec.json.Decoder(probe)

    @classmethod
    def from_settings(cls, source: SourceSettings) -> RecordDecoder:
        """The decoder of ``source.fields``, ``source.address_fields`` and ``source.address_pick``.

        Raises:
            ConfigError: as the constructor.
        """
        return cls(source.fields, source.address_fields, source.address_pick)

    def probe_customer_id(self, raw: msgspec.Raw | bytes) -> str | None:
        """The ``customer_id`` of a record that failed to decode, when it can still be read."""
        try:
            value = self._probe.decode(raw).customer_id
        except RECORD_ERRORS:
            return None
        if value is None or isinstance(value, bool):
            return None
        text = str(value).strip()
        return text or None

    def _key(self) -> tuple[FieldMap, AddressFieldMap, AddressPick]:
        return (self.fields, self.address_fields, self.pick)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RecordDecoder):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"RecordDecoder(fields={self.fields!r}, address_fields={self.address_fields!r}, "
            f"pick={self.pick!r})"
        )


DEFAULT_DECODER = RecordDecoder()
"""The interface document's names (MANPINT002), the default billing address from a list."""


def decode_record(raw: msgspec.Raw | bytes) -> ManRecord:
    """Decode one record with the document's field names (:data:`DEFAULT_DECODER`)."""
    return DEFAULT_DECODER.decode(raw)


def probe_customer_id(raw: msgspec.Raw | bytes) -> str | None:
    """The ``customer_id`` of a record that failed to decode, read as :data:`DEFAULT_DECODER`."""
    return DEFAULT_DECODER.probe_customer_id(raw)
