"""Tests of the seeded MAN dataset: determinism, paging, defects and quirks, changes."""

from __future__ import annotations

import collections
from typing import Any

import pytest

from pipeline.emulators.dataset import DEFECT_KINDS, QUIRK_KINDS, Dataset


def test_dataset_same_seed_same_records() -> None:
    assert list(Dataset(300, seed=3).records()) == list(Dataset(300, seed=3).records())


def test_dataset_different_seed_different_records() -> None:
    first, second = Dataset(300, seed=3), Dataset(300, seed=4)
    differing = sum(a != b for a, b in zip(first.records(), second.records(), strict=True))
    assert differing > 250


def test_dataset_record_is_pure_function_of_index() -> None:
    dataset = Dataset(5000, seed=11)
    late = dataset.record(4321)
    dataset.page(0, 100)
    assert Dataset(5000, seed=11).record(4321) == late


def test_dataset_ids_ascending_in_index_order() -> None:
    dataset = Dataset(1000)
    ids = [record["customer_id"] for record in dataset.records()]
    assert ids == sorted(ids)
    assert ids[0] == "C0000000" and ids[-1] == dataset.customer_id(999) == "C0000999"
    assert len(set(ids)) == 1000


def test_dataset_page_slices_and_ends() -> None:
    dataset = Dataset(25)
    assert [r["customer_id"] for r in dataset.page(10, 5)] == [
        dataset.customer_id(i) for i in range(10, 15)
    ]
    assert len(dataset.page(20, 10)) == 5
    assert dataset.page(25, 10) == []
    assert dataset.page(1000, 10) == []
    assert dataset.page(0, 0) == []


def test_dataset_page_negative_raises() -> None:
    with pytest.raises(ValueError):
        Dataset(10).page(-1, 5)


def test_dataset_record_out_of_range_raises() -> None:
    with pytest.raises(IndexError):
        Dataset(10).record(10)


def test_dataset_records_use_man_field_names() -> None:
    record = Dataset(10).record(0)
    assert list(record) == [
        "customer_id", "salutation", "firstName", "lastName", "email",
        "businessUnit", "role", "address",
    ]  # fmt: skip
    assert set(record["address"]) == {
        "address1", "address2", "address3", "zipCode", "city", "country", "iso2Code",
        "phone", "isDefaultBilling", "isDefaultShipping",
    }  # fmt: skip
    assert isinstance(record["address"]["zipCode"], str)
    assert record["address"]["iso2Code"].isupper()


def test_dataset_first_ten_records_normal() -> None:
    dataset = Dataset(2000)
    normal_ids = {dataset.customer_id(i) for i in range(10)}
    assert not normal_ids & set(dataset.defects)
    assert not normal_ids & set(dataset.quirks)


def test_dataset_every_kind_present_at_2000() -> None:
    for seed in (0, 7, 12345):
        dataset = Dataset(2000, seed=seed)
        assert set(dataset.defects.values()) == set(DEFECT_KINDS)
        assert set(dataset.quirks.values()) == set(QUIRK_KINDS)


def test_dataset_defect_and_quirk_rates() -> None:
    dataset = Dataset(10_000)
    assert len(dataset.defects) == 100
    assert len(dataset.quirks) == 200
    assert not set(dataset.defects) & set(dataset.quirks)


def test_dataset_without_defects_has_none() -> None:
    dataset = Dataset(2000, defects=False)
    assert dataset.defects == {} and dataset.quirks == {}
    assert all(isinstance(r.get("email"), str) and "@" in r["email"] for r in dataset.records())


def test_dataset_non_ascii_names_present() -> None:
    names = {r["lastName"] for r in Dataset(500, defects=False).records()}
    assert any(not name.isascii() for name in names)


def _folded(email: object) -> str:
    return str(email).strip().lower()


def test_dataset_emails_unique_except_duplicate_defects() -> None:
    dataset = Dataset(3000)
    defects = dataset.defects
    seen: dict[str, str] = {}
    duplicates = 0
    for record in dataset.records():
        email = record.get("email")
        if not isinstance(email, str) or "@" not in email:
            continue
        key = _folded(email)
        cid = record["customer_id"]
        if key in seen:
            assert defects.get(cid) == "duplicate_email", cid
            assert seen[key] < cid and seen[key] not in defects
            duplicates += 1
        else:
            assert defects.get(cid) != "duplicate_email", cid
            assert email == key  # normal e-mails are trimmed and lower-case
            seen[key] = cid
    assert duplicates == collections.Counter(defects.values())["duplicate_email"] > 0


def _flags(record: dict[str, Any]) -> tuple[object, object]:
    return record["address"]["isDefaultBilling"], record["address"]["isDefaultShipping"]


@pytest.mark.parametrize(
    ("kind", "check"),
    [
        ("missing_email", lambda r: "email" not in r),
        ("empty_email", lambda r: r["email"] == ""),
        ("bad_email", lambda r: "@" not in r["email"]),
        ("empty_first_name", lambda r: r["firstName"].strip() == ""),
        ("missing_last_name", lambda r: "lastName" not in r),
        ("iso2_three_letters", lambda r: len(r["address"]["iso2Code"]) == 3),
        ("iso2_empty", lambda r: r["address"]["iso2Code"] == "" and r["address"]["country"]),
        ("wrong_type", lambda r: isinstance(r["firstName"], int)),
        ("duplicate_email", lambda r: r["email"] != r["email"].strip().lower()),
        ("no_address", lambda r: r["address"] is None),
        ("address_absent", lambda r: "address" not in r),
        ("flags_false", lambda r: _flags(r) == (False, False)),
        ("flags_as_strings", lambda r: isinstance(r["address"]["isDefaultBilling"], str)),
        ("iso2_lowercase", lambda r: r["address"]["iso2Code"].islower()),
        ("unknown_business_unit", lambda r: r["businessUnit"] == "Ghost Unit"),
        ("long_lines", lambda r: len(r["address"]["address1"]) > 100),
        ("phone_no_country_code", lambda r: not r["address"]["phone"].startswith("+")),
        ("numeric_like_zip", lambda r: r["address"]["zipCode"] == "01067"),
    ],
)
def test_dataset_kind_shapes_record(kind: str, check: object) -> None:
    dataset = Dataset(2000, seed=5)
    kinds = {**dataset.defects, **dataset.quirks}
    ids = [cid for cid, k in kinds.items() if k == kind]
    assert ids
    for cid in ids:
        record = dataset.record(dataset.index_of(cid))
        assert callable(check) and check(record), (kind, record)


def test_dataset_update_merges_fields_and_address() -> None:
    dataset = Dataset(100)
    before = dataset.record(3)
    dataset.update("C0000003", {"lastName": "Łęcka", "address": {"city": "Gdańsk"}})
    after = dataset.record(3)
    assert after["lastName"] == "Łęcka"
    assert after["address"]["city"] == "Gdańsk"
    assert after["address"]["zipCode"] == before["address"]["zipCode"]
    assert after["email"] == before["email"]
    assert dataset.record(4) == Dataset(100).record(4)


def test_dataset_update_accumulates_changes() -> None:
    dataset = Dataset(100)
    dataset.update("C0000003", {"address": None})
    dataset.update("C0000003", {"address": {"city": "Brno"}})
    dataset.update("C0000003", {"role": "viewer"})
    record = dataset.record(3)
    assert record["address"] == {"city": "Brno"}
    assert record["role"] == "viewer"


def test_dataset_update_returned_record_is_a_copy() -> None:
    dataset = Dataset(10)
    dataset.update("C0000001", {"role": "admin"})
    dataset.record(1)["address"]["city"] = "mutated"
    assert dataset.record(1)["address"]["city"] != "mutated"


def test_dataset_update_unknown_id_raises() -> None:
    dataset = Dataset(10)
    with pytest.raises(KeyError):
        dataset.update("C0000010", {"role": "admin"})
    with pytest.raises(KeyError):
        dataset.update("nope", {"role": "admin"})
    with pytest.raises(ValueError):
        dataset.update("C0000001", {"customer_id": "C0000002"})


def test_dataset_repr_shows_seed() -> None:
    assert "seed=42" in repr(Dataset(1, seed=42))


def test_dataset_large_pages_on_demand() -> None:
    dataset = Dataset(1_000_000)
    page = dataset.page(999_990, 100)
    assert [r["customer_id"] for r in page][-1] == "C0999999"
    assert len(page) == 10
    assert len(dataset.defects) == 10_000
