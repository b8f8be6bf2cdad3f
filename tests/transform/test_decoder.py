"""Tests of the record decoder: MAN field names and address shapes as configured."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.config import AddressFieldMap, FieldMap, SourceSettings
from pipeline.config_load import settings_from_mapping
from pipeline.errors import ConfigError
from pipeline.records import Customer, RecordBatch, Rejected
from pipeline.transform.dedupe import SeenInMemory
from pipeline.transform.stage import transform_page
from pipeline.transform.validate import Invalid, customer_id_of, validate
from pipeline.transform.wire import DEFAULT_DECODER, ManAddress, ManRecord, RecordDecoder
from tests.kit.records import address, page
from tests.kit.records import bare_record as rec
from tests.kit.records import customer as make_customer

URL = "http://127.0.0.1:1/customers"


def addr(tag: str, billing: Any = False, shipping: Any = False, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "address1": f"{tag} Str. 1",
        "zipCode": "80995",
        "city": "München",
        "country": "Germany",
        "iso2Code": "DE",
        "isDefaultBilling": billing,
        "isDefaultShipping": shipping,
    }
    data.update(overrides)
    return data


def run(decoder: RecordDecoder, *items: Any) -> RecordBatch:
    return transform_page(page(0, *items), SeenInMemory(), decoder)


def one(decoder: RecordDecoder, item: Any) -> Customer:
    batch = run(decoder, item)
    assert batch.rejected == []
    [customer] = batch.customers
    return customer


def reason(decoder: RecordDecoder, item: Any) -> str:
    batch = run(decoder, item)
    assert batch.customers == []
    [rejected] = batch.rejected
    return rejected.reason


def decoder(pick: Any = "billing", **fields: str) -> RecordDecoder:
    return RecordDecoder(FieldMap(**fields), pick=pick)


def line1(customer: Customer) -> str | None:
    return customer.address.line1 if customer.address is not None else None


# Construction ---------------------------------------------------------------------------


def test_record_decoder_default_settings_equal_the_default() -> None:
    assert RecordDecoder.from_settings(SourceSettings(url=URL)) == DEFAULT_DECODER
    assert RecordDecoder() == DEFAULT_DECODER
    assert DEFAULT_DECODER.pick == "billing"


def test_record_decoder_from_settings_reads_the_maps() -> None:
    settings = settings_from_mapping(
        {
            "source": {
                "url": URL,
                "fields": {"customer_id": "customerId", "address": "addresses"},
                "address_fields": {"zipCode": "postalCode"},
                "address_pick": "shipping",
            }
        },
        environ={},
    )
    built = RecordDecoder.from_settings(settings.source)
    assert built.pick == "shipping"
    assert built.fields.customer_id == "customerId"
    assert built.address_fields.zipCode == "postalCode"
    assert built != DEFAULT_DECODER
    wire = built.decode(b'{"customerId": "c7", "addresses": [{"postalCode": "1010"}]}')
    assert isinstance(wire, ManRecord)
    assert wire.customer_id == "c7"
    assert isinstance(wire.address, list)
    assert isinstance(wire.address[0], ManAddress)
    assert wire.address[0].zipCode == "1010"


def test_record_decoder_first_element_forces_first_pick() -> None:
    built = decoder("billing", address="addresses[0]")
    assert built.pick == "first"
    assert built == decoder("shipping", address="addresses[0]")


@pytest.mark.parametrize(
    ("fields", "address_fields", "path"),
    [
        ({"firstName": "name", "lastName": "name"}, {}, "source.fields"),
        ({"email": ""}, {}, "source.fields.email"),
        ({"address": "addresses[1]"}, {}, "source.fields.address"),
        ({"email": "emails[0]"}, {}, "source.fields.email"),
        ({}, {"city": "town", "address1": "town"}, "source.address_fields"),
        ({}, {"phone": ""}, "source.address_fields.phone"),
    ],
    ids=[
        "two-fields-one-key",
        "empty",
        "other-index",
        "index-off-address",
        "address-clash",
        "empty-a",
    ],
)
def test_record_decoder_bad_map_is_a_config_error(
    fields: dict[str, str], address_fields: dict[str, str], path: str
) -> None:
    with pytest.raises(ConfigError) as info:
        RecordDecoder(FieldMap(**fields), AddressFieldMap(**address_fields))
    assert info.value.path == path


# Renamed fields -------------------------------------------------------------------------


def test_transform_page_renamed_customer_id() -> None:
    item = rec(None)
    del item["customer_id"]
    item["customerId"] = "C-42"
    customer = one(decoder(customer_id="customerId"), item)
    assert customer.customer_id == "C-42"
    # The document's name is no longer read.
    assert reason(decoder(customer_id="customerId"), rec("c1")) == "customer_id is missing"


def test_transform_page_every_field_renamed() -> None:
    names = {
        "customer_id": "id",
        "salutation": "title",
        "firstName": "first_name",
        "lastName": "last_name",
        "email": "mail",
        "businessUnit": "unit",
        "role": "userRole",
        "address": "postal",
    }
    address_names = {
        "address1": "street",
        "address2": "street2",
        "address3": "street3",
        "zipCode": "postalCode",
        "city": "town",
        "country": "countryName",
        "iso2Code": "countryCode",
        "phone": "tel",
        "isDefaultBilling": "billing",
        "isDefaultShipping": "shipping",
    }
    item = {
        "id": 77,
        "title": "Ms",
        "first_name": " Ada ",
        "last_name": "Lovelace",
        "mail": "Ada@Example.com",
        "unit": "HQ",
        "userRole": "admin",
        "postal": {
            "street": "Dachauer Str. 667",
            "street2": "Gate 3",
            "street3": "",
            "postalCode": 80995,
            "town": "München",
            "countryName": "Germany",
            "countryCode": "de",
            "tel": "+49 89 1580 0",
            "billing": "true",
            "shipping": 0,
        },
    }
    built = RecordDecoder(FieldMap(**names), AddressFieldMap(**address_names))
    assert one(built, item) == make_customer(
        customer_id="77", business_unit="HQ", role="admin", address=address(line3="")
    )


def test_transform_page_renamed_field_wrong_type_names_the_json_key() -> None:
    item = rec("c1")
    item["mail"] = item.pop("email")
    item["mail"] = 5
    batch = run(decoder(email="mail"), item)
    assert batch.rejected == [
        Rejected("c1", "invalid record: Expected `str | null`, got `int` - at `$.mail`")
    ]


def test_transform_page_probe_reads_the_renamed_id() -> None:
    item = {"customerId": " C-9 ", "email": 5}
    renamed = run(decoder(customer_id="customerId"), item)
    assert [r.customer_id for r in renamed.rejected] == ["C-9"]
    assert renamed.rejected[0].reason.endswith("- at `$.email`")
    # The default decoder reads `customer_id` only: the same record is known by position.
    assert [r.customer_id for r in run(DEFAULT_DECODER, item).rejected] == ["#position-0"]
    stale = {"customer_id": "C-9", "email": 5}
    assert [r.customer_id for r in run(decoder(customer_id="customerId"), stale).rejected] == [
        "#position-0"
    ]


def test_record_decoder_probe_customer_id() -> None:
    built = decoder(customer_id="customerId")
    assert built.probe_customer_id(b'{"customerId": 12, "email": 5}') == "12"
    assert built.probe_customer_id(b'{"customer_id": "x"}') is None
    assert built.probe_customer_id(b"[") is None


def test_transform_page_renamed_address_fields() -> None:
    built = RecordDecoder(
        address_fields=AddressFieldMap(iso2Code="countryCode", isDefaultShipping="shipping")
    )
    item = rec(address={"countryCode": "at", "shipping": "yes", "iso2Code": "DE"})
    customer = one(built, item)
    assert customer.address is not None
    assert (customer.address.iso2, customer.address.default_shipping) == ("AT", True)


# Address lists --------------------------------------------------------------------------

DECOY = addr("decoy")
SECOND_DECOY = addr("decoy2")
BILLING = addr("billing", billing=True)
SHIPPING = addr("shipping", shipping="true")
BOTH = addr("both", billing=1, shipping=1)


@pytest.mark.parametrize(
    ("pick", "addresses", "expected"),
    [
        ("billing", [DECOY, SHIPPING, BILLING, SECOND_DECOY], "billing Str. 1"),
        ("billing", [DECOY, SHIPPING, SECOND_DECOY], "shipping Str. 1"),
        ("billing", [DECOY, SECOND_DECOY], "decoy Str. 1"),
        ("billing", [DECOY, BOTH, BILLING], "both Str. 1"),
        ("shipping", [DECOY, BILLING, SHIPPING, SECOND_DECOY], "shipping Str. 1"),
        ("shipping", [DECOY, BILLING, SECOND_DECOY], "billing Str. 1"),
        ("shipping", [SECOND_DECOY, DECOY], "decoy2 Str. 1"),
        ("first", [DECOY, BILLING, SHIPPING], "decoy Str. 1"),
        ("first", [SHIPPING, BILLING], "shipping Str. 1"),
        ("billing", [BILLING], "billing Str. 1"),
        ("billing", [{}, {"city": None, "iso2Code": " "}, SHIPPING], "shipping Str. 1"),
        ("first", [{"address1": None}, SECOND_DECOY, DECOY], "decoy2 Str. 1"),
    ],
    ids=[
        "billing-wins",
        "billing-else-shipping",
        "billing-else-first",
        "billing-first-flagged",
        "shipping-wins",
        "shipping-else-billing",
        "shipping-else-first",
        "first",
        "first-ignores-flags",
        "single",
        "blank-entries-skipped",
        "first-skips-blank",
    ],
)
def test_transform_page_address_list_pick(pick: Any, addresses: list[Any], expected: str) -> None:
    customer = one(decoder(pick, address="addresses"), rec(addresses=addresses))
    assert line1(customer) == expected


@pytest.mark.parametrize("pick", ["billing", "shipping", "first"])
def test_transform_page_list_under_document_name(pick: Any) -> None:
    customer = one(RecordDecoder(pick=pick), rec(address=[DECOY, BILLING, SHIPPING]))
    assert (
        line1(customer)
        == {"billing": "billing", "shipping": "shipping", "first": "decoy"}[pick] + " Str. 1"
    )


@pytest.mark.parametrize("pick", ["billing", "shipping", "first"])
def test_transform_page_first_element_field(pick: Any) -> None:
    built = decoder(pick, address="addresses[0]")
    assert line1(one(built, rec(addresses=[DECOY, BILLING, SHIPPING]))) == "decoy Str. 1"
    assert line1(one(built, rec(addresses=BILLING))) == "billing Str. 1"
    assert one(built, rec(addresses=[])).address is None


@pytest.mark.parametrize("value", [[], [{}], [{"city": "", "isDefaultBilling": False}], None])
def test_transform_page_no_address_in_list(value: Any) -> None:
    assert one(decoder(address="addresses"), rec(addresses=value)).address is None


def test_transform_page_single_object_under_list_name() -> None:
    customer = one(decoder(address="addresses"), rec(addresses=SHIPPING))
    assert line1(customer) == "shipping Str. 1"


def test_transform_page_bad_flag_in_list_rejects() -> None:
    addresses = [BILLING, addr("odd", shipping="maybe")]
    built = decoder("billing", address="addresses")
    assert reason(built, rec(addresses=addresses)) == "address.isDefaultShipping is not a boolean"


def test_transform_page_picked_address_is_validated() -> None:
    addresses = [DECOY, addr("bad", billing=True, iso2Code="DEU")]
    assert reason(decoder(address="addresses"), rec(addresses=addresses)) == (
        "address.iso2Code 'DEU' is not an ISO 3166-1 alpha-2 code"
    )


def test_transform_page_long_field_in_any_listed_address_rejects() -> None:
    addresses = [BILLING, addr("long", city="c" * 2000)]
    assert reason(decoder(address="addresses"), rec(addresses=addresses)) == (
        "address.city is longer than 1000 characters"
    )


def test_validate_pick_argument() -> None:
    wire = DEFAULT_DECODER.decode(msgspec.json.encode(rec(address=[DECOY, SHIPPING, BILLING])))
    picked = {
        pick: line1(validate(wire, customer_id_of(wire), pick=pick))
        for pick in ("billing", "shipping", "first")
    }
    assert picked == {
        "billing": "billing Str. 1",
        "shipping": "shipping Str. 1",
        "first": "decoy Str. 1",
    }


def test_validate_bad_flag_in_list_raises_invalid() -> None:
    wire = DEFAULT_DECODER.decode(msgspec.json.encode(rec(address=[DECOY, addr("x", billing=2)])))
    with pytest.raises(Invalid, match=r"^address\.isDefaultBilling is not a boolean$"):
        validate(wire, "c1")


# Any shape ------------------------------------------------------------------------------

flag_values = st.sampled_from([None, True, False, 0, 1, 2, "true", "FALSE", " yes ", "maybe", 1.5])
text_values = st.sampled_from([None, "", "  ", "x", "Germany", "Narnia", " deutschland "])
codes = st.sampled_from([None, "", "  ", "DE", "de", "DEU"])
addresses = st.fixed_dictionaries(
    {},
    optional={
        "street": text_values,
        "country": text_values,
        "code": codes,
        "isDefaultBilling": flag_values,
        "isDefaultShipping": flag_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(st.none(), addresses, st.lists(addresses, max_size=4)), max_size=8),
    st.sampled_from(["billing", "shipping", "first"]),
    st.sampled_from(["addresses", "addresses[0]"]),
)
def test_transform_page_any_address_shape_is_accepted_or_rejected(
    shapes: list[Any], pick: Any, field: str
) -> None:
    built = RecordDecoder(
        FieldMap(address=field), AddressFieldMap(address1="street", iso2Code="code"), pick
    )
    items = [rec(f"c{i}", addresses=shape) for i, shape in enumerate(shapes)]
    batch = run(built, *items)  # must not raise
    assert len(batch.customers) + len(batch.rejected) == len(items)
    for customer in batch.customers:
        if customer.address is not None:
            assert customer.address.iso2 in {"DE"}
    for rejected in batch.rejected:
        assert "Narnia" not in rejected.reason and "maybe" not in rejected.reason
