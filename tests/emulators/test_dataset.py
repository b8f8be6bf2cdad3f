"""Tests of the seeded MAN dataset: determinism, paging, defects and quirks, changes."""

from __future__ import annotations

import collections
import random
import re
import time
from typing import Any

import pytest

from pipeline.emulators.man.dataset import DEFECT_KINDS, QUIRK_KINDS, Dataset


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


# -- mutations (offset drift) ---------------------------------------------------------


def test_dataset_insert_places_record_at_position_with_ascending_id() -> None:
    dataset = Dataset(20)
    first = dataset.insert(5)
    assert first == "C0000004-5000"
    assert dataset.customer_id(5) == first and dataset.index_of(first) == 5
    assert dataset.insert(6) == "C0000004-5001"  # appending after it counts up
    assert dataset.insert(5) == "C0000004-4999"  # squeezing before it counts down
    assert dataset.insert(0) == "C-9999"  # sorts before "C0000000"
    assert dataset.insert(len(dataset)) == "C0000019-5000"
    ids = dataset.ids()
    assert ids == sorted(ids) and len(set(ids)) == len(ids) == 25
    assert dataset.inserted == [first, "C0000004-5001", "C0000004-4999", "C-9999", ids[-1]]
    assert [r["customer_id"] for r in dataset.page(4, 5)] == ids[4:9]
    assert [r["customer_id"] for r in dataset.records()] == ids
    assert ids[5:9] == ["C0000004", "C0000004-4999", "C0000004-5000", "C0000004-5001"]


def test_dataset_delete_shifts_positions_and_ids_are_never_reused() -> None:
    dataset = Dataset(10)
    before = dataset.page(0, 10)
    dataset.delete("C0000003")
    assert len(dataset) == 9 and dataset.size == 9
    assert dataset.page(0, 10) == before[:3] + before[4:]
    assert dataset.record(3) == before[4]
    with pytest.raises(KeyError):
        dataset.delete("C0000003")
    with pytest.raises(KeyError):
        dataset.index_of("C0000003")
    inserted = dataset.insert(3)
    dataset.delete(inserted)
    again = dataset.insert(3)
    assert again != inserted and again.startswith("C0000002-")
    assert dataset.deleted == ["C0000003", inserted]
    with pytest.raises(IndexError):
        dataset.insert(len(dataset) + 1)


def test_dataset_random_mutations_keep_ids_sorted_unique_and_short() -> None:
    dataset = Dataset(40, seed=3)
    rng = random.Random(5)
    for _ in range(2000):
        if rng.random() < 0.6 or len(dataset) == 0:
            dataset.insert(rng.randrange(len(dataset) + 1))
        else:
            dataset.delete(dataset.customer_id(rng.randrange(len(dataset))))
    ids = dataset.ids()
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert len(set(dataset.inserted)) == len(dataset.inserted)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{1,66}", cid) for cid in ids)
    assert [dataset.index_of(cid) for cid in ids[::37]] == list(range(len(ids)))[::37]


def test_dataset_inserted_records_are_valid_normal_and_unique() -> None:
    dataset = Dataset(300)
    defects, quirks = dataset.defects, dataset.quirks
    new = [dataset.insert(position) for position in (0, 17, 150, 151, 300)]
    records = {cid: dataset.record(dataset.index_of(cid)) for cid in new}
    emails = [r.get("email") for r in dataset.records() if isinstance(r.get("email"), str)]
    folded = [_folded(email) for email in emails]
    for cid, record in records.items():
        assert record["customer_id"] == cid
        assert record["email"] == record["email"].strip().lower()
        assert folded.count(record["email"]) == 1
        assert isinstance(record["firstName"], str) and record["firstName"].strip()
        assert record["lastName"] and record["address"]["iso2Code"].isupper()
        assert list(record) == list(dataset.record(0))
    assert dataset.defects == defects and dataset.quirks == quirks  # generated records only
    dataset.update(new[1], {"role": "admin", "address": {"city": "Brno"}})
    changed = dataset.record(dataset.index_of(new[1]))
    assert (changed["role"], changed["address"]["city"]) == ("admin", "Brno")
    assert changed["address"]["zipCode"] == records[new[1]]["address"]["zipCode"]


def test_dataset_mutations_keep_generated_records_and_changes() -> None:
    dataset = Dataset(300, seed=5)
    dataset.update("C0000120", {"lastName": "Łęcka"})
    pristine = Dataset(300, seed=5)
    dataset.insert(0)
    dataset.delete("C0000007")
    for cid in ("C0000120", "C0000299", *list(pristine.defects)[:3]):
        record = dataset.record(dataset.index_of(cid))
        expected = pristine.record(pristine.index_of(cid))
        if cid == "C0000120":
            expected["lastName"] = "Łęcka"
        assert record == expected, cid


def test_dataset_unmutated_big_dataset_stays_lazy() -> None:
    dataset = Dataset(1_000_000)
    started = time.perf_counter()
    page = dataset.page(999_000, 1000)
    assert [r["customer_id"] for r in page[:2]] == ["C0999000", "C0999001"]
    assert dataset.index_of("C0999999") == 999_999 and len(dataset) == 1_000_000
    assert time.perf_counter() - started < 0.5
    assert dataset.inserted == [] and dataset.deleted == []
    assert dataset._order is None  # nothing materialised
    dataset.insert(500_000)
    assert dataset.customer_id(500_000) == "C0499999-5000"
    assert dataset.record(999_000)["customer_id"] == "C0998999"
    assert len(dataset) == 1_000_001


def test_dataset_size_settable_until_mutated() -> None:
    dataset = Dataset(10)
    dataset.size = 8
    assert len(dataset) == 8 and dataset.ids()[-1] == "C0000007"
    dataset.size = 12
    assert dataset.record(11) == Dataset(12).record(11)
    dataset.delete("C0000000")
    with pytest.raises(ValueError):
        dataset.size = 5
