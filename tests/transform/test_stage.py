"""Tests of the transform stage: one page in, valid customers, rejections and duplicates out."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from pipeline.records import Page, RecordBatch, Rejected
from pipeline.transform.dedupe import SeenInMemory
from pipeline.transform.stage import position_key, transform_page
from tests.kit.records import bare_record as rec
from tests.kit.records import page


def ids(batch: RecordBatch) -> list[str]:
    return [c.customer_id for c in batch.customers]


# Mixed pages ----------------------------------------------------------------------------


def test_transform_page_mixed_page() -> None:
    batch = transform_page(
        page(
            200,
            rec("c1"),
            rec("c2", email=5),
            rec("c3"),
            b"[1, 2, 3]",
            rec("c4", firstName=""),
            b"{not json",
            rec(None),
            rec("c5"),
            rec("c1"),
        ),
        SeenInMemory(),
    )
    assert batch.offset == 200
    assert batch.size == 9
    assert ids(batch) == ["c1", "c3", "c5"]
    assert batch.rejected == [
        Rejected("c2", "invalid record: Expected `str | null`, got `int` - at `$.email`"),
        Rejected("#position-203", "invalid record: Expected `object`, got `array`"),
        Rejected("c4", "firstName is empty"),
        Rejected(
            "#position-205",
            "invalid record: JSON is malformed: object keys must be strings (byte 1)",
        ),
        Rejected("#position-206", "customer_id is missing"),
    ]
    assert batch.duplicates == 1


def test_transform_page_valid_records_in_source_order() -> None:
    order = ["z9", "a1", "m5", "42", "b2"]
    batch = transform_page(page(0, *(rec(i) for i in order)), SeenInMemory())
    assert ids(batch) == order
    assert [c.email for c in batch.customers] == [f"{i}@example.com" for i in order]
    assert batch.rejected == []
    assert batch.duplicates == 0


def test_transform_page_empty_page() -> None:
    assert transform_page(Page(30, []), SeenInMemory()) == RecordBatch(
        offset=30, size=0, customers=[], rejected=[], duplicates=0
    )


def test_transform_page_int_customer_id_becomes_text() -> None:
    batch = transform_page(page(0, rec(1001, email="n@example.com")), SeenInMemory())
    assert ids(batch) == ["1001"]


# Wrong types, non-objects, non-JSON -----------------------------------------------------


@pytest.mark.parametrize(
    ("record", "key", "reason"),
    [
        (rec("c1", email=5), "c1", "Expected `str | null`, got `int` - at `$.email`"),
        (
            rec("c1", firstName=["Ada"]),
            "c1",
            "Expected `str | null`, got `array` - at `$.firstName`",
        ),
        (rec(" c1 ", lastName={}), "c1", "Expected `str | null`, got `object` - at `$.lastName`"),
        (rec(77, role=1), "77", "Expected `str | null`, got `int` - at `$.role`"),
        (
            rec("c1", address={"zipCode": 1.5}),
            "c1",
            "Expected `int | str | null`, got `float` - at `$.address.zipCode`",
        ),
        (
            rec("c1", address=[{"zipCode": 1.5}]),
            "c1",
            "Expected `int | str | null`, got `float` - at `$.address[0].zipCode`",
        ),
        (
            rec("c1", address="Dachauer Str."),
            "c1",
            "Expected `object | array | null`, got `str` - at `$.address`",
        ),
        (rec(1.5), "#position-7", "Expected `int | str | null`, got `float` - at `$.customer_id`"),
        (rec(True), "#position-7", "Expected `int | str | null`, got `bool` - at `$.customer_id`"),
        (
            rec(["c1"]),
            "#position-7",
            "Expected `int | str | null`, got `array` - at `$.customer_id`",
        ),
    ],
    ids=[
        "email-int",
        "first-array",
        "last-object",
        "int-id-role-int",
        "zip-float",
        "zip-float-in-list",
        "address-str",
        "id-float",
        "id-bool",
        "id-array",
    ],
)
def test_transform_page_wrong_type_names_field_path(
    record: dict[str, Any], key: str, reason: str
) -> None:
    batch = transform_page(page(7, record), SeenInMemory())
    assert batch.customers == []
    assert batch.rejected == [Rejected(key, f"invalid record: {reason}")]


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (b"[]", "Expected `object`, got `array`"),
        (b'"c1"', "Expected `object`, got `str`"),
        (b"42", "Expected `object`, got `int`"),
        (b"null", "Expected `object`, got `null`"),
        (b"true", "Expected `object`, got `bool`"),
        (b"", "Input data was truncated"),
        (b'{"customer_id": "c1"', "Input data was truncated"),
        (b"{oops}", "JSON is malformed: object keys must be strings (byte 1)"),
        (b"@", "JSON is malformed: invalid character (byte 0)"),
        (b'{"customer_id": "c1"} {}', "JSON is malformed: trailing characters (byte 23)"),
        (b'{"customer_id": NaN}', "JSON is malformed: invalid character (byte 16)"),
        (b'{"customer_id": Infinity}', "JSON is malformed: invalid character (byte 16)"),
        (b'\xef\xbb\xbf{"customer_id": "c1"}', "JSON is malformed: invalid character (byte 0)"),
    ],
    ids=[
        "array",
        "string",
        "number",
        "null",
        "bool",
        "empty-bytes",
        "truncated",
        "bad-key",
        "bad-token",
        "trailing",
        "nan",
        "infinity",
        "bom",
    ],
)
@pytest.mark.parametrize(("offset", "filler"), [(0, 0), (100, 3)])
def test_transform_page_unreadable_record_gets_position_key(
    item: bytes, reason: str, offset: int, filler: int
) -> None:
    fillers = [rec(f"ok{i}") for i in range(filler)]
    batch = transform_page(page(offset, *fillers, item), SeenInMemory())
    assert ids(batch) == [f"ok{i}" for i in range(filler)]
    assert batch.rejected == [Rejected(f"#position-{offset + filler}", f"invalid record: {reason}")]


@pytest.mark.parametrize(
    ("customer_id", "reason"),
    [
        (None, "customer_id is missing"),
        ("", "customer_id is empty"),
        ("  ", "customer_id is empty"),
        ("x" * 65, "customer_id is too long or holds control characters"),
        ("c\x001", "customer_id is too long or holds control characters"),
    ],
)
def test_transform_page_unusable_id_gets_position_key(customer_id: Any, reason: str) -> None:
    batch = transform_page(
        page(50, rec("c0"), rec(customer_id, email="x@example.com")), SeenInMemory()
    )
    assert batch.rejected == [Rejected("#position-51", reason)]
    assert ids(batch) == ["c0"]


@pytest.mark.parametrize("position", [0, 1, 9, 12_345])
def test_position_key_format(position: int) -> None:
    assert position_key(position) == f"#position-{position}"


# Duplicates -----------------------------------------------------------------------------


def test_transform_page_repeat_across_pages_is_a_duplicate() -> None:
    dedupe = SeenInMemory()
    first = transform_page(page(0, rec("c1"), rec("c2")), dedupe)
    second = transform_page(page(2, rec("c2"), rec("c3"), rec("c1")), dedupe)
    assert ids(first) == ["c1", "c2"]
    assert ids(second) == ["c3"]
    assert second.rejected == []
    assert second.duplicates == 2
    assert len(dedupe) == 3


def test_transform_page_repeat_within_page_is_a_duplicate() -> None:
    batch = transform_page(page(0, rec("c1"), rec("c1"), rec(" c1 "), rec("c2")), SeenInMemory())
    assert ids(batch) == ["c1", "c2"]
    assert batch.rejected == []
    assert batch.duplicates == 2


def test_transform_page_first_copy_wins_over_changed_repeat() -> None:
    dedupe = SeenInMemory()
    transform_page(page(0, rec("c1", firstName="First")), dedupe)
    batch = transform_page(page(1, rec("c1", firstName="Second")), dedupe)
    assert batch.customers == []
    assert batch.duplicates == 1


def test_transform_page_int_and_text_ids_are_one_customer() -> None:
    batch = transform_page(
        page(0, rec(7, email="a@x.de"), rec("7", email="a@x.de")), SeenInMemory()
    )
    assert ids(batch) == ["7"]
    assert batch.duplicates == 1
    assert batch.rejected == []


def test_transform_page_repeat_of_rejected_record_is_a_duplicate() -> None:
    dedupe = SeenInMemory()
    first = transform_page(page(0, rec("c1", email=5), rec("c2", firstName="")), dedupe)
    second = transform_page(page(2, rec("c1"), rec("c2")), dedupe)
    assert [r.customer_id for r in first.rejected] == ["c1", "c2"]
    assert second.customers == []
    assert second.rejected == []
    assert second.duplicates == 2


def test_transform_page_unreadable_records_keyed_by_position() -> None:
    dedupe = SeenInMemory()
    first = transform_page(page(0, b"[]", b"[]"), dedupe)
    again = transform_page(page(0, b"[]"), dedupe)
    assert [r.customer_id for r in first.rejected] == ["#position-0", "#position-1"]
    assert first.duplicates == 0
    # Reading the same position again in this pass (a re-read page) is a repeat.
    assert again.rejected == []
    assert again.duplicates == 1


# Emails ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "second_email",
    ["ada@example.com", "ADA@Example.COM", "  ada@example.com  ", "\tAda@EXAMPLE.com\n"],
)
def test_transform_page_reused_email_rejected_naming_owner(second_email: str) -> None:
    dedupe = SeenInMemory()
    first = transform_page(page(0, rec("c1", email="Ada@Example.com")), dedupe)
    second = transform_page(page(1, rec("c2", email=second_email), rec("c3")), dedupe)
    assert ids(first) == ["c1"]
    assert ids(second) == ["c3"]
    assert second.rejected == [Rejected("c2", "email already used by customer c1")]
    assert second.duplicates == 0


def test_transform_page_reused_email_within_page() -> None:
    batch = transform_page(
        page(0, rec("c1", email="a@x.de"), rec("c2", email="A@X.DE"), rec("c3", email="a@x.de")),
        SeenInMemory(),
    )
    assert ids(batch) == ["c1"]
    assert batch.rejected == [
        Rejected("c2", "email already used by customer c1"),
        Rejected("c3", "email already used by customer c1"),
    ]


def test_transform_page_invalid_record_does_not_claim_its_email() -> None:
    batch = transform_page(
        page(0, rec("c1", email="a@x.de", lastName=""), rec("c2", email="a@x.de")), SeenInMemory()
    )
    assert ids(batch) == ["c2"]
    assert batch.rejected == [Rejected("c1", "lastName is empty")]


def test_transform_page_duplicate_keeps_its_own_email() -> None:
    dedupe = SeenInMemory()
    batch = transform_page(page(0, rec("c1", email="a@x.de"), rec("c1", email="b@x.de")), dedupe)
    later = transform_page(page(2, rec("c2", email="b@x.de")), dedupe)
    assert ids(batch) == ["c1"]
    assert ids(later) == ["c2"]


# Hostile records ------------------------------------------------------------------------

HUGE = 2_000_000
WIDE_JUNK = [[{"a": [[[[{"b": None}]]]]}]] * 1000
NESTED_JUNK = msgspec.json.decode(b"[" * 100 + b"]" * 100)


@pytest.mark.parametrize(
    ("item", "key", "reason"),
    [
        (rec("c1", firstName="A" * HUGE), "c1", "firstName is longer than 1000 characters"),
        (rec("c1", email="a" * HUGE + "@x.de"), "c1", "email is longer than 1000 characters"),
        (rec("c1", email="a" * 300 + "@x.de"), "c1", "email is malformed"),
        (rec("X" * HUGE), "#position-3", "customer_id is too long or holds control characters"),
        (rec("c1", junk=WIDE_JUNK, businessUnit=None), "c1", "businessUnit is missing"),
        (rec("c1", junk=NESTED_JUNK, lastName=None), "c1", "lastName is missing"),
        (
            b"[" * 5000 + b"]" * 5000,
            "#position-3",
            "invalid record: Expected `object`, got `array`",
        ),
        (
            b'{"customer_id": "\\ud800"}',
            "#position-3",
            "invalid record: Input data was truncated",
        ),
        (
            b"{" * 10 + b"}" * 10,
            "#position-3",
            "invalid record: JSON is malformed: object keys must be strings (byte 1)",
        ),
        (
            rec("c1", address={"iso2Code": "\x00\x01"}),
            "c1",
            "address.iso2Code is not an ISO 3166-1 alpha-2 code",
        ),
        (
            rec("c1", address={"iso2Code": "DE", "city": "c" * HUGE}),
            "c1",
            "address.city is longer than 1000 characters",
        ),
    ],
    ids=[
        "huge-name",
        "huge-email",
        "long-email",
        "huge-id",
        "wide-junk",
        "nested-junk",
        "deep-top-level-array",
        "lone-surrogate",
        "brace-soup",
        "control-iso2",
        "huge-city",
    ],
)
def test_transform_page_hostile_record_rejected_not_raised(
    item: Any, key: str, reason: str
) -> None:
    batch = transform_page(page(0, rec("a"), rec("b"), rec("c"), item, rec("d")), SeenInMemory())
    assert ids(batch) == ["a", "b", "c", "d"]
    assert batch.size == 5
    assert batch.rejected == [Rejected(key, reason)]


@pytest.mark.parametrize(
    ("item", "key"),
    [
        (rec("c1", junk="j" * HUGE), "c1"),
        (rec("c1", junk=WIDE_JUNK), "c1"),
        (rec("c1", junk=NESTED_JUNK), "c1"),
        (rec(99_999_999_999_999_999_999_999_999), "99999999999999999999999999"),
        (rec("c/1?x=#&y", email="odd@x.de"), "c/1?x=#&y"),
    ],
    ids=["huge-unknown-field", "wide-junk", "nested-junk", "huge-int-id", "url-chars-id"],
)
def test_transform_page_hostile_but_valid_record_passes(item: Any, key: str) -> None:
    batch = transform_page(page(0, rec("a"), item, rec("b")), SeenInMemory())
    assert ids(batch) == ["a", key, "b"]
    assert batch.rejected == []


@pytest.mark.parametrize(
    ("item", "key"),
    [
        (b'{"customer_id": "c\xff1", "email": "e@x.de"}', "#position-1"),
        (b'{"customer_id": "c1", "email": "\xc3(@x.de"}', "c1"),
        (b'{"customer_id": "c1", "firstName": "\xed\xa0\x80"}', "c1"),
    ],
    ids=["in-customer-id", "in-email", "encoded-surrogate-in-name"],
)
def test_transform_page_invalid_utf8_is_rejected_not_raised(item: bytes, key: str) -> None:
    batch = transform_page(page(0, rec("a"), item, rec("b")), SeenInMemory())
    assert ids(batch) == ["a", "b"]
    assert [r.customer_id for r in batch.rejected] == [key]
    assert batch.rejected[0].reason.startswith("invalid record: ")


def test_transform_page_deeply_nested_junk_is_rejected_not_raised() -> None:
    depth = 1500
    item = b'{"customer_id": "c1", "junk": ' + b"[" * depth + b"]" * depth + b"}"
    batch = transform_page(page(0, rec("a"), item, rec("b")), SeenInMemory())
    assert ids(batch) == ["a", "b"]
    assert len(batch.rejected) == 1
    assert batch.rejected[0].customer_id in {"c1", "#position-1"}


@pytest.mark.parametrize(
    "customer_id", ["X" * 100_000, "c\x001", "c\n1"], ids=["huge", "nul", "newline"]
)
def test_transform_page_decode_error_key_obeys_id_rules(customer_id: str) -> None:
    batch = transform_page(page(0, rec(customer_id, email=5)), SeenInMemory())
    assert [r.customer_id for r in batch.rejected] == ["#position-0"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("businessUnit", "Retail\x1b[2J"),
        ("firstName", "Ada\x07"),
        ("lastName", "Love\x7flace"),
        ("role", "Buyer\x9b2J"),  # C1 CSI: an escape sequence on some terminals
        ("salutation", "M\ns"),
        ("address.city", "Berlin\x1b]0;pwned\x07"),
    ],
)
def test_control_characters_in_a_field_are_refused_naming_it(field: str, value: str) -> None:
    address = {"address1": "Str. 1", "zipCode": "1", "city": "B", "iso2Code": "DE"}
    if field.startswith("address."):
        record = rec("c1", address={**address, field.split(".")[1]: value})
    else:
        record = rec("c1", address=address, **{field: value})
    batch = transform_page(
        page(0, record, rec("c2", firstName="Zoë", lastName="Ñuñez")), SeenInMemory()
    )
    assert batch.rejected == [Rejected("c1", f"{field} holds a control character")]
    assert ids(batch) == ["c2"]  # non-ASCII letters are no control characters
