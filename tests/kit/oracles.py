"""What the stores must hold after a pass, written apart from the pipeline's mapping (from the
spec's connector notes), and the checks that every record ended where it must."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline.emulators import Dataset
from pipeline.emulators.man.dataset import BUSINESS_UNITS
from pipeline.state.store import StateStore

if TYPE_CHECKING:
    from pipeline.report import PassReport
    from tests.conftest import Env

ALL_TARGETS = ("syncbatch", "emporix", "norce")
EMPORIX_TITLES = {"Mr": "MR", "Herr": "MR", "Ms": "MS", "Frau": "MS", "Dr.": "DR"}


def expected_account(raw: dict[str, Any]) -> dict[str, Any]:
    """The account the sync-batch store must hold for one valid MAN record."""
    email = raw["email"].strip().lower()
    first, last = raw["firstName"].strip(), raw["lastName"].strip()
    address = raw.get("address") or None
    expected: dict[str, Any] = {
        "userName": email,
        "email": email,
        "primaryEmail": email,
        "firstName": first,
        "lastName": last,
        "displayName": f"{first} {last}",
        "company": raw["businessUnit"].strip(),
        "roles": [raw["role"]] if raw.get("role") else [],
        "permissions": [],
        "profileUrl": f"https://shop.example.com/users/{raw['customer_id']}",
    }
    meta = {"customerId": raw["customer_id"]}
    if raw.get("salutation"):
        meta["salutation"] = raw["salutation"]
    if address:
        flags = {
            k: str(address.get(k, False)).lower() for k in ("isDefaultBilling", "isDefaultShipping")
        }
        meta.update(flags)
        if address.get("address3", "").strip():
            meta["address3"] = address["address3"].strip()
        expected["country"] = address["iso2Code"].strip().upper()
        expected["city"] = address["city"]
        expected["postalCode"] = str(address["zipCode"])
        if address.get("address1"):
            expected["address"] = address["address1"].strip()
        if address.get("phone"):
            expected["phoneNumber"] = address["phone"]
    expected["meta"] = meta
    return expected


def expected_emporix(
    raw: dict[str, Any], *, mixins: bool = False
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Customer and address Emporix must hold for one valid MAN record (from spec §9)."""
    first, last = raw["firstName"].strip(), raw["lastName"].strip()
    address = raw.get("address") or None
    phone = address.get("phone") if address else None
    customer: dict[str, Any] = {
        "contactEmail": raw["email"].strip().lower(),
        "firstName": first,
        "lastName": last,
        "company": raw["businessUnit"].strip(),
        "mixins": {
            "manCustomer": {"role": raw.get("role") or "", "businessUnit": raw["businessUnit"]}
        }
        if mixins
        else {},
    }
    if raw.get("salutation") in EMPORIX_TITLES:
        customer["title"] = EMPORIX_TITLES[raw["salutation"]]
    if phone:
        customer["contactPhone"] = phone
    if address is None:
        return customer, None
    tags = [
        tag
        for tag, key in (("BILLING", "isDefaultBilling"), ("SHIPPING", "isDefaultShipping"))
        if str(address.get(key, False)).lower() == "true"
    ]
    emx_address = {
        "id": f"{raw['customer_id']}-default",
        "contactName": f"{first} {last}",
        "country": address["iso2Code"].strip().upper(),
        "street": address["address1"].strip(),
        "zipCode": str(address["zipCode"]),
        "city": address["city"],
        "isDefault": bool(tags),
    }
    if tags:
        emx_address["tags"] = tags
    if phone:
        emx_address["contactPhone"] = phone
    return customer, emx_address


def expected_norce(raw: dict[str, Any]) -> dict[str, Any]:
    """What Norce must hold for one valid MAN record (spec §13, DESIGN §5)."""
    email = raw["email"].strip().lower()
    customer: dict[str, Any] = {
        "Code": raw["customer_id"],
        "EmailAddress": email,
        "FirstName": raw["firstName"].strip(),
        "LastName": raw["lastName"].strip(),
        "Companies": [{"Code": raw["businessUnit"].strip(), "IsPrimary": True}],
    }
    if raw.get("salutation"):
        customer["Title"] = raw["salutation"]
    address = raw.get("address") or None
    if address is None:
        return customer
    billing, shipping = (
        str(address.get(k, False)).lower() == "true"
        for k in ("isDefaultBilling", "isDefaultShipping")
    )
    lines = [address.get("address2", "").strip(), address.get("address3", "").strip()]
    base = {
        "AddressLine1": address["address1"].strip(),
        "ZipCode": str(address["zipCode"]),
        "City": address["city"],
        "CountryCode": address["iso2Code"].strip().upper(),
    }
    if any(lines):
        base["AddressLine2"] = ", ".join(line for line in lines if line)
    if address.get("phone"):
        customer["PhoneNumber"] = address["phone"]
    if billing:
        customer["InvoiceAddress"] = base
    if shipping or not billing:
        customer["DeliveryAddresses"] = [{**base, "IsPrimary": shipping}]
    return customer


def stored_accounts(env: Env) -> dict[str, dict[str, Any]]:
    """The sync-batch store's accounts by MAN customer id."""
    return {a["meta"]["customerId"]: a for a in env.store.accounts.values()}


async def dead_letters(env: Env, target: str) -> dict[str, str]:
    """Customer id -> reason of each dead letter of ``target`` in the test's state file."""
    async with StateStore(env.settings().state.path) as store:
        return {d.customer_id: d.reason for d in await store.dead_letters(target)}


async def dead_letters_by_target(env: Env) -> dict[str, dict[str, str]]:
    """Every target's dead letters (customer id -> reason), each target of the pass named."""
    async with StateStore(env.settings().state.path) as store:
        letters = await store.dead_letters()
    out: dict[str, dict[str, str]] = {t: {} for t in ALL_TARGETS}
    for letter in letters:
        out[letter.target][letter.customer_id] = letter.reason
    return out


def valid_ids(dataset: Dataset) -> set[str]:
    """The ids of the dataset's records that pass validation."""
    return {r["customer_id"] for r in dataset.records()} - set(dataset.defects)


def norce_codes(dataset: Dataset) -> set[str]:
    """The valid records Norce can take: those of a company it knows."""
    return {
        r["customer_id"]
        for r in dataset.records()
        if r["customer_id"] not in dataset.defects and r["businessUnit"] in BUSINESS_UNITS
    }


def ghost_codes(dataset: Dataset) -> set[str]:
    """The records of the company no target knows."""
    return {r["customer_id"] for r in dataset.records() if r["businessUnit"] == "Ghost Unit"}


def check_every_record_landed_once(
    env: Env, dataset: Dataset, report: PassReport, letters: dict[str, dict[str, str]]
) -> None:
    """After a pass to every target: each store holds every valid record once with the right
    content, every invalid one is dead-lettered with a reason, and the report's counts are
    what the stores hold."""
    records = {r["customer_id"]: r for r in dataset.records()}
    valid = valid_ids(dataset)
    ghosts = {cid for cid in valid if records[cid]["businessUnit"] not in BUSINESS_UNITS}

    # sync-batch: every valid account once, with the right content
    accounts = list(env.store.accounts.values())
    by_id = {a["meta"]["customerId"]: a for a in accounts}
    assert set(by_id) == valid and len(accounts) == len(valid)
    assert len({a["userName"] for a in accounts}) == len(accounts)
    for cid in valid:
        for key, value in expected_account(records[cid]).items():
            assert by_id[cid][key] == value, (cid, key)

    # Emporix: every valid customer once, its address, no notification
    assert set(env.emx_store.customers) == valid
    for cid in valid:
        customer, address = expected_emporix(records[cid])
        stored = env.emx_store.customers[cid]
        assert all(stored[k] == v for k, v in customer.items()), cid
        held = env.emx_store.addresses.get(cid, {})
        assert (list(held) == [address["id"]]) if address else not held, cid
    assert env.emx_store.notifications == []

    # Norce: every valid customer of a known company once
    norce = {c["Code"]: c for c in env.nc_store.snapshot()["customers"]}
    assert set(norce) == valid - ghosts
    for cid in valid - ghosts:
        assert norce[cid]["EmailAddress"] == expected_norce(records[cid])["EmailAddress"]

    # Dead letters: exactly the invalid records (and, for Norce, the unknown company)
    assert set(letters["syncbatch"]) == set(dataset.defects)
    assert set(letters["emporix"]) == set(dataset.defects)
    assert set(letters["norce"]) == set(dataset.defects) | ghosts
    assert all(reason for target in letters.values() for reason in target.values())

    # The report says what the stores hold
    assert report.targets["syncbatch"].created == len(valid)
    assert report.targets["emporix"].created == len(valid)
    assert report.targets["norce"].created == len(valid - ghosts)
    for target in ALL_TARGETS:
        assert report.targets[target].dead_lettered == len(letters[target])
        assert report.targets[target].error is None
