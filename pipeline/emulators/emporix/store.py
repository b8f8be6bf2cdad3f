"""Emporix emulator state and rules: store, payload checks, q language, ErrorMessage answers."""

from __future__ import annotations

import collections
import http
import re
from collections.abc import Callable
from typing import Any

import msgspec
from aiohttp import web

from pipeline.emulators.faults import json_response

__all__ = [
    "BAD_TENANT",
    "EXPIRED_TOKEN",
    "FLAGS",
    "ID_PATTERN",
    "INVALID_TOKEN",
    "MERGE_PATCH",
    "NOT_AN_OBJECT",
    "EmporixStore",
    "Problems",
    "address_fields",
    "conflict",
    "customer_fields",
    "customer_not_found",
    "emporix_error_body",
    "error_message",
    "error_response",
    "field_error",
    "invalid",
    "json_object",
    "matches",
    "merge_patch",
    "metadata_of",
    "not_found",
    "oauth_error",
    "parse_query",
    "patch_base",
    "positive_param",
    "sort_customers",
    "version_conflict",
]

ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,66}")
# Boolean query values as Spring binds them; present but empty means the default, true.
FLAGS = {"true": True, "on": True, "yes": True, "1": True, "": True}
FLAGS |= {"false": False, "off": False, "no": False, "0": False}
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_COUNTRY = re.compile(r"[A-Za-z]{2}")
_CURRENCY = re.compile(r"[A-Za-z]{3}")

_CUSTOMER_STRINGS = (
    "title", "firstName", "middleName", "lastName", "contactPhone", "company",
    "preferredLanguage", "preferredCurrency", "preferredSite", "type", "photoUrl",
    "contactEmail", "restriction",
)  # fmt: skip
_CUSTOMER_BOOLS = ("active", "onHold")
_CUSTOMER_OBJECTS = ("b2b", "mixins")
_CUSTOMER_DEFAULTS: dict[str, Any] = {
    "preferredLanguage": "en_US", "preferredCurrency": "USD", "preferredSite": "main",
    "active": True, "onHold": False,
}  # fmt: skip
_ADDRESS_STRINGS = (
    "contactName", "companyName", "street", "streetNumber", "streetAppendix", "extraLine1",
    "extraLine2", "extraLine3", "extraLine4", "zipCode", "city", "state", "country",
    "contactPhone",
)  # fmt: skip


def error_message(
    status: int, kind: str, message: str, details: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    """An Emporix ErrorMessage body."""
    body: dict[str, Any] = {"status": status, "type": kind, "message": message}
    if details:
        body["details"] = details
    return body


def _fault(faultstring: str, errorcode: str) -> dict[str, Any]:
    return {"fault": {"faultstring": faultstring, "detail": {"errorcode": errorcode}}}


INVALID_TOKEN = _fault("Invalid access token", "oauth.v2.InvalidAccessToken")
EXPIRED_TOKEN = _fault("Access Token expired", "keymanagement.service.access_token_expired")
BAD_TENANT = "The tenant information provided with the request is not valid."


def emporix_error_body(status: int, message: str) -> dict[str, Any]:
    """ErrorMessage of an injected fault, e.g. type too_many_requests for a 429."""
    kind = http.HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    return error_message(status, kind, message)


def error_response(
    status: int, kind: str, message: str, details: list[dict[str, str]] | None = None
) -> web.Response:
    """An ErrorMessage response."""
    return json_response(error_message(status, kind, message, details), status=status)


def oauth_error(status: int, error: str, description: str) -> web.Response:
    """An OAuth error answer of the token endpoint."""
    return json_response({"error": error, "error_description": description}, status=status)


def conflict(message: str) -> web.Response:
    """409 conflict_resource."""
    return error_response(409, "conflict_resource", message)


def not_found(message: str) -> web.Response:
    """404 resource_not_found."""
    return error_response(404, "resource_not_found", message)


def invalid(details: list[dict[str, str]]) -> web.Response:
    """400 bad_request with field `details`."""
    return error_response(400, "bad_request", "The request is not valid.", details)


def field_error(field: str, message: str) -> web.Response:
    """400 bad_request naming one field in `details`."""
    return invalid([{"field": field, "type": "invalid_value", "message": message}])


def customer_not_found(number: str) -> web.Response:
    """404 as documented for a missing customer (type application/json, sic)."""
    detail = {"message": f"Couldn't find a customer with customerNumber '{number}'"}
    return error_response(404, "application/json", "Customer not Found", [detail])


def version_conflict() -> web.Response:
    """409 optimistic_lock: the sent or concurrent metadata.version differs."""
    return error_response(409, "optimistic_lock", "Version mismatch")


async def json_object(request: web.Request) -> dict[str, Any] | None:
    """The request body when it is a JSON object, else None."""
    try:
        body: Any = msgspec.json.decode(await request.read())
    except msgspec.DecodeError:
        return None
    return body if isinstance(body, dict) else None


NOT_AN_OBJECT = "The request body must be a JSON object."
MERGE_PATCH = "application/merge-patch+json"


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: objects merge key by key, null removes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def patch_base(stored: dict[str, Any] | None) -> dict[str, Any]:
    """What a merge patch applies to: the stored writable fields and metadata mixins.

    The stored version is left out: only a version the patch sends is checked.
    """
    if stored is None:
        return {}
    base = {k: v for k, v in stored.items() if k in _CUSTOMER_NAMES}
    base["metadata"] = {"mixins": dict(stored["metadata"].get("mixins") or {})}
    return base


def positive_param(request: web.Request, name: str, default: int) -> int | None:
    """A query parameter >= 1, `default` when absent, None when invalid."""
    raw = request.query.get(name)
    if raw is None:
        return default
    return int(raw) if raw.isascii() and raw.isdigit() and int(raw) >= 1 else None


class Problems:
    """Field errors found in one request, as ErrorMessage `details`."""

    def __init__(self) -> None:
        self.details: list[dict[str, str]] = []

    def add(self, field: str, message: str, kind: str = "invalid_value") -> None:
        self.details.append({"field": field, "type": kind, "message": message})

    def check_types(
        self, data: dict[str, Any], strings: tuple[str, ...], bools: tuple[str, ...]
    ) -> None:
        for name in strings:
            if name in data and not isinstance(data[name], str):
                self.add(name, f"{name} must be a string.")
        for name in bools:
            if name in data and not isinstance(data[name], bool):
                self.add(name, f"{name} must be a boolean.")


def metadata_of(
    body: dict[str, Any], problems: Problems
) -> tuple[int | None, dict[str, Any] | None]:
    """The `metadata.version` and `metadata.mixins` a body sends, each None when absent."""
    metadata = body.get("metadata")
    if metadata is None:
        return None, None
    if not isinstance(metadata, dict):
        problems.add("metadata", "metadata must be an object.")
        return None, None
    version = metadata.get("version")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
        problems.add("metadata.version", "metadata.version must be an integer.")
        version = None
    mixins = metadata.get("mixins")
    if mixins is not None and not isinstance(mixins, dict):
        problems.add("metadata.mixins", "metadata.mixins must be an object.")
        mixins = None
    return version, mixins


def _given(body: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """The writable fields a body sends; unknown fields are ignored, null is absent."""
    return {k: v for k, v in body.items() if k in names and v is not None}


_CUSTOMER_NAMES = (*_CUSTOMER_STRINGS, *_CUSTOMER_BOOLS, *_CUSTOMER_OBJECTS)
_ADDRESS_NAMES = (*_ADDRESS_STRINGS, "tags", "isDefault", "mixins")


def customer_fields(
    body: dict[str, Any], stored: dict[str, Any] | None, problems: Problems
) -> dict[str, Any]:
    """A customer's writable fields after a PUT of `body`: omitted fields are cleared.

    Unknown fields are ignored and `password` is never kept. The account email cannot
    be unset: omitted or null it keeps the stored one.
    """
    email = (stored or {}).get("contactEmail")
    fields = _given(body, _CUSTOMER_NAMES)
    if "contactEmail" not in fields and email is not None:
        fields["contactEmail"] = email
    problems.check_types(fields, _CUSTOMER_STRINGS, _CUSTOMER_BOOLS)
    for name in _CUSTOMER_OBJECTS:
        if name in fields and not isinstance(fields[name], dict):
            problems.add(name, f"{name} must be an object.")
    email = fields.get("contactEmail")
    if isinstance(email, str) and not _EMAIL.fullmatch(email):
        problems.add("contactEmail", "contactEmail must be a valid email address.")
    currency = fields.get("preferredCurrency")
    if isinstance(currency, str) and not _CURRENCY.fullmatch(currency):
        problems.add("preferredCurrency", "preferredCurrency must be an ISO 4217 code.")
    if fields.get("type", "") not in ("", "CUSTOMER", "CONTACT"):
        problems.add("type", "type must be CUSTOMER or CONTACT.")
    return {**_CUSTOMER_DEFAULTS, "mixins": {}, **fields}


def address_fields(
    body: dict[str, Any], stored: dict[str, Any] | None, problems: Problems
) -> dict[str, Any]:
    """An address's writable fields after a PUT of `body`: omitted fields are cleared.

    `contactName` is required on create; on update an omitted one is kept.
    """
    fields = _given(body, _ADDRESS_NAMES)
    if stored is not None and "contactName" not in fields:
        fields["contactName"] = stored["contactName"]
    if not fields.get("contactName"):
        problems.add("contactName", "contactName is required.", "missing_value")
    problems.check_types(fields, _ADDRESS_STRINGS, ("isDefault",))
    country = fields.get("country")
    if isinstance(country, str) and not _COUNTRY.fullmatch(country):
        problems.add("country", "country must be an ISO 3166-1 alpha-2 code (2 letters).")
    tags = fields.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        problems.add("tags", "tags must be a list of strings.")
    if not isinstance(fields.get("mixins", {}), dict):
        problems.add("mixins", "mixins must be an object.")
    return {"tags": [], "isDefault": False, "mixins": {}, **fields}


class EmporixStore:
    """In-memory tenant: customers by number, their addresses, tombstones, sent notifications.

    Write through the methods (they keep the email index and the counters); tests
    may read the attributes freely.
    """

    def __init__(self) -> None:
        self.customers: dict[str, dict[str, Any]] = {}
        self.addresses: dict[str, dict[str, dict[str, Any]]] = {}
        self.notifications: list[dict[str, str]] = []
        self.customer_writes: collections.Counter[str] = collections.Counter()
        self.address_writes: collections.Counter[tuple[str, str]] = collections.Counter()
        self.token_calls = 0
        self.tombstones: set[str] = set()
        self._emails: dict[str, str] = {}  # folded contactEmail -> customerNumber

    def email_owner(self, email: str) -> str | None:
        """The number of the customer holding `email` (any case), or None."""
        return self._emails.get(email.casefold())

    def _place(self, number: str, record: dict[str, Any]) -> None:
        previous = self.customers.get(number)
        if previous is not None and isinstance(previous.get("contactEmail"), str):
            self._emails.pop(previous["contactEmail"].casefold(), None)
        self.customers[number] = record
        self.addresses.setdefault(number, {})
        if isinstance(record.get("contactEmail"), str):
            self._emails[record["contactEmail"].casefold()] = number

    def write_customer(self, number: str, fields: dict[str, Any], mixins: dict[str, Any]) -> bool:
        """Store the customer's fields with the next version; True when it was created."""
        previous = self.customers.get(number)
        version = 1 if previous is None else previous["metadata"]["version"] + 1
        metadata = {"version": version, "mixins": mixins}
        record = {"id": number, "customerNumber": number, **fields, "metadata": metadata}
        record.setdefault("businessModel", "B2C")
        self._place(number, record)
        self.customer_writes[number] += 1
        return previous is None

    def seed_customer(self, number: str, body: dict[str, Any]) -> None:
        """Put a customer in place as given (no validation, no write counted)."""
        metadata = {"version": 1, "mixins": {}, **(body.get("metadata") or {})}
        record = {"mixins": {}, **body, "id": number, "customerNumber": number}
        self._place(number, {**record, "metadata": metadata})

    def bump_version(self, number: str) -> None:
        """A concurrent writer changed the customer."""
        self.customers[number]["metadata"]["version"] += 1

    def delete_customer(self, number: str) -> None:
        """Remove the customer and its addresses; the number is tombstoned."""
        record = self.customers.pop(number)
        if isinstance(record.get("contactEmail"), str):
            self._emails.pop(record["contactEmail"].casefold(), None)
        self.addresses.pop(number, None)
        self.tombstones.add(number)

    def write_address(
        self, number: str, address_id: str, fields: dict[str, Any], mixins: dict[str, Any]
    ) -> bool:
        """Store the address with the next version; True when it was created.

        A default address takes the flag from the customer's other addresses.
        """
        owned = self.addresses.setdefault(number, {})
        previous = owned.get(address_id)
        version = 1 if previous is None else previous["metadata"]["version"] + 1
        if fields.get("isDefault"):
            for other_id, other in owned.items():
                if other_id != address_id and other.get("isDefault"):
                    other["isDefault"] = False
                    other["metadata"]["version"] += 1
        owned[address_id] = {
            "id": address_id,
            **fields,
            "metadata": {"version": version, "mixins": mixins},
        }
        self.address_writes[number, address_id] += 1
        return previous is None

    def delete_address(self, number: str, address_id: str) -> None:
        """Remove one address (a write)."""
        del self.addresses[number][address_id]
        self.address_writes[number, address_id] += 1

    def tag_address(self, number: str, address_id: str, tags: list[str], add: bool) -> None:
        """Add or remove tags of one address (a write: the version moves on)."""
        address = self.addresses[number][address_id]
        held: list[str] = address.get("tags", [])
        if add:
            address["tags"] = held + [t for t in dict.fromkeys(tags) if t not in held]
        else:
            address["tags"] = [t for t in held if t not in tags]
        address["metadata"]["version"] += 1
        self.address_writes[number, address_id] += 1

    def search(self, terms: list[tuple[str, tuple[str, ...]]], sort: str) -> list[dict[str, Any]]:
        """Customers matching every term, by number or `sort`; ValueError for a bad sort."""
        found = [self.customers[n] for n in sorted(self.customers)]
        return sort_customers([c for c in found if matches(c, terms)], sort)

    def view(self, number: str, expand: set[str]) -> dict[str, Any]:
        """The customer as GET answers it: `defaultAddress`, and what `expand` asks for."""
        record = dict(self.customers[number])
        if not any(item.startswith("mixin") for item in expand):
            record.pop("mixins", None)
        owned = self.addresses.get(number, {})
        default = next((a for a in owned.values() if a.get("isDefault")), None)
        if default is not None:
            record["defaultAddress"] = default
        if "addresses" in expand:
            record["addresses"] = list(owned.values())
        return record

    def snapshot(self) -> list[dict[str, Any]]:
        """Customers sorted by number, each with its addresses sorted by id."""
        return [
            {
                **self.customers[number],
                "addresses": [
                    owned[a] for owned in [self.addresses.get(number, {})] for a in sorted(owned)
                ],
            }
            for number in sorted(self.customers)
        ]


# -- the q language (a subset) --------------------------------------------------

_TERM = re.compile(r'([A-Za-z_][\w.]*):(\([^)]*\)|"[^"]*"|\S+)\s*')
_FOLDED = frozenset({"contactEmail", "email"})


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def parse_query(q: str) -> list[tuple[str, tuple[str, ...]]]:
    """`field:value`, `field:"v w"` and `field:(a,b)` terms, ANDed; ValueError otherwise."""
    q = q.strip()
    terms: list[tuple[str, tuple[str, ...]]] = []
    position = 0
    while position < len(q):
        match = _TERM.match(q, position)
        if match is None:
            raise ValueError("q is not a valid query")
        field, raw = match.groups()
        if raw.startswith("("):
            values = tuple(_unquote(v) for v in raw[1:-1].split(","))
        else:
            values = (_unquote(raw),)
        terms.append((field, values))
        position = match.end()
    return terms


def _text(record: dict[str, Any], field: str) -> str | None:
    value: Any = record
    for part in field.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    if isinstance(value, bool):
        return "true" if value else "false"
    return None if value is None else str(value)


def matches(record: dict[str, Any], terms: list[tuple[str, tuple[str, ...]]]) -> bool:
    """Whether the customer satisfies every term (emails compare in any case)."""
    for field, values in terms:
        text = _text(record, field)
        if text is None:
            return False
        if field in _FOLDED:
            if text.casefold() not in {v.casefold() for v in values}:
                return False
        elif text not in values:
            return False
    return True


def sort_customers(records: list[dict[str, Any]], sort: str) -> list[dict[str, Any]]:
    """Sort by `field`, `field:asc`, `field:desc`, comma-separated; ValueError otherwise."""
    keys = [part.strip().partition(":") for part in sort.split(",") if part.strip()]
    for field, _, direction in reversed(keys):
        if direction.lower() not in ("", "asc", "desc"):
            raise ValueError("sort direction must be asc or desc")
        records = sorted(records, key=_sort_key(field), reverse=direction.lower() == "desc")
    return records


def _sort_key(field: str) -> Callable[[dict[str, Any]], str]:
    return lambda record: _text(record, field) or ""
