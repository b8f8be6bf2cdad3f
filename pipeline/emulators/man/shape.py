"""Wire shape of the MAN emulator's answers: records rewritten on the way out, and the envelope.

Pure functions: the Dataset stays canonical (MANPINT002 names and types) and each served
record is rewritten here into the shape the configured server variant sends.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal, Protocol

__all__ = [
    "ADDRESS_FIELDS",
    "DECOY_LINE",
    "RECORD_FIELDS",
    "EnvelopeShape",
    "FlagStyle",
    "RecordShape",
    "check_envelope",
    "check_record_shape",
    "envelope_body",
    "set_path",
    "shape_record",
]

RECORD_FIELDS = (
    "customer_id",
    "salutation",
    "firstName",
    "lastName",
    "email",
    "businessUnit",
    "role",
    "address",
)
"""Top-level keys of a record, as MANPINT002 names them."""

ADDRESS_FIELDS = (
    "address1",
    "address2",
    "address3",
    "zipCode",
    "city",
    "country",
    "iso2Code",
    "phone",
    "isDefaultBilling",
    "isDefaultShipping",
)
"""Keys of the address object, as MANPINT002 names them."""

DECOY_LINE = "Lager {n}"
"""`address1` of the n-th decoy address (1-based); every other field copies the real one."""

FlagStyle = Literal["bool", "int", "string"]
"""How the two default flags are sent: true/false, 1/0 or "true"/"false"."""

_FLAGS = ("isDefaultBilling", "isDefaultShipping")
_KEY = re.compile(r"[^.\[\]\s]+")
_PATH = re.compile(r"[^.\[\]\s]+(\.[^.\[\]\s]+)*")


class RecordShape(Protocol):
    """The record part of the emulator's configuration (`ManEmulatorConfig` has it)."""

    @property
    def field_names(self) -> Mapping[str, str]: ...
    @property
    def address_field_names(self) -> Mapping[str, str]: ...
    @property
    def flags(self) -> FlagStyle: ...
    @property
    def address_list(self) -> bool: ...
    @property
    def address_decoys(self) -> int: ...
    @property
    def iso2_null(self) -> bool: ...
    @property
    def null_addresses(self) -> tuple[int, int] | None: ...
    @property
    def no_email(self) -> tuple[int, int] | None: ...


class EnvelopeShape(Protocol):
    """The envelope part of the emulator's configuration (`ManEmulatorConfig` has it)."""

    @property
    def envelope(self) -> Literal["object", "array"]: ...
    @property
    def data_path(self) -> str: ...
    @property
    def total_path(self) -> str: ...


def _within(span: tuple[int, int] | None, position: int) -> bool:
    return span is not None and span[0] <= position < span[1]


def _flag(value: Any, style: FlagStyle) -> Any:
    """A boolean flag in `style`; anything that is not a bool (a seeded quirk) is left alone."""
    if type(value) is not bool or style == "bool":
        return value
    if style == "int":
        return int(value)
    return "true" if value else "false"


def shape_record(record: dict[str, Any], position: int, shape: RecordShape) -> dict[str, Any]:
    """Rewrite the canonical `record` served at `position` into the configured wire shape.

    In order: the email is dropped inside `no_email`; inside `null_addresses` the address
    becomes an object whose every field is null; `iso2_null` nulls `iso2Code`; the flags
    take the `flags` style; with `address_list` the address becomes a list (a null address
    an empty one, an absent one stays absent) with `address_decoys` copies appended after
    it, both flags false and `address1` from `DECOY_LINE`; last the address keys and then
    the record keys are renamed. `record` must be the caller's own copy: it may be changed.
    """
    if _within(shape.no_email, position):
        record.pop("email", None)
    if _within(shape.null_addresses, position):
        record["address"] = dict.fromkeys(ADDRESS_FIELDS)
    address = record.get("address")
    if isinstance(address, dict):
        if shape.iso2_null:
            address["iso2Code"] = None
        for flag in _FLAGS:
            if flag in address:
                address[flag] = _flag(address[flag], shape.flags)
    if shape.address_list and "address" in record:
        if address is None:
            record["address"] = []
        elif isinstance(address, dict):
            decoys = [
                {
                    **address,
                    "address1": DECOY_LINE.format(n=n),
                    **dict.fromkeys(_FLAGS, _flag(False, shape.flags)),
                }
                for n in range(1, shape.address_decoys + 1)
            ]
            record["address"] = [address, *decoys]
        elif not isinstance(address, list):
            record["address"] = [address]
    renames = shape.address_field_names
    if renames:
        value = record.get("address")
        addresses = value if isinstance(value, list) else [value]
        for index, item in enumerate(addresses):
            if isinstance(item, dict):
                addresses[index] = {renames.get(key, key): field for key, field in item.items()}
        if isinstance(value, dict):
            record["address"] = addresses[0]
    if shape.field_names:
        names = shape.field_names
        return {names.get(key, key): field for key, field in record.items()}
    return record


def set_path(target: dict[str, Any], path: str, value: Any) -> None:
    """Set the dotted `path` ("result.data") in `target`, creating the objects on the way."""
    *parents, last = path.split(".")
    for key in parents:
        target = target.setdefault(key, {})
    target[last] = value


def envelope_body(
    data: list[dict[str, Any]] | None,
    *,
    total: int,
    echo: Mapping[str, int],
    shape: EnvelopeShape,
) -> Any:
    """The JSON body of a page: the bare list, or an object with the list at `data_path`,
    the `echo` keys (the page asked for) beside it when `data_path` is "data", and `total`
    at `total_path` unless that is "". `data` None stands for a null list."""
    if shape.envelope == "array":
        return data
    body: dict[str, Any] = {}
    set_path(body, shape.data_path, data)
    if shape.data_path == "data":
        body.update(echo)
    if shape.total_path:
        set_path(body, shape.total_path, total)
    return body


def _check_renames(name: str, renames: Mapping[str, str], known: tuple[str, ...]) -> None:
    unknown = sorted(set(renames) - set(known))
    if unknown:
        raise ValueError(f"{name} renames unknown keys {unknown}; known keys are {list(known)}")
    for key, value in renames.items():
        if not isinstance(value, str) or not _KEY.fullmatch(value):
            raise ValueError(f"{name}[{key!r}] must be a key without dots, brackets or spaces")
    served = [renames.get(key, key) for key in known]
    if len(set(served)) != len(served):
        raise ValueError(f"{name} gives two keys the same name: {served}")


def check_record_shape(shape: RecordShape) -> None:
    """Raise ValueError when the record options cannot describe a server."""
    _check_renames("field_names", shape.field_names, RECORD_FIELDS)
    _check_renames("address_field_names", shape.address_field_names, ADDRESS_FIELDS)
    if shape.flags not in ("bool", "int", "string"):
        raise ValueError(f'flags must be "bool", "int" or "string", got {shape.flags!r}')
    if shape.address_decoys < 0:
        raise ValueError("address_decoys must not be negative")
    if shape.address_decoys and not shape.address_list:
        raise ValueError("address_decoys needs address_list = true")
    for name in ("null_addresses", "no_email"):
        span = getattr(shape, name)
        if span is not None and not 0 <= span[0] <= span[1]:
            raise ValueError(f"{name} must be [start, end) with 0 <= start <= end, got {span!r}")


def check_envelope(shape: EnvelopeShape, echo_keys: tuple[str, ...]) -> None:
    """Raise ValueError when the envelope paths are malformed or overlap each other.

    `echo_keys` are the top-level keys echoing the page asked for (used with `data_path`
    "data"); no path may equal another or lie inside it.
    """
    if shape.envelope not in ("object", "array"):
        raise ValueError(f'envelope must be "object" or "array", got {shape.envelope!r}')
    if not _PATH.fullmatch(shape.data_path):
        raise ValueError(f"data_path must be a dotted path of keys, got {shape.data_path!r}")
    if shape.total_path and not _PATH.fullmatch(shape.total_path):
        raise ValueError(
            f'total_path must be a dotted path of keys or "", got {shape.total_path!r}'
        )
    paths = [shape.data_path.split(".")]
    if shape.total_path:
        paths.append(shape.total_path.split("."))
    if shape.data_path == "data":
        paths.extend([key] for key in echo_keys)
    for index, path in enumerate(paths):
        for other in paths[index + 1 :]:
            shorter = min(len(path), len(other))
            if path[:shorter] == other[:shorter]:
                raise ValueError(
                    f"envelope paths {'.'.join(path)!r} and {'.'.join(other)!r} overlap"
                )
