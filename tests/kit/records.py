"""Records in every form a test needs: MAN records (wire dicts), pages of them, and the
:class:`~pipeline.records.Customer` the transform makes of them."""

from __future__ import annotations

from typing import Any

import msgspec

from pipeline.emulators import Dataset
from pipeline.records import Address, Customer, Page
from pipeline.transform.dedupe import SeenInMemory
from pipeline.transform.stage import transform_page

ABSENT: Any = object()
"""A value for :func:`full_record`'s keys: leave the key out."""


def raw(item: Any) -> msgspec.Raw:
    """One record as the source hands it on: JSON bytes (``bytes`` are taken as they are)."""
    if isinstance(item, bytes):
        return msgspec.Raw(item)
    return msgspec.Raw(msgspec.json.encode(item))


def page(offset: int, *items: Any) -> Page:
    """A page of ``items`` (dicts, or raw bytes) read at ``offset``."""
    return Page(offset, [raw(item) for item in items])


def customers(n: int, *, seed: int) -> list[Customer]:
    """The first ``n`` customers of a dataset without defects, through the transform."""
    dataset = Dataset(n, seed=seed, defects=False)
    return transform_page(page(0, *dataset.records()), SeenInMemory()).customers


def bare_record(customer_id: Any = "c1", email: Any = None, **overrides: Any) -> dict[str, Any]:
    """A valid MAN record with the required fields only and no address; ``email`` defaults
    to one made of the id."""
    data: dict[str, Any] = {
        "customer_id": customer_id,
        "firstName": "Ada",
        "lastName": "Lovelace",
        "email": email if email is not None else f"{customer_id}@example.com",
        "businessUnit": "BU-North",
        "role": "Buyer",
        "address": None,
    }
    data.update(overrides)
    return data


def full_address(**overrides: Any) -> dict[str, Any]:
    """A MAN address with every field (Dachauer Str. 667, München)."""
    base: dict[str, Any] = {
        "address1": "Dachauer Str. 667",
        "address2": "Gate 3",
        "address3": "Building 12",
        "zipCode": "80995",
        "city": "München",
        "country": "Germany",
        "iso2Code": "DE",
        "phone": "+49 89 1580 0",
        "isDefaultBilling": True,
        "isDefaultShipping": False,
    }
    base.update(overrides)
    return base


FULL_EMAIL = "Jane.Roe@Example.COM"
FULL_FIRST = "Janette"
FULL_LAST = "Roebuckley"


def full_record(**overrides: Any) -> dict[str, Any]:
    """A MAN record with every field and :func:`full_address`; a key set to
    :data:`ABSENT` is left out."""
    base: dict[str, Any] = {
        "customer_id": "C-1001",
        "salutation": "Ms",
        "firstName": FULL_FIRST,
        "lastName": FULL_LAST,
        "email": FULL_EMAIL,
        "businessUnit": "MAN Truck & Bus Deutschland",
        "role": "Buyer",
        "address": full_address(),
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ABSENT}


def address(**overrides: Any) -> Address:
    """The :class:`Address` of :func:`full_address` (billing, not shipping), changed."""
    base = Address(
        line1="Dachauer Str. 667",
        line2="Gate 3",
        line3="Building 12",
        zip_code="80995",
        city="München",
        country="Germany",
        iso2="DE",
        phone="+49 89 1580 0",
        default_billing=True,
        default_shipping=False,
    )
    return msgspec.structs.replace(base, **overrides)


def customer(**overrides: Any) -> Customer:
    """A valid :class:`Customer` with every field and :func:`address`, changed."""
    base = Customer(
        customer_id="C-1001",
        salutation="Ms",
        first_name="Ada",
        last_name="Lovelace",
        email="ada@example.com",
        business_unit="BU-North",
        role="Buyer",
        address=address(),
    )
    return msgspec.structs.replace(base, **overrides)


def mueller_address(**changes: Any) -> Address:
    """:func:`address` with its lines in German (``Tor 3``, ``Halle 2``), changed."""
    return address(line2="Tor 3", line3="Halle 2", **changes)


def mueller(**address_changes: Any) -> Customer:
    """Jürgen Müller of the headquarter, at :func:`mueller_address`."""
    return customer(
        customer_id="C0000001",
        salutation="Herr",
        first_name="Jürgen",
        last_name="Müller",
        email="j.mueller@example.com",
        business_unit="headquarter",
        role="buyer",
        address=mueller_address(**address_changes),
    )
