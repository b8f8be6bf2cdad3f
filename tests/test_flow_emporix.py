"""Full passes to the Emporix emulator on loopback."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.emulators import Dataset, EmporixEmulatorConfig, FaultPlan
from pipeline.emulators.emporix import EMPORIX_COUNTS
from pipeline.state.store import StateStore
from tests.conftest import Env
from tests.test_flow import run_pass

TITLES = {"Mr": "MR", "Herr": "MR", "Ms": "MS", "Frau": "MS", "Dr.": "DR"}


def expected(raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
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
        },
    }
    if raw.get("salutation") in TITLES:
        customer["title"] = TITLES[raw["salutation"]]
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


class BadIdDataset(Dataset):
    """Record 9 carries an id MAN accepts but Emporix cannot take as a customer number."""

    def record(self, index: int) -> dict[str, Any]:
        raw = super().record(index)
        if index == 9:
            raw["customer_id"] = "C 9/x"
        return raw


def emx_env(**kwargs: Any) -> dict[str, Any]:
    return {"targets": ("emporix",), **kwargs}


async def test_full_pass_matches_expected_mapping_field_by_field(env: Env) -> None:
    dataset = Dataset(1_500, seed=21)
    await env.start(dataset, **emx_env())
    report, _ = await run_pass(env)

    store = env.emx_store
    valid = [r for r in dataset.records() if r["customer_id"] not in dataset.defects]
    assert set(store.customers) == {r["customer_id"] for r in valid}
    for raw in valid:
        number = raw["customer_id"]
        customer, address = expected(raw)
        stored = store.customers[number]
        for key, value in customer.items():
            assert stored[key] == value, (number, key)
        addresses = store.addresses.get(number, {})
        if address is None:
            assert addresses == {}
            continue
        assert list(addresses) == [address["id"]]
        for key, value in address.items():
            assert addresses[address["id"]][key] == value, (number, key)
    assert set(store.customer_writes.values()) == {1}
    assert set(store.address_writes.values()) == {1}
    assert store.notifications == []
    assert store.token_calls == 1
    target = report.targets["emporix"]
    assert (target.created, target.dead_lettered) == (len(valid), len(dataset.defects))


async def test_second_pass_makes_no_write(env: Env) -> None:
    await env.start(Dataset(600, seed=2), **emx_env())
    await run_pass(env)
    requests = env.emx_app[EMPORIX_COUNTS]["requests"]

    report, _ = await run_pass(env)

    assert report.targets["emporix"].requests == 0
    assert env.emx_app[EMPORIX_COUNTS]["requests"] == requests
    assert set(env.emx_store.customer_writes.values()) == {1}


async def test_changed_address_produces_exactly_one_address_write(env: Env) -> None:
    dataset = Dataset(600, seed=2)
    await env.start(dataset, **emx_env())
    await run_pass(env)
    number = next(
        dataset.customer_id(i)
        for i in range(600)
        if dataset.record(i).get("address") and dataset.customer_id(i) not in dataset.defects
    )
    customers_before = sum(env.emx_store.customer_writes.values())
    addresses_before = sum(env.emx_store.address_writes.values())
    dataset.update(number, {"address": {"city": "Linz", "zipCode": "4020"}})

    report, _ = await run_pass(env)

    assert sum(env.emx_store.customer_writes.values()) == customers_before
    assert sum(env.emx_store.address_writes.values()) == addresses_before + 1
    stored = env.emx_store.addresses[number][f"{number}-default"]
    assert (stored["city"], stored["zipCode"]) == ("Linz", "4020")
    assert report.targets["emporix"].updated == 1


async def test_removed_address_is_deleted(env: Env) -> None:
    dataset = Dataset(300, seed=2, defects=False)
    await env.start(dataset, **emx_env())
    await run_pass(env)
    number = dataset.customer_id(5)
    assert env.emx_store.addresses[number]
    dataset.update(number, {"address": None})

    report, _ = await run_pass(env)

    assert not env.emx_store.addresses.get(number)
    assert report.targets["emporix"].updated == 1


async def test_token_expiry_mid_pass_loses_no_record(env: Env) -> None:
    dataset = Dataset(1_000, seed=8)
    await env.start(dataset, **emx_env(emporix=EmporixEmulatorConfig(revoke_after_requests=300)))
    report, _ = await run_pass(env)

    valid = {r["customer_id"] for r in dataset.records()} - set(dataset.defects)
    assert set(env.emx_store.customers) == valid
    assert env.emx_app[EMPORIX_COUNTS]["revocations"] == 1
    assert env.emx_store.token_calls == 2
    assert report.targets["emporix"].dead_lettered == len(dataset.defects)


async def test_short_lived_token_is_renewed_before_it_expires(env: Env) -> None:
    dataset = Dataset(800, seed=8, defects=False)
    config = EmporixEmulatorConfig(token_lifetime=0.3, faults=FaultPlan(latency=0.002))
    await env.start(dataset, **emx_env(emporix=config))
    report, _ = await run_pass(env, targets__emporix__max_in_flight=4)

    assert len(env.emx_store.customers) == 800
    assert env.emx_store.token_calls >= 2
    assert report.status == "ok"


async def test_duplicate_email_and_bad_id_are_dead_lettered_with_reasons(env: Env) -> None:
    dataset = BadIdDataset(300, seed=4, defects=False)
    taken = dataset.record(5)
    await env.start(dataset, **emx_env())
    env.emx_store.seed_customer("EXT-1", {"contactEmail": taken["email"], "firstName": "x"})

    report, _ = await run_pass(env)

    settings = env.settings()
    async with StateStore(settings.state.path) as store:
        letters = {d.customer_id: d.reason for d in await store.dead_letters("emporix")}
    assert set(letters) == {taken["customer_id"], "C 9/x"}
    assert "duplicate email" in letters[taken["customer_id"]]
    assert "EXT-1" in letters[taken["customer_id"]]
    assert taken["email"] not in letters[taken["customer_id"]]
    assert "cannot be an Emporix customer number" in letters["C 9/x"]
    assert "C 9/x" not in env.emx_store.customers
    assert report.status == "dead_letters"


async def test_faults_still_write_every_customer_exactly_once_without_notifications(
    env: Env,
) -> None:
    dataset = Dataset(1_200, seed=13)
    faults = FaultPlan(seed=6, error_rate=0.05, throttle_rate=0.05, retry_after=0.01)
    await env.start(dataset, **emx_env(emporix=EmporixEmulatorConfig(faults=faults)))
    report, _ = await run_pass(env)

    valid = {r["customer_id"] for r in dataset.records()} - set(dataset.defects)
    store = env.emx_store
    assert set(store.customers) == valid
    assert set(store.customer_writes.values()) == {1}
    assert set(store.address_writes.values()) == {1}
    assert store.notifications == []
    target = report.targets["emporix"]
    assert target.retried > 0 and target.throttled > 0
    assert target.created == len(valid)


async def test_version_conflict_is_re_read_and_retried(env: Env) -> None:
    dataset = Dataset(200, seed=4, defects=False)
    config = EmporixEmulatorConfig(version_conflict_rate=0.2, faults=FaultPlan(seed=3))
    await env.start(dataset, **emx_env(emporix=config))
    await run_pass(env)
    changed = [dataset.customer_id(i) for i in range(0, 200, 10)]
    for number in changed:
        dataset.update(number, {"lastName": "Neumann"})

    report, _ = await run_pass(env)

    assert env.emx_app[EMPORIX_COUNTS]["version_conflicts"] > 0
    assert all(env.emx_store.customers[n]["lastName"] == "Neumann" for n in changed)
    assert report.targets["emporix"].updated == len(changed)
    assert report.targets["emporix"].dead_lettered == 0


async def test_wrong_client_secret_stops_the_target_with_a_clear_error(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMPORIX_CLIENT_SECRET", "not-the-secret")
    await env.start(Dataset(300, seed=1), **emx_env())

    report, _ = await run_pass(env)

    target = report.targets["emporix"]
    assert report.status == "aborted"
    assert target.error is not None and "401" in target.error and "token" in target.error
    assert "not-the-secret" not in target.error
    assert env.emx_store.customers == {}
    assert target.created == 0 and target.skipped > 0


async def test_missing_manage_scope_is_a_403_that_stops_the_target(env: Env) -> None:
    config = EmporixEmulatorConfig(scopes=("customer.customer_read",))
    await env.start(Dataset(200, seed=1), **emx_env(emporix=config))

    report, _ = await run_pass(env)

    assert report.status == "aborted"
    assert "403" in (report.targets["emporix"].error or "")
    assert env.emx_store.customers == {}
