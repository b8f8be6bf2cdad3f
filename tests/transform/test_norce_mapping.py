"""Mapping of a Customer to a Norce ImportCustomers item, and the import headers (pure)."""

from __future__ import annotations

import json

import msgspec
import pytest

from pipeline.records import Customer
from pipeline.targets.norce.payload import (
    company_code,
    company_header,
    customer_header,
    map_company,
    map_customer,
)
from pipeline.targets.norce.settings import NorceSettings
from tests.kit.records import mueller, mueller_address

SETTINGS = NorceSettings(
    url="http://norce.test",
    application_id=1234,
    account_id=42,
    scope="stage",
    client_id_env="A",
    client_secret_env="B",
    company_codes={"headquarter": "HQ"},
)
ADDRESS = mueller_address(default_shipping=True)
CUSTOMER = mueller(default_shipping=True)


def encoded(customer: Customer, settings: NorceSettings = SETTINGS) -> dict[str, object]:
    result: dict[str, object] = msgspec.json.decode(
        msgspec.json.encode(map_customer(customer, settings))
    )
    return result


def test_customer_item_carries_owned_fields_and_both_addresses() -> None:
    address = {
        "CountryCode": "DE",
        "AddressLine1": "Dachauer Str. 667",
        "AddressLine2": "Tor 3, Halle 2",
        "ZipCode": "80995",
        "City": "München",
    }
    assert encoded(CUSTOMER) == {
        "Code": "C0000001",
        "EmailAddress": "j.mueller@example.com",
        "FirstName": "Jürgen",
        "LastName": "Müller",
        "Title": "Herr",
        "PhoneNumber": "+49 89 1580 0",
        "IsActive": True,
        "InvoiceAddress": address,
        "DeliveryAddresses": [
            {**address, "IsPrimary": True, "ShippingPhoneNumber": "+49 89 1580 0"}
        ],
        "Companies": [{"Code": "HQ", "IsPrimary": True}],
        "IsCompanyListDelta": True,
    }


@pytest.mark.parametrize(
    ("billing", "shipping", "invoice", "deliveries"),
    [
        (True, False, True, []),
        (False, True, False, [True]),
        (False, False, False, [False]),
    ],
)
def test_addresses_follow_the_default_flags(
    billing: bool, shipping: bool, invoice: bool, deliveries: list[bool]
) -> None:
    address = msgspec.structs.replace(ADDRESS, default_billing=billing, default_shipping=shipping)
    item = map_customer(msgspec.structs.replace(CUSTOMER, address=address), SETTINGS)
    assert (item.InvoiceAddress is not None) is invoice
    assert [a.IsPrimary for a in item.DeliveryAddresses] == deliveries


def test_customer_without_address_sends_none() -> None:
    body = encoded(msgspec.structs.replace(CUSTOMER, address=None))
    assert "InvoiceAddress" not in body
    assert "DeliveryAddresses" not in body
    assert "PhoneNumber" not in body


def test_address3_alone_becomes_line_two() -> None:
    address = msgspec.structs.replace(ADDRESS, line2="")
    item = map_customer(msgspec.structs.replace(CUSTOMER, address=address), SETTINGS)
    assert item.InvoiceAddress is not None
    assert item.InvoiceAddress.AddressLine2 == "Halle 2"


def test_company_code_falls_back_to_the_unit_name() -> None:
    assert company_code("headquarter", SETTINGS) == "HQ"
    assert company_code("Steyr", SETTINGS) == "Steyr"
    company = map_company("Steyr", SETTINGS)
    assert (company.Code, company.Name, company.OrganizationNo) == ("Steyr", "Steyr", "Steyr")


def test_customer_header_is_one_line_listing_only_owned_fields() -> None:
    header = customer_header(SETTINGS)
    assert "\n" not in header
    parsed = json.loads(header)
    assert parsed["AccountId"] == 42
    assert parsed["CustomerFieldsThatAreSet"] == [
        "Code",
        "EmailAddress",
        "Title",
        "FirstName",
        "LastName",
        "PhoneNumber",
        "IsActive",
        "InvoiceAddress",
        "DeliveryAddresses",
        "Companies",
    ]
    assert "AccountFieldsThatAreSet" not in parsed


def test_accounts_option_adds_the_login_and_role() -> None:
    settings = msgspec.structs.replace(SETTINGS, accounts=True, application_key="app-key")
    body = encoded(CUSTOMER, settings)
    assert body["Accounts"] == [
        {
            "LoginName": "j.mueller@example.com",
            "ApplicationKey": "app-key",
            "Status": 1,
            "Roles": [{"Code": "buyer", "IsActive": True}],
        }
    ]
    header = json.loads(customer_header(settings))
    assert "Accounts" in header["CustomerFieldsThatAreSet"]
    assert header["AccountFieldsThatAreSet"] == ["StatusCreateOnly", "Roles"]


def test_company_header_lists_the_company_fields() -> None:
    parsed = json.loads(company_header(SETTINGS))
    assert parsed["CompanyFieldsThatAreSet"] == ["Code", "Name", "OrganizationNo"]
