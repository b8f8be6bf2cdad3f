"""Tests of record validation: every rule on a MAN record decoded from its wire form."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from pipeline.records import Address, Customer
from pipeline.transform.validate import (
    MAX_FIELD_LENGTH,
    MAX_ID_LENGTH,
    Invalid,
    customer_id_of,
    email_key,
    validate,
)
from pipeline.transform.wire import ManAddress, ManRecord, decode_record, probe_customer_id
from tests.kit.records import ABSENT as _ABSENT
from tests.kit.records import FULL_EMAIL as EMAIL
from tests.kit.records import FULL_FIRST as FIRST
from tests.kit.records import FULL_LAST as LAST
from tests.kit.records import customer
from tests.kit.records import full_address as address
from tests.kit.records import full_record as record


def without(data: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in keys}


def check(data: dict[str, Any]) -> Customer:
    wire = decode_record(msgspec.json.encode(data))
    return validate(wire, customer_id_of(wire))


def reason_of(data: dict[str, Any]) -> str:
    with pytest.raises(Invalid) as info:
        check(data)
    return str(info.value)


EXPECTED = customer(
    first_name=FIRST,
    last_name=LAST,
    email="jane.roe@example.com",
    business_unit="MAN Truck & Bus Deutschland",
)


# Wire decoding --------------------------------------------------------------------------


def test_decode_record_full_record_keeps_every_field() -> None:
    wire = decode_record(msgspec.json.encode(record()))
    assert wire == ManRecord(
        customer_id="C-1001",
        salutation="Ms",
        firstName=FIRST,
        lastName=LAST,
        email=EMAIL,
        businessUnit="MAN Truck & Bus Deutschland",
        role="Buyer",
        address=ManAddress(**address()),
    )


def test_decode_record_ignores_unknown_fields() -> None:
    data = record(extra={"nested": [1, 2, {"x": None}]}, createdAt="2024-01-01")
    data["address"]["geo"] = {"lat": 1.5}
    assert decode_record(msgspec.json.encode(data)) == decode_record(msgspec.json.encode(record()))


def test_decode_record_accepts_raw() -> None:
    raw = msgspec.Raw(msgspec.json.encode(record()))
    assert decode_record(raw).customer_id == "C-1001"


@pytest.mark.parametrize(
    ("data", "path"),
    [
        (record(email=5), "$.email"),
        (record(firstName=["Jane"]), "$.firstName"),
        (record(customer_id=1.5), "$.customer_id"),
        (record(customer_id=True), "$.customer_id"),
        (record(address="Dachauer Str."), "$.address"),
        (record(address=address(zipCode=80995.5)), "$.address.zipCode"),
        (record(address=[address(), "Dachauer Str."]), "$.address[1]"),
    ],
    ids=[
        "email-int",
        "name-list",
        "id-float",
        "id-bool",
        "address-str",
        "zip-float",
        "address-list-of-str",
    ],
)
def test_decode_record_wrong_type_names_the_field(data: dict[str, Any], path: str) -> None:
    with pytest.raises(msgspec.ValidationError) as info:
        decode_record(msgspec.json.encode(data))
    assert str(info.value).endswith(f" - at `{path}`")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"customer_id": "C-1", "email": 5}', "C-1"),
        (b'{"customer_id": " C-1 ", "email": 5}', "C-1"),
        (b'{"customer_id": 42, "email": 5}', "42"),
        (b'{"customer_id": "", "email": 5}', None),
        (b'{"customer_id": "   "}', None),
        (b'{"customer_id": null}', None),
        (b'{"customer_id": true}', None),
        (b'{"customer_id": 1.5}', None),
        (b'{"email": 5}', None),
        (b"[1, 2]", None),
        (b"not json", None),
        (b"", None),
    ],
)
def test_probe_customer_id_reads_what_it_can(raw: bytes, expected: str | None) -> None:
    assert probe_customer_id(raw) == expected


# Valid records --------------------------------------------------------------------------


def test_validate_full_record_gives_canonical_customer() -> None:
    assert check(record()) == EXPECTED


@pytest.mark.parametrize(
    ("overrides", "field", "expected"),
    [
        ({"email": "  Jane.Roe@Example.COM  "}, "email", "jane.roe@example.com"),
        ({"email": "JANE@EXAMPLE.DE"}, "email", "jane@example.de"),
        ({"email": "a+tag@sub.example.co.uk"}, "email", "a+tag@sub.example.co.uk"),
        ({"email": "a@" + "b" * 249 + ".de"}, "email", "a@" + "b" * 249 + ".de"),
        ({"firstName": "  Jane  "}, "first_name", "Jane"),
        ({"lastName": "\tRoe\n"}, "last_name", "Roe"),
        ({"businessUnit": " BU "}, "business_unit", "BU"),
        ({"customer_id": 1001}, "customer_id", "1001"),
        ({"customer_id": 0}, "customer_id", "0"),
        ({"customer_id": "  C-7  "}, "customer_id", "C-7"),
        ({"customer_id": "x" * MAX_ID_LENGTH}, "customer_id", "x" * MAX_ID_LENGTH),
        ({"salutation": None}, "salutation", ""),
        ({"salutation": _ABSENT}, "salutation", ""),
        ({"role": None}, "role", ""),
        ({"role": "  "}, "role", ""),
        ({"address": None}, "address", None),
        ({"address": _ABSENT}, "address", None),
        ({"firstName": "x" * MAX_FIELD_LENGTH}, "first_name", "x" * MAX_FIELD_LENGTH),
    ],
    ids=[
        "email-trimmed-lowercased",
        "email-uppercase",
        "email-plus-subdomains",
        "email-max-length",
        "first-trimmed",
        "last-trimmed",
        "bu-trimmed",
        "id-int",
        "id-zero",
        "id-trimmed",
        "id-max-length",
        "salutation-null",
        "salutation-absent",
        "role-null",
        "role-blank",
        "address-null",
        "address-absent",
        "name-max-length",
    ],
)
def test_validate_valid_record_field(overrides: dict[str, Any], field: str, expected: Any) -> None:
    customer = check(record(**overrides))
    assert getattr(customer, field) == expected
    assert type(getattr(customer, field)) is type(expected)


@pytest.mark.parametrize(
    ("overrides", "field", "expected"),
    [
        ({"iso2Code": "de"}, "iso2", "DE"),
        ({"iso2Code": " at "}, "iso2", "AT"),
        ({"iso2Code": "Nl"}, "iso2", "NL"),
        ({"zipCode": 80995}, "zip_code", "80995"),
        ({"zipCode": 1010}, "zip_code", "1010"),
        ({"zipCode": " 80995 "}, "zip_code", "80995"),
        ({"zipCode": None}, "zip_code", ""),
        ({"address1": None, "city": None}, "line1", ""),
        ({"address3": "  "}, "line3", ""),
        ({"phone": None}, "phone", ""),
        ({"isDefaultBilling": "true"}, "default_billing", True),
        ({"isDefaultBilling": "TRUE"}, "default_billing", True),
        ({"isDefaultBilling": " True "}, "default_billing", True),
        ({"isDefaultBilling": "1"}, "default_billing", True),
        ({"isDefaultBilling": "yes"}, "default_billing", True),
        ({"isDefaultBilling": "false"}, "default_billing", False),
        ({"isDefaultBilling": "False"}, "default_billing", False),
        ({"isDefaultBilling": "0"}, "default_billing", False),
        ({"isDefaultBilling": "no"}, "default_billing", False),
        ({"isDefaultBilling": ""}, "default_billing", False),
        ({"isDefaultBilling": None}, "default_billing", False),
        ({"isDefaultBilling": False}, "default_billing", False),
        ({"isDefaultShipping": "true"}, "default_shipping", True),
        ({"isDefaultShipping": True}, "default_shipping", True),
        ({"isDefaultShipping": "false"}, "default_shipping", False),
    ],
)
def test_validate_address_field(overrides: dict[str, Any], field: str, expected: Any) -> None:
    customer = check(record(address=address(**overrides)))
    assert customer.address is not None
    value = getattr(customer.address, field)
    assert value == expected
    assert type(value) is type(expected)


def test_validate_address_flags_absent_are_false() -> None:
    data = record(address=without(address(), "isDefaultBilling", "isDefaultShipping"))
    customer = check(data)
    assert customer.address is not None
    assert (customer.address.default_billing, customer.address.default_shipping) == (False, False)


def test_validate_address_with_only_iso2() -> None:
    customer = check(record(address={"iso2Code": "fr"}))
    assert customer.address == Address(
        line1="",
        line2="",
        line3="",
        zip_code="",
        city="",
        country="",
        iso2="FR",
        phone="",
        default_billing=False,
        default_shipping=False,
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        (1, True),
        (0, False),
        ("true", True),
        ("FALSE", False),
        (" Yes ", True),
        ("1", True),
        ("0", False),
    ],
)
@pytest.mark.parametrize("flag", ["isDefaultBilling", "isDefaultShipping"])
def test_validate_address_flag_spellings(flag: str, value: Any, expected: bool) -> None:
    customer = check(record(address={**address(isDefaultBilling=None), flag: value}))
    assert customer.address is not None
    field = "default_billing" if flag == "isDefaultBilling" else "default_shipping"
    assert getattr(customer.address, field) is expected


@pytest.mark.parametrize("value", [2, -1, "maybe", "2", 1.0, 0.5, [True], {"value": True}, "truee"])
@pytest.mark.parametrize("flag", ["isDefaultBilling", "isDefaultShipping"])
def test_validate_address_flag_not_boolean(flag: str, value: Any) -> None:
    assert reason_of(record(address=address(**{flag: value}))) == f"address.{flag} is not a boolean"


@pytest.mark.parametrize(
    "blank",
    [
        {},
        {field: None for field in address()},
        {field: "" for field in address()},
        {**{field: "  " for field in address()}, "isDefaultBilling": "false", "zipCode": None},
        {"isDefaultBilling": False, "isDefaultShipping": 0, "country": None},
    ],
    ids=["empty-object", "all-null", "all-empty", "all-blank", "flags-false"],
)
def test_validate_blank_address_is_no_address(blank: dict[str, Any]) -> None:
    assert check(record(address=blank)) == msgspec.structs.replace(EXPECTED, address=None)


@pytest.mark.parametrize(
    "only",
    [{"isDefaultBilling": True}, {"isDefaultShipping": "maybe"}, {"zipCode": 0}, {"phone": "1"}],
)
def test_validate_address_with_a_value_is_not_blank(only: dict[str, Any]) -> None:
    assert reason_of(record(address=only)) == "address.iso2Code is missing"


@pytest.mark.parametrize(
    ("iso2", "country", "expected"),
    [
        (None, "Germany", "DE"),
        (None, "Deutschland", "DE"),
        (None, "Österreich", "AT"),
        ("", " GERMANY ", "DE"),
        ("  ", "Federal Republic of Germany", "DE"),
        (_ABSENT, "Czech Republic", "CZ"),
        (None, "United Kingdom", "GB"),
        ("AT", "Germany", "AT"),
        ("nl", "Deutschland", "NL"),
        ("FR", "Narnia", "FR"),
        ("FR", None, "FR"),
    ],
)
def test_validate_address_iso2_from_country(iso2: Any, country: str | None, expected: str) -> None:
    data = address(iso2Code=iso2, country=country)
    customer = check(record(address={k: v for k, v in data.items() if v is not _ABSENT}))
    assert customer.address is not None
    assert customer.address.iso2 == expected
    assert customer.address.country == (country or "").strip()


@pytest.mark.parametrize("country", ["Narnia", "Germany!", "DE", "Bavaria", "-"])
@pytest.mark.parametrize("iso2", [None, "", " "])
def test_validate_address_unknown_country_reason(iso2: str | None, country: str) -> None:
    reason = reason_of(record(address=address(iso2Code=iso2, country=country)))
    assert reason == (
        "address.iso2Code is missing and address.country does not name a known country"
    )


def test_validate_address_present_invalid_iso2_is_not_replaced_by_country() -> None:
    reason = reason_of(record(address=address(iso2Code="DEU", country="Germany")))
    assert reason == "address.iso2Code 'DEU' is not an ISO 3166-1 alpha-2 code"


# Invalid records ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (without(record(), "email"), "email is missing"),
        (record(email=None), "email is missing"),
        (record(email=""), "email is empty"),
        (record(email="   "), "email is empty"),
        (record(email="jane.roe"), "email is malformed"),
        (record(email="jane.roe@example"), "email is malformed"),
        (record(email="@example.com"), "email is malformed"),
        (record(email="jane@@example.com"), "email is malformed"),
        (record(email="jane@exa@mple.com"), "email is malformed"),
        (record(email="jane roe@example.com"), "email is malformed"),
        (record(email="jane@example.com."), "email is malformed"),
        (record(email="jane@example."), "email is malformed"),
        (record(email="a@" + "b" * 250 + ".de"), "email is malformed"),
        (without(record(), "firstName"), "firstName is missing"),
        (record(firstName=None), "firstName is missing"),
        (record(firstName=""), "firstName is empty"),
        (record(firstName=" \t "), "firstName is empty"),
        (without(record(), "lastName"), "lastName is missing"),
        (record(lastName=None), "lastName is missing"),
        (record(lastName=""), "lastName is empty"),
        (without(record(), "businessUnit"), "businessUnit is missing"),
        (record(businessUnit=None), "businessUnit is missing"),
        (record(businessUnit="  "), "businessUnit is empty"),
        (
            record(firstName="x" * (MAX_FIELD_LENGTH + 1)),
            f"firstName is longer than {MAX_FIELD_LENGTH} characters",
        ),
        (
            record(role="r" * (MAX_FIELD_LENGTH + 1)),
            f"role is longer than {MAX_FIELD_LENGTH} characters",
        ),
        (record(address=address(iso2Code=None, country=None)), "address.iso2Code is missing"),
        (
            record(address=without(address(), "iso2Code", "country")),
            "address.iso2Code is missing",
        ),
        (record(address={"city": "Wien"}), "address.iso2Code is missing"),
        (record(address=address(iso2Code="", country="")), "address.iso2Code is missing"),
        (record(address=address(iso2Code="  ", country=" ")), "address.iso2Code is missing"),
        (
            record(address=address(iso2Code="DEU")),
            "address.iso2Code 'DEU' is not an ISO 3166-1 alpha-2 code",
        ),
        (
            record(address=address(iso2Code="D")),
            "address.iso2Code 'D' is not an ISO 3166-1 alpha-2 code",
        ),
        (
            record(address=address(iso2Code="D1")),
            "address.iso2Code 'D1' is not an ISO 3166-1 alpha-2 code",
        ),
        (
            record(address=address(iso2Code="Geheimweg 2")),  # data, not a code: not quoted
            "address.iso2Code is not an ISO 3166-1 alpha-2 code",
        ),
        (
            record(address=address(isDefaultBilling="maybe")),
            "address.isDefaultBilling is not a boolean",
        ),
        (
            record(address=address(isDefaultShipping="Y")),
            "address.isDefaultShipping is not a boolean",
        ),
        (
            record(address=address(city="c" * (MAX_FIELD_LENGTH + 1))),
            f"address.city is longer than {MAX_FIELD_LENGTH} characters",
        ),
    ],
    ids=[
        "email-absent",
        "email-null",
        "email-empty",
        "email-blank",
        "email-no-at",
        "email-no-dot-in-domain",
        "email-no-local-part",
        "email-double-at",
        "email-two-ats",
        "email-space",
        "email-trailing-dot",
        "email-empty-tld",
        "email-too-long",
        "first-absent",
        "first-null",
        "first-empty",
        "first-blank",
        "last-absent",
        "last-null",
        "last-empty",
        "bu-absent",
        "bu-null",
        "bu-blank",
        "first-too-long",
        "role-too-long",
        "iso2-and-country-null",
        "iso2-and-country-absent",
        "address-only-city",
        "iso2-and-country-empty",
        "iso2-and-country-blank",
        "iso2-three-letters",
        "iso2-one-letter",
        "iso2-digit",
        "iso2-long-truncated",
        "billing-garbage",
        "shipping-garbage",
        "city-too-long",
    ],
)
def test_validate_invalid_record_reason(data: dict[str, Any], reason: str) -> None:
    assert reason_of(data) == reason


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (without(record(), "customer_id"), "customer_id is missing"),
        (record(customer_id=None), "customer_id is missing"),
        (record(customer_id=""), "customer_id is empty"),
        (record(customer_id="   "), "customer_id is empty"),
        (
            record(customer_id="x" * (MAX_ID_LENGTH + 1)),
            "customer_id is too long or holds control characters",
        ),
        (
            record(customer_id="C\x001001"),
            "customer_id is too long or holds control characters",
        ),
        (
            record(customer_id="C\t1001"),
            "customer_id is too long or holds control characters",
        ),
        (
            record(customer_id="C\n1001"),
            "customer_id is too long or holds control characters",
        ),
        (
            record(customer_id="C\x7f1001"),
            "customer_id is too long or holds control characters",
        ),
    ],
    ids=["absent", "null", "empty", "blank", "too-long", "nul", "tab", "newline", "del"],
)
def test_customer_id_of_invalid_reason(data: dict[str, Any], reason: str) -> None:
    wire = decode_record(msgspec.json.encode(data))
    with pytest.raises(Invalid) as info:
        customer_id_of(wire)
    assert str(info.value) == reason


def test_validate_first_broken_rule_wins() -> None:
    data = record(email="bad", firstName="", businessUnit=None, address={})
    assert reason_of(data) == "email is malformed"


@pytest.mark.parametrize(
    "overrides",
    [
        {"email": "jane.roe"},
        {"email": "jane roe@example.com"},
        {"email": "a@" + "b" * 250 + ".de"},
        {"firstName": ""},
        {"firstName": FIRST * 200},
        {"lastName": LAST * 200},
        {"lastName": None},
        {"businessUnit": ""},
        {"address": address(iso2Code="DEU")},
        {"address": address(isDefaultBilling=FIRST)},
        {"address": address(isDefaultShipping=LAST * 3)},
        {"address": address(iso2Code=None, country=FIRST + LAST)},
        {"address": address(city=LAST * 200)},
        {"customer_id": "x" * 100},
    ],
)
def test_validate_reason_never_quotes_personal_data(overrides: dict[str, Any]) -> None:
    reason = reason_of(record(**overrides))
    values = [EMAIL, EMAIL.lower(), "jane", FIRST, LAST, "roe"]
    values.extend(str(v) for v in overrides.values() if isinstance(v, str))
    lowered = reason.lower()
    assert not any(value.lower() in lowered for value in values if value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Jane@Example.com", "jane@example.com"),
        ("  jane@example.com\t", "jane@example.com"),
        ("JANE@EXAMPLE.COM", "jane@example.com"),
        ("", ""),
    ],
)
def test_email_key_trims_and_lowercases(value: str, expected: str) -> None:
    assert email_key(value) == expected
