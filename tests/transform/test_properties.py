"""Property-based tests: hostile pages never escape the transform, and what comes out is sound."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.config import SourceSettings
from pipeline.errors import DecodeError
from pipeline.records import Page
from pipeline.sources.customers import CustomerSource
from pipeline.transform.dedupe import SeenInMemory
from pipeline.transform.stage import transform_page

FIELDS = ["customer_id", "salutation", "firstName", "lastName", "email", "businessUnit", "role"]
ADDRESS = ["address1", "address2", "address3", "zipCode", "city", "country", "iso2Code", "phone"]
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.text(min_size=1000, max_size=1200, alphabet="ab "),
    st.sampled_from(["", "  ", "true", "false", "DE", "de", "DEU", "a@b.cd", " X@Y.ORG "]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)


@st.composite
def records(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)  # not even an object
    record = {f: draw(json_values) for f in draw(st.lists(st.sampled_from(FIELDS), unique=True))}
    for field in ("customer_id", "email", "firstName", "lastName", "businessUnit"):
        if draw(st.booleans()):
            record[field] = draw(st.sampled_from(["C1", "C2", "x@y.de", "Ann", "HQ", " a@b.cd "]))
    if draw(st.booleans()):
        record["address"] = {f: draw(json_values) for f in draw(st.lists(st.sampled_from(ADDRESS)))}
    return record


raw_records = st.one_of(
    records().map(msgspec.json.encode),
    st.binary(max_size=60),
    st.sampled_from(
        [
            b'{"customer_id": NaN}',
            b'{"customer_id": "C9", "customer_id": "C10", "email": "a@b.cd"}',
            b'{"email": "\xff\xfe@x.de", "customer_id": "C11"}',
            b"[" * 5000 + b"]" * 5000,
            b'{"address": ' * 3000 + b"1" + b"}" * 3000,
            b"",
        ]
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(raw_records, max_size=12), min_size=1, max_size=3))
def test_every_record_is_accepted_sound_or_rejected_with_a_reason(pages: list[list[bytes]]) -> None:
    dedupe = SeenInMemory()
    offset = 0
    for raws in pages:
        page = Page(offset, [msgspec.Raw(raw) for raw in raws])
        batch = transform_page(page, dedupe)  # must not raise, whatever the bytes
        offset += len(raws)
        assert len(batch.customers) + len(batch.rejected) + batch.duplicates == len(raws)
        for customer in batch.customers:
            assert customer.customer_id and customer.customer_id == customer.customer_id.strip()
            assert len(customer.customer_id) <= 64
            assert EMAIL.match(customer.email) and customer.email == customer.email.lower()
            assert customer.first_name.strip() and customer.last_name.strip()
            assert customer.business_unit.strip()
            if customer.address is not None:
                assert re.fullmatch(r"[A-Z]{2}", customer.address.iso2)
        for rejected in batch.rejected:
            assert rejected.customer_id and rejected.reason
            assert len(rejected.reason) < 400


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200) | st.sampled_from([b"[" * 20000, b'{"data": null}', b"null"]))
def test_a_page_body_is_records_or_a_decode_error(body: bytes) -> None:
    source = CustomerSource(SourceSettings(url="http://127.0.0.1:1/x"))
    try:
        answer = source._records(body)
    except DecodeError:
        return
    if answer is None:  # an empty body: the end past the end, a failure before it
        assert not body.strip()
        return
    assert isinstance(answer.records, list)
    assert answer.total is None or answer.total >= 0
