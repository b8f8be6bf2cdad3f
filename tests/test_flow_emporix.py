"""Full passes to the Emporix emulator on loopback."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from pipeline.emulators import Dataset, EmporixEmulatorConfig, FaultPlan, serve_app
from pipeline.emulators.emporix import EMPORIX_COUNTS, EmporixSeed
from pipeline.metrics import Health
from pipeline.state.store import StateStore
from tests.conftest import Env
from tests.kit.oracles import expected_emporix
from tests.kit.passes import run_pass

SCHEMA = "https://schemas.man.example/emporix/man-customer.v1.json"


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
    report, _ = await run_pass(
        env, targets__emporix__mixins=True, targets__emporix__mixin_schema_url=SCHEMA
    )

    store = env.emx_store
    valid = [r for r in dataset.records() if r["customer_id"] not in dataset.defects]
    assert set(store.customers) == {r["customer_id"] for r in valid}
    for raw in valid:
        number = raw["customer_id"]
        customer, address = expected_emporix(raw, mixins=True)
        stored = store.customers[number]
        assert stored["metadata"]["mixins"] == {"manCustomer": SCHEMA}
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


FOREIGN: dict[str, Any] = {
    "preferredLanguage": "de_AT",
    "preferredCurrency": "EUR",
    "preferredSite": "at",
    "restriction": "dealer-only",
    "onHold": True,
    "b2b": {"legalEntity": {"id": "LE-7"}, "companyRegistrationId": "FN 1234a"},
    "mixins": {"loyalty": {"tier": "gold"}},
    "metadata": {"mixins": {"loyalty": "https://shop.example.com/schemas/loyalty.json"}},
}


async def test_updates_and_deactivation_keep_every_field_the_pipeline_does_not_own(
    env: Env,
) -> None:
    dataset = Dataset(100, seed=3, defects=False)
    seeded = [dataset.record(i) for i in [*range(0, 100, 10), 99]]
    config = EmporixEmulatorConfig(
        customers=tuple(
            EmporixSeed(
                number=r["customer_id"], contactEmail=r["email"], firstName="Old", fields=FOREIGN
            )
            for r in seeded
        )
    )
    await env.start(dataset, **emx_env(emporix=config))
    mixins = {"targets__emporix__mixins": True, "targets__emporix__mixin_schema_url": SCHEMA}
    await run_pass(env, **mixins)

    store = env.emx_store
    for raw in seeded:
        stored = store.customers[raw["customer_id"]]
        assert stored["firstName"] == raw["firstName"].strip()
        for key in ("preferredLanguage", "preferredCurrency", "preferredSite", "restriction"):
            assert stored[key] == FOREIGN[key], key
        assert stored["b2b"] == FOREIGN["b2b"]
        assert stored["mixins"]["loyalty"] == {"tier": "gold"}
        assert set(stored["mixins"]) == {"loyalty", "manCustomer"}
        assert stored["metadata"]["mixins"]["loyalty"].endswith("loyalty.json")

    dataset.size = 99  # the last one, seeded with foreign fields, leaves the source
    report, _ = await run_pass(env, targets__emporix__deactivate_missing=True, **mixins)

    assert report.targets["emporix"].deactivated == 1
    stored = store.customers[seeded[-1]["customer_id"]]
    assert stored["active"] is False
    assert stored["b2b"] == FOREIGN["b2b"] and stored["preferredLanguage"] == "de_AT"
    assert stored["onHold"] is True and stored["restriction"] == "dealer-only"
    assert stored["mixins"]["loyalty"] == {"tier": "gold"}
    assert stored["firstName"] == seeded[-1]["firstName"].strip()


async def test_mixins_are_off_by_default(env: Env) -> None:
    await env.start(Dataset(50, seed=3, defects=False), **emx_env())
    await run_pass(env)

    assert all(c["mixins"] == {} for c in env.emx_store.customers.values())
    assert all(c["metadata"]["mixins"] == {} for c in env.emx_store.customers.values())


def emporix_numbered(dataset: Dataset, indexes: range) -> EmporixEmulatorConfig:
    """The tenant already holds these records' customers under Emporix's own numbers."""
    return EmporixEmulatorConfig(
        customers=tuple(
            EmporixSeed(
                number=str(13_869_000 + i),
                contactEmail=dataset.record(i)["email"].strip().upper(),
                firstName="Old",
                lastName="Name",
                fields={"preferredLanguage": "de_AT", "b2b": {"legalEntity": {"id": "LE-1"}}},
            )
            for i in indexes
        )
    )


async def test_existing_customers_under_emporix_numbers_are_adopted_when_asked(env: Env) -> None:
    dataset = Dataset(200, seed=5, defects=False)
    await env.start(dataset, **emx_env(emporix=emporix_numbered(dataset, range(0, 200, 20))))
    adopt = {"targets__emporix__adopt_existing": True}

    report, _ = await run_pass(env, **adopt)

    store = env.emx_store
    assert report.targets["emporix"].dead_lettered == 0
    assert len(store.customers) == 200  # ten adopted, none created twice
    async with StateStore(env.settings().state.path) as state:
        ids = [dataset.customer_id(i) for i in range(0, 200, 20)]
        refs = await state.refs("emporix", ids)
    for i in range(0, 200, 20):
        number, raw = str(13_869_000 + i), dataset.record(i)
        assert raw["customer_id"] not in store.customers
        assert refs[raw["customer_id"]] == number
        adopted = store.customers[number]
        assert (adopted["firstName"], adopted["lastName"]) == (
            raw["firstName"].strip(),
            raw["lastName"].strip(),
        )
        assert adopted["preferredLanguage"] == "de_AT" and adopted["b2b"]
        if raw.get("address"):
            assert list(store.addresses[number]) == [f"{raw['customer_id']}-default"]

    changed = dataset.customer_id(20)
    dataset.update(changed, {"lastName": "Neumann"})
    again, _ = await run_pass(env, **adopt)

    assert store.customers["13869020"]["lastName"] == "Neumann"
    assert changed not in store.customers
    assert (again.targets["emporix"].updated, again.targets["emporix"].dead_lettered) == (1, 0)


async def test_without_adoption_the_reason_says_it_is_available(env: Env) -> None:
    dataset = Dataset(100, seed=5, defects=False)
    await env.start(dataset, **emx_env(emporix=emporix_numbered(dataset, range(3, 4))))

    await run_pass(env)

    async with StateStore(env.settings().state.path) as state:
        letters = {d.customer_id: d.reason for d in await state.dead_letters("emporix")}
    reason = letters[dataset.customer_id(3)]
    assert "13869003" in reason and "adopt_existing = true" in reason
    assert env.emx_store.customers["13869003"]["firstName"] == "Old"


async def test_address_put_that_does_not_create_adds_the_address(env: Env) -> None:
    dataset = Dataset(300, seed=2)
    config = EmporixEmulatorConfig(address_put_creates=False)
    await env.start(dataset, **emx_env(emporix=config))

    report, _ = await run_pass(env)

    valid = [r for r in dataset.records() if r["customer_id"] not in dataset.defects]
    store = env.emx_store
    assert set(store.customers) == {r["customer_id"] for r in valid}
    for raw in valid:
        _, address = expected_emporix(raw)
        held = store.addresses.get(raw["customer_id"], {})
        assert list(held) == ([address["id"]] if address else [])
    assert set(store.customer_writes.values()) == {1}
    assert report.targets["emporix"].dead_lettered == len(dataset.defects)

    number = next(r["customer_id"] for r in valid if r.get("address"))
    dataset.update(number, {"address": {"city": "Linz"}})
    await run_pass(env)
    assert store.addresses[number][f"{number}-default"]["city"] == "Linz"


async def test_a_token_endpoint_that_is_down_stops_the_target_not_the_pass(env: Env) -> None:
    # Issue 12 item 7: once, not once per record; the other target goes on.
    dataset = Dataset(200, seed=5, defects=False)
    await env.start(dataset, targets=("syncbatch", "emporix"))
    calls: list[int] = []

    async def down(request: web.Request) -> web.Response:
        calls.append(1)
        return web.Response(status=503, text="maintenance")

    app = web.Application()
    app.router.add_post("/oauth/token", down)
    token_url = await env.stack.enter_async_context(serve_app(app))
    report, _ = await run_pass(env, targets__emporix__token_url=f"{token_url}/oauth/token")

    emporix = report.targets["emporix"]
    assert emporix.error is not None
    assert emporix.error.startswith(f"emporix: no token from {token_url}/oauth/token after the")
    assert (emporix.created, emporix.dead_lettered) == (0, 0)  # left for the next pass
    assert emporix.skipped == 200
    assert len(calls) == 10  # the retries of one fetch (max_attempts), never one per record
    assert report.targets["syncbatch"].created == 200
    health = Health(config_loaded=True, store_open=True, last_status=report.status)
    health.stopped = {n: t.error for n, t in report.targets.items() if t.error}
    ready, why = health.ready()
    assert not ready and why.startswith("emporix stopped in the last pass: emporix: no token")
