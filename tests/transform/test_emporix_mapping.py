"""Mapping of a Customer to Emporix bodies (pure)."""

from __future__ import annotations

import msgspec
import pytest

from pipeline.targets.emporix.payload import (
    address_id,
    address_part_changed,
    customer_part_changed,
    had_address,
    map_customer,
    merge_patch,
    title_of,
    valid_customer_number,
)
from pipeline.targets.emporix.settings import EmporixSettings
from tests.kit.records import mueller, mueller_address

SETTINGS = EmporixSettings(
    url="http://emporix.test",
    tenant="demo",
    client_id_env="A",
    client_secret_env="B",
    mixins=True,
    mixin_name="man",
    mixin_schema_url="https://schemas.test/man.json",
)
ADDRESS = mueller_address()
CUSTOMER = mueller()


def test_customer_body_carries_every_owned_field() -> None:
    payload = map_customer(CUSTOMER, SETTINGS)
    body = msgspec.json.decode(msgspec.json.encode(payload.customer))
    assert body == {
        "contactEmail": "j.mueller@example.com",
        "firstName": "Jürgen",
        "lastName": "Müller",
        "title": "MR",
        "contactPhone": "+49 89 1580 0",
        "company": "headquarter",
        "active": True,
        "mixins": {"man": {"role": "buyer", "businessUnit": "headquarter"}},
        "metadata": {"mixins": {"man": "https://schemas.test/man.json"}},
    }
    assert payload.customer_number == "C0000001"


def test_address_body_maps_lines_tags_and_default() -> None:
    address = map_customer(CUSTOMER, SETTINGS).address
    assert address is not None
    assert msgspec.json.decode(msgspec.json.encode(address)) == {
        "contactName": "Jürgen Müller",
        "country": "DE",
        "street": "Dachauer Str. 667",
        "streetAppendix": "Tor 3",
        "extraLine1": "Halle 2",
        "zipCode": "80995",
        "city": "München",
        "contactPhone": "+49 89 1580 0",
        "tags": ["BILLING"],
        "isDefault": True,
    }


@pytest.mark.parametrize(
    ("billing", "shipping", "tags", "default"),
    [
        (True, True, ["BILLING", "SHIPPING"], True),
        (False, True, ["SHIPPING"], True),
        (False, False, [], False),
    ],
)
def test_address_tags_follow_the_default_flags(
    billing: bool, shipping: bool, tags: list[str], default: bool
) -> None:
    address = msgspec.structs.replace(ADDRESS, default_billing=billing, default_shipping=shipping)
    mapped = map_customer(msgspec.structs.replace(CUSTOMER, address=address), SETTINGS).address
    assert mapped is not None
    assert (mapped.tags, mapped.isDefault) == (tags, default)


def test_customer_without_address_has_no_address_and_no_phone() -> None:
    payload = map_customer(msgspec.structs.replace(CUSTOMER, address=None), SETTINGS)
    assert payload.address is None
    assert payload.customer.contactPhone is None
    assert payload.hash()[8:] == bytes(8)


@pytest.mark.parametrize(
    ("salutation", "title"),
    [
        ("Herr", "MR"),
        ("Mr", "MR"),
        ("Frau", "MS"),
        ("Ms.", "MS"),
        ("Dr.", "DR"),
        ("", None),
        ("Mx", "MX"),
    ],
)
def test_title_normalises_salutations(salutation: str, title: str | None) -> None:
    assert title_of(salutation) == title


@pytest.mark.parametrize(
    ("customer_id", "valid"),
    [
        ("C0000001", True),
        ("a-b_c", True),
        ("x" * 66, True),
        ("x" * 67, False),
        ("C 1", False),
        ("C/1", False),
        ("Ü1", False),
        ("", False),
    ],
)
def test_valid_customer_number(customer_id: str, valid: bool) -> None:
    assert valid_customer_number(customer_id) is valid


def test_address_id_is_stable() -> None:
    assert address_id("C0000001") == "C0000001-default"


def test_hash_halves_tell_which_part_changed() -> None:
    before = map_customer(CUSTOMER, SETTINGS).hash()
    moved = msgspec.structs.replace(CUSTOMER, address=msgspec.structs.replace(ADDRESS, city="Graz"))
    renamed = msgspec.structs.replace(CUSTOMER, last_name="Maier")
    after_move = map_customer(moved, SETTINGS).hash()
    after_rename = map_customer(renamed, SETTINGS).hash()
    assert not customer_part_changed(before, after_move)
    assert address_part_changed(before, after_move)
    assert customer_part_changed(before, after_rename)
    assert address_part_changed(before, after_rename)  # contactName holds the name
    assert customer_part_changed(None, before) and address_part_changed(None, before)
    assert had_address(before) and not had_address(None)
    assert map_customer(CUSTOMER, SETTINGS).hash() == before


def test_mixins_are_left_out_unless_turned_on() -> None:
    plain = msgspec.structs.replace(SETTINGS, mixins=False)
    body = msgspec.json.decode(msgspec.json.encode(map_customer(CUSTOMER, plain).customer))
    assert "mixins" not in body and "metadata" not in body


def test_merge_patch_clears_owned_fields_left_empty_and_names_no_foreign_field() -> None:
    bare = msgspec.structs.replace(CUSTOMER, salutation="", business_unit="", address=None)
    patch = merge_patch(
        map_customer(bare, msgspec.structs.replace(SETTINGS, mixins=False)).customer
    )
    assert patch == {
        "contactEmail": "j.mueller@example.com",
        "firstName": "Jürgen",
        "lastName": "Müller",
        "title": None,
        "contactPhone": None,
        "company": None,
        "active": True,
    }
