"""Tests of the sync-batch mapping (Customer to SbAccount), of the payload hash and of reading
the service's answers."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from pipeline.records import Address, Customer
from pipeline.targets.syncbatch.payload import SbAccount, map_account, read_error, read_results
from pipeline.targets.syncbatch.settings import SyncBatchSettings
from pipeline.transform.hashing import HASH_SIZE, payload_hash
from tests.kit.records import address, customer

PROFILE = "https://shop.example.com/users/{customer_id}"
SETTINGS = SyncBatchSettings(url="http://x", account_ids="customer_id", profile_url=PROFILE)

ADDRESS = address()
FULL = customer()
BARE = customer(
    customer_id="C-2002",
    salutation="",
    first_name="Alan",
    last_name="Turing",
    email="alan@example.com",
    business_unit="BU-South",
    role="",
    address=None,
)


def encoded(account: SbAccount) -> dict[str, Any]:
    decoded: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(account))
    return decoded


def replace_address(**changes: Any) -> Customer:
    return msgspec.structs.replace(FULL, address=msgspec.structs.replace(ADDRESS, **changes))


# Full customer --------------------------------------------------------------------------


def test_map_account_full_customer_every_field() -> None:
    assert map_account(FULL, 17, 3, SETTINGS) == SbAccount(
        id=17,
        ref_id=3,
        ref_id_str="3",
        user_name="ada@example.com",
        email="ada@example.com",
        primary_email="ada@example.com",
        first_name="Ada",
        last_name="Lovelace",
        display_name="Ada Lovelace",
        full_name="Ada Lovelace",
        company="BU-North",
        profile_url="https://shop.example.com/users/C-1001",
        roles=["Buyer"],
        permissions=[],
        phone_number="+49 89 1580 0",
        address="Dachauer Str. 667",
        address2="Gate 3",
        city="München",
        country="DE",
        postal_code="80995",
        meta={
            "customerId": "C-1001",
            "salutation": "Ms",
            "address3": "Building 12",
            "isDefaultBilling": "true",
            "isDefaultShipping": "false",
        },
        index=0,
    )


def test_map_account_full_customer_encoded_json() -> None:
    assert encoded(map_account(FULL, 17, 3, SETTINGS)) == {
        "id": 17,
        "index": 0,
        "refId": 3,
        "refIdStr": "3",
        "userName": "ada@example.com",
        "email": "ada@example.com",
        "primaryEmail": "ada@example.com",
        "firstName": "Ada",
        "lastName": "Lovelace",
        "displayName": "Ada Lovelace",
        "fullName": "Ada Lovelace",
        "company": "BU-North",
        "profileUrl": "https://shop.example.com/users/C-1001",
        "roles": ["Buyer"],
        "permissions": [],
        "phoneNumber": "+49 89 1580 0",
        "address": "Dachauer Str. 667",
        "address2": "Gate 3",
        "city": "München",
        "country": "DE",
        "postalCode": "80995",
        "meta": {
            "customerId": "C-1001",
            "salutation": "Ms",
            "address3": "Building 12",
            "isDefaultBilling": "true",
            "isDefaultShipping": "false",
        },
    }


def test_map_account_index_set_later_is_encoded() -> None:
    account = map_account(FULL, 17, 3, SETTINGS)
    account.index = 4
    assert encoded(account)["index"] == 4


# Customer without address ---------------------------------------------------------------


def test_map_account_without_address_fields() -> None:
    account = map_account(BARE, 5, 9, SETTINGS)
    assert (
        account.phone_number,
        account.address,
        account.address2,
        account.city,
        account.country,
        account.postal_code,
    ) == (None, None, None, None, None, None)
    assert account.roles == []
    assert account.meta == {"customerId": "C-2002"}
    assert account.display_name == "Alan Turing"
    assert account.company == "BU-South"


def test_map_account_without_address_omits_optional_keys() -> None:
    assert encoded(map_account(BARE, 5, 9, SETTINGS)) == {
        "id": 5,
        "index": 0,
        "refId": 9,
        "refIdStr": "9",
        "userName": "alan@example.com",
        "email": "alan@example.com",
        "primaryEmail": "alan@example.com",
        "firstName": "Alan",
        "lastName": "Turing",
        "displayName": "Alan Turing",
        "fullName": "Alan Turing",
        "company": "BU-South",
        "profileUrl": "https://shop.example.com/users/C-2002",
        "roles": [],
        "permissions": [],
        "meta": {"customerId": "C-2002"},
    }


@pytest.mark.parametrize(
    ("changes", "absent"),
    [
        ({"phone": ""}, "phoneNumber"),
        ({"line1": ""}, "address"),
        ({"line2": ""}, "address2"),
        ({"city": ""}, "city"),
        ({"zip_code": ""}, "postalCode"),
    ],
)
def test_map_account_empty_address_part_is_omitted(changes: dict[str, str], absent: str) -> None:
    full_keys = set(encoded(map_account(FULL, 1, 1, SETTINGS)))
    keys = set(encoded(map_account(replace_address(**changes), 1, 1, SETTINGS)))
    assert full_keys - keys == {absent}


def test_map_account_address_with_only_country() -> None:
    only = Address(
        line1="",
        line2="",
        line3="",
        zip_code="",
        city="",
        country="",
        iso2="FR",
        phone="",
        default_billing=False,
        default_shipping=True,
    )
    data = encoded(map_account(msgspec.structs.replace(BARE, address=only), 5, 9, SETTINGS))
    assert data["country"] == "FR"
    assert {"phoneNumber", "address", "address2", "city", "postalCode"}.isdisjoint(data)
    assert data["meta"] == {
        "customerId": "C-2002",
        "isDefaultBilling": "false",
        "isDefaultShipping": "true",
    }


# Profile URL, roles, permissions --------------------------------------------------------


@pytest.mark.parametrize(
    ("customer_id", "expected"),
    [
        ("C-1001", "https://shop.example.com/users/C-1001"),
        ("a/b", "https://shop.example.com/users/a%2Fb"),
        ("a b", "https://shop.example.com/users/a%20b"),
        ("x?y=1&z#f", "https://shop.example.com/users/x%3Fy%3D1%26z%23f"),
        ("100%", "https://shop.example.com/users/100%25"),
        ("Müller", "https://shop.example.com/users/M%C3%BCller"),
        ("{customer_id}", "https://shop.example.com/users/%7Bcustomer_id%7D"),
        ("a.b_c~d", "https://shop.example.com/users/a.b_c~d"),
    ],
)
def test_map_account_profile_url_quotes_customer_id(customer_id: str, expected: str) -> None:
    customer = msgspec.structs.replace(FULL, customer_id=customer_id)
    account = map_account(customer, 1, 1, SETTINGS)
    assert account.profile_url == expected
    assert account.meta["customerId"] == customer_id


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (
            "https://b2b.example.de/account/{customer_id}/profile",
            "https://b2b.example.de/account/a%2Fb/profile",
        ),
        ("/u?id={customer_id}", "/u?id=a%2Fb"),
        ("https://static.example.com/profile", "https://static.example.com/profile"),
    ],
)
def test_map_account_profile_url_from_template(template: str, expected: str) -> None:
    settings = SyncBatchSettings(url="http://x", account_ids="customer_id", profile_url=template)
    customer = msgspec.structs.replace(FULL, customer_id="a/b")
    assert map_account(customer, 1, 1, settings).profile_url == expected


@pytest.mark.parametrize(
    "permissions",
    [(), ("CanBuy",), ("CanBuy", "CanView", "CanApprove")],
)
def test_map_account_permissions_from_settings(permissions: tuple[str, ...]) -> None:
    settings = SyncBatchSettings(
        url="http://x",
        permissions=permissions,
        profile_url="https://shop.example.com/users/{customer_id}",
        account_ids="customer_id",
    )
    account = map_account(FULL, 1, 1, settings)
    assert account.permissions == list(permissions)
    assert encoded(account)["permissions"] == list(permissions)


def test_map_account_permissions_are_a_fresh_list() -> None:
    settings = SyncBatchSettings(
        url="http://x", account_ids="customer_id", profile_url=PROFILE, permissions=("CanBuy",)
    )
    first = map_account(FULL, 1, 1, settings)
    first.permissions.append("Mutated")
    assert map_account(FULL, 2, 1, settings).permissions == ["CanBuy"]
    assert settings.permissions == ("CanBuy",)


@pytest.mark.parametrize(("role", "roles"), [("Buyer", ["Buyer"]), ("Admin", ["Admin"]), ("", [])])
def test_map_account_roles_from_role(role: str, roles: list[str]) -> None:
    customer = msgspec.structs.replace(FULL, role=role)
    assert map_account(customer, 1, 1, SETTINGS).roles == roles


@pytest.mark.parametrize(("account_id", "organisation_id"), [(1, 1), (42, 7), (2**40, 123456)])
def test_map_account_ids(account_id: int, organisation_id: int) -> None:
    data = encoded(map_account(FULL, account_id, organisation_id, SETTINGS))
    assert (data["id"], data["refId"], data["refIdStr"]) == (
        account_id,
        organisation_id,
        str(organisation_id),
    )


# Meta -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("billing", "shipping", "expected"),
    [
        (True, True, ("true", "true")),
        (True, False, ("true", "false")),
        (False, True, ("false", "true")),
        (False, False, ("false", "false")),
    ],
)
def test_map_account_meta_flags(billing: bool, shipping: bool, expected: tuple[str, str]) -> None:
    customer = replace_address(default_billing=billing, default_shipping=shipping)
    meta = map_account(customer, 1, 1, SETTINGS).meta
    assert (meta["isDefaultBilling"], meta["isDefaultShipping"]) == expected


@pytest.mark.parametrize(
    ("customer", "keys"),
    [
        (FULL, ["customerId", "salutation", "address3", "isDefaultBilling", "isDefaultShipping"]),
        (
            msgspec.structs.replace(FULL, salutation=""),
            ["customerId", "address3", "isDefaultBilling", "isDefaultShipping"],
        ),
        (
            replace_address(line3=""),
            ["customerId", "salutation", "isDefaultBilling", "isDefaultShipping"],
        ),
        (msgspec.structs.replace(FULL, address=None), ["customerId", "salutation"]),
        (BARE, ["customerId"]),
    ],
    ids=["full", "no-salutation", "no-address3", "no-address", "bare"],
)
def test_map_account_meta_keys(customer: Customer, keys: list[str]) -> None:
    assert list(map_account(customer, 1, 1, SETTINGS).meta) == keys


# Payload hash ---------------------------------------------------------------------------


def test_payload_hash_known_digest() -> None:
    assert payload_hash(b"").hex() == "cae66941d9efbd404e4d88758ea67670"


def test_payload_hash_size() -> None:
    assert HASH_SIZE == 16
    assert len(payload_hash(msgspec.json.encode(map_account(FULL, 1, 1, SETTINGS)))) == 16


def test_payload_hash_stable_for_equal_payloads() -> None:
    first = payload_hash(msgspec.json.encode(map_account(FULL, 17, 3, SETTINGS)))
    rebuilt = msgspec.structs.replace(FULL, address=msgspec.structs.replace(ADDRESS))
    second = payload_hash(msgspec.json.encode(map_account(rebuilt, 17, 3, SETTINGS)))
    assert first == second


@pytest.mark.parametrize(
    "customer",
    [
        msgspec.structs.replace(FULL, first_name="Adb"),
        msgspec.structs.replace(FULL, last_name="Lovelace "),
        msgspec.structs.replace(FULL, email="ada@example.org"),
        msgspec.structs.replace(FULL, business_unit="BU-South"),
        msgspec.structs.replace(FULL, role="Admin"),
        msgspec.structs.replace(FULL, salutation="Dr"),
        msgspec.structs.replace(FULL, customer_id="C-1002"),
        msgspec.structs.replace(FULL, address=None),
        replace_address(city="Munich"),
        replace_address(zip_code="80996"),
        replace_address(line3="Building 13"),
        replace_address(default_shipping=True),
        replace_address(iso2="AT"),
    ],
)
def test_payload_hash_changes_with_one_field(customer: Customer) -> None:
    base = payload_hash(msgspec.json.encode(map_account(FULL, 17, 3, SETTINGS)))
    changed = payload_hash(msgspec.json.encode(map_account(customer, 17, 3, SETTINGS)))
    assert changed != base


@pytest.mark.parametrize(
    ("account_id", "organisation_id", "settings"),
    [
        (18, 3, SETTINGS),
        (17, 4, SETTINGS),
        (
            17,
            3,
            SyncBatchSettings(
                url="http://x",
                account_ids="customer_id",
                profile_url=PROFILE,
                permissions=("CanBuy",),
            ),
        ),
        (
            17,
            3,
            SyncBatchSettings(
                url="http://x", account_ids="customer_id", profile_url="https://other/{customer_id}"
            ),
        ),
    ],
    ids=["account-id", "organisation-id", "permissions", "profile-url"],
)
def test_payload_hash_changes_with_ids_and_settings(
    account_id: int, organisation_id: int, settings: SyncBatchSettings
) -> None:
    base = payload_hash(msgspec.json.encode(map_account(FULL, 17, 3, SETTINGS)))
    changed = payload_hash(
        msgspec.json.encode(map_account(FULL, account_id, organisation_id, settings))
    )
    assert changed != base


def test_payload_hash_ignores_connection_settings() -> None:
    other = SyncBatchSettings(
        url="http://elsewhere",
        batch_size=7,
        max_in_flight=1,
        profile_url="https://shop.example.com/users/{customer_id}",
        account_ids="customer_id",
    )
    base = payload_hash(msgspec.json.encode(map_account(FULL, 17, 3, SETTINGS)))
    assert payload_hash(msgspec.json.encode(map_account(FULL, 17, 3, other))) == base


# Reading answers ------------------------------------------------------------------------

ANSWER = {
    "customer": {
        "id": 7,
        "name": "Retail",
        "accounts": [
            {"id": 12, "userName": "a@x.io", "refId": 7, "meta": {"customerId": "C0000012"}}
        ],
    },
    "index": 1,
    "responseStatus": {
        "errorCode": "Conflict",
        "errors": [{"errorCode": "Conflict", "fieldName": "Customers[1].Accounts[0].Id"}],
    },
}


def _recase(value: Any, case: Callable[[str], str]) -> Any:
    if isinstance(value, dict):
        return {case(k): _recase(v, case) for k, v in value.items()}
    if isinstance(value, list):
        return [_recase(v, case) for v in value]
    return value


CASES: dict[str, Callable[[str], str]] = {
    "camel": lambda k: k,
    "Pascal": lambda k: k[:1].upper() + k[1:],
    "snake": lambda k: re.sub(r"(?<!^)(?=[A-Z])", "_", k).lower(),
    "upper": str.upper,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_results_are_read_in_any_casing(case: str) -> None:
    body = msgspec.json.encode([{}, _recase(ANSWER, CASES[case])])
    blank, result = read_results(body)
    assert blank.blank
    assert result.index == 1
    assert result.customer is not None
    assert (result.customer.id, result.customer.name) == (7, "Retail")
    assert [(a.id, a.user_name, a.ref_id) for a in result.customer.accounts] == [(12, "a@x.io", 7)]
    assert result.customer.accounts[0].customer_id() == "C0000012"
    status = result.response_status
    assert status is not None and status.failed
    assert [e.field_name for e in status.errors] == ["Customers[1].Accounts[0].Id"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_error_answers_are_read_in_any_casing(case: str) -> None:
    body = msgspec.json.encode(_recase({"responseStatus": ANSWER["responseStatus"]}, CASES[case]))
    status = read_error(body)
    assert status is not None
    assert status.error_code == "Conflict"
    assert status.errors[0].field_name == "Customers[1].Accounts[0].Id"


def test_an_answer_of_another_shape_is_refused() -> None:
    with pytest.raises(msgspec.ValidationError):
        read_results(b'[{"index": "one"}]')
    with pytest.raises(msgspec.DecodeError):
        read_results(b"[{")
    assert read_error(b"{}") is None
