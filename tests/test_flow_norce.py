"""Full passes to the Norce emulator on loopback."""

from __future__ import annotations

import re
from typing import Any

import pytest

from pipeline.emulators import Dataset, FaultPlan, NorceEmulatorConfig
from pipeline.emulators.man.dataset import BUSINESS_UNITS
from pipeline.errors import ConfigError
from pipeline.state.store import StateStore
from tests.conftest import Env
from tests.kit.oracles import dead_letters, expected_norce, ghost_codes, norce_codes
from tests.kit.passes import run_pass

NAMED = re.compile(
    r"not imported: a severity 3 line of the log of Norce job \d+ names it "
    r"\(Job/GetLog holds the message\)"
)
"""The reason of an item a job's log names: never the log's message (it quotes the row)."""


def norce(**config: Any) -> dict[str, Any]:
    settings = {"companies": BUSINESS_UNITS, **config}
    return {"targets": ("norce",), "norce": NorceEmulatorConfig(**settings)}


async def test_full_pass_matches_expected_mapping_field_by_field(env: Env) -> None:
    dataset = Dataset(1_500, seed=31)
    await env.start(dataset, **norce())
    report, _ = await run_pass(env)

    stored = {c["Code"]: c for c in env.nc_store.snapshot()["customers"]}
    valid = [
        r
        for r in dataset.records()
        if r["customer_id"] not in dataset.defects and r["businessUnit"] in BUSINESS_UNITS
    ]
    assert set(stored) == {r["customer_id"] for r in valid}
    for raw in valid:
        customer = stored[raw["customer_id"]]
        for key, value in expected_norce(raw).items():
            got = customer[key]
            if isinstance(value, dict):
                got = {k: got[k] for k in value}
            elif key == "DeliveryAddresses":
                got = [{k: a[k] for k in value[0]} for a in got]
            assert got == value, (raw["customer_id"], key)
    assert set(env.nc_store.customer_writes.values()) == {1}
    assert env.nc_store.token_calls == 1
    assert report.targets["norce"].created == len(valid)


async def test_second_pass_makes_no_import_call(env: Env) -> None:
    # No defects, no unknown company: nothing is dead-lettered, so nothing is due again.
    await env.start(Dataset(800, seed=3, defects=False), **norce())
    await run_pass(env)
    calls = sum(env.nc_store.import_calls.values())

    report, _ = await run_pass(env)

    assert sum(env.nc_store.import_calls.values()) == calls
    assert report.targets["norce"].requests == 0


async def test_unknown_company_dead_letters_exactly_those_customers(env: Env) -> None:
    dataset = Dataset(1_000, seed=5)
    await env.start(dataset, **norce())
    report, _ = await run_pass(env)

    ghosts = {r["customer_id"] for r in dataset.records() if r["businessUnit"] == "Ghost Unit"}
    assert ghosts
    letters = await dead_letters(env, "norce")
    assert set(letters) == ghosts | set(dataset.defects)
    for code in ghosts:
        assert NAMED.fullmatch(letters[code]), letters[code]
    stored = {c["Code"] for c in env.nc_store.snapshot()["customers"]}
    assert not stored & ghosts
    valid = {r["customer_id"] for r in dataset.records()} - ghosts - set(dataset.defects)
    assert stored == valid
    assert report.targets["norce"].created == len(valid)


async def test_create_companies_option_imports_missing_companies_first(env: Env) -> None:
    dataset = Dataset(1_000, seed=5)
    await env.start(dataset, **norce(companies=()))
    report, _ = await run_pass(
        env, targets__norce__create_companies=True, targets__norce__application_key="app-key"
    )

    companies = {c["Code"] for c in env.nc_store.snapshot()["companies"]}
    assert companies == {r["businessUnit"] for r in dataset.records()} - {None}
    assert env.nc_store.import_calls["ImportCompanies"] == 1
    assert report.targets["norce"].dead_lettered == len(dataset.defects)


async def test_job_failing_without_detail_is_split_in_halves(env: Env) -> None:
    dataset = Dataset(100, seed=5, defects=False)
    await env.start(dataset, **norce(fail_jobs=(1,)))
    report, _ = await run_pass(env)

    assert env.nc_store.import_calls["ImportCustomers"] == 3
    target = report.targets["norce"]
    valid = sum(1 for r in dataset.records() if r["businessUnit"] in BUSINESS_UNITS)
    assert target.created == valid
    assert set(env.nc_store.customer_writes.values()) == {1}


async def test_job_failing_twice_without_detail_dead_letters_its_records(env: Env) -> None:
    dataset = Dataset(100, seed=5, defects=False)
    await env.start(dataset, **norce(fail_jobs=(1, 2)))
    report, _ = await run_pass(env)

    letters = await dead_letters(env, "norce")
    first_half = [dataset.customer_id(i) for i in range(50)]
    assert all("failed without naming this item" in letters[c] for c in first_half)
    assert report.targets["norce"].dead_lettered == 50


async def test_slow_job_engine_is_waited_out(env: Env) -> None:
    dataset = Dataset(300, seed=5, defects=False)
    await env.start(dataset, **norce(queue_delay=0.15, job_delay=0.2))
    report, _ = await run_pass(env)

    valid = sum(1 for r in dataset.records() if r["businessUnit"] in BUSINESS_UNITS)
    assert report.targets["norce"].created == valid
    assert report.targets["norce"].requests > 3 * 3  # each job polled several times


async def test_job_that_never_finishes_fails_its_batch_and_is_retried_next_pass(
    env: Env,
) -> None:
    dataset = Dataset(100, seed=5, defects=False)
    await env.start(dataset, **norce(stuck_jobs=(1,)))
    first, _ = await run_pass(env, targets__norce__job_timeout_seconds=0.3)

    letters = await dead_letters(env, "norce")
    assert len(letters) == 100
    assert all("did not finish within 0.3 s" in reason for reason in letters.values())
    assert first.status == "dead_letters"

    second, _ = await run_pass(env, targets__norce__job_timeout_seconds=0.3)

    valid = sum(1 for r in dataset.records() if r["businessUnit"] in BUSINESS_UNITS)
    assert second.targets["norce"].created == valid
    assert len(await dead_letters(env, "norce")) == 100 - valid


async def test_faults_still_import_every_customer_once(env: Env) -> None:
    dataset = Dataset(1_000, seed=9)
    faults = FaultPlan(seed=4, error_rate=0.1, throttle_rate=0.1, retry_after=0.01)
    await env.start(dataset, **norce(faults=faults))
    report, _ = await run_pass(env)

    valid = {
        r["customer_id"]
        for r in dataset.records()
        if r["customer_id"] not in dataset.defects and r["businessUnit"] in BUSINESS_UNITS
    }
    assert {c["Code"] for c in env.nc_store.snapshot()["customers"]} == valid
    assert report.targets["norce"].retried > 0


async def test_wrong_secret_stops_the_target(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NORCE_CLIENT_SECRET", "wrong-one")
    await env.start(Dataset(200, seed=1), **norce())
    report, _ = await run_pass(env)

    assert report.status == "aborted"
    error = report.targets["norce"].error or ""
    assert "401" in error and "wrong-one" not in error
    assert env.nc_store.snapshot()["customers"] == []


@pytest.mark.slow
async def test_pass_of_50000_customers_calls_the_token_endpoint_once(env: Env) -> None:
    await env.start(Dataset(50_000, seed=1), **norce())
    report, _ = await run_pass(env, targets__norce__batch_size=500)

    assert env.nc_store.token_calls == 1
    assert env.nc_store.token_refusals == 0
    assert report.source.records == 50_000
    assert report.targets["norce"].sent > 45_000


# Issue 11: the service as the real vendor may behave -------------------------------------


async def test_job_succeeding_with_failed_items_dead_letters_them(env: Env) -> None:
    # Item 4: the job ends StatusId 2 with Fail > 0; the log still names the failed items.
    dataset = Dataset(1_000, seed=5)
    await env.start(dataset, **norce(failed_items_succeed=True))
    report, _ = await run_pass(env)

    ghosts = ghost_codes(dataset)
    assert ghosts
    letters = await dead_letters(env, "norce")
    assert set(letters) == ghosts | set(dataset.defects)
    for code in ghosts:
        assert NAMED.fullmatch(letters[code]), letters[code]
    assert {c["Code"] for c in env.nc_store.snapshot()["customers"]} == norce_codes(dataset)
    assert report.targets["norce"].created == len(norce_codes(dataset))
    assert set(env.nc_store.customer_writes.values()) == {1}


@pytest.mark.parametrize("failed_items_succeed", [True, False])
async def test_failed_items_the_log_cannot_name_are_never_confirmed(
    env: Env, failed_items_succeed: bool
) -> None:
    # Item 4: every second failed item of a job is logged with ImportedRow null (the docs
    # allow it), so Fail counts more items than the log names: the rest of such a job is not
    # known to be in.
    dataset = Dataset(1_000, seed=5)
    await env.start(dataset, **norce(null_rows=True, failed_items_succeed=failed_items_succeed))
    report, _ = await run_pass(env, targets__norce__batch_size=500)  # several ghosts a job

    held = {c["Code"] for c in env.nc_store.snapshot()["customers"]}
    async with StateStore(env.settings().state.path) as store:
        confirmed = set(await store.confirmed_ids("norce"))
    letters = await dead_letters(env, "norce")
    ghosts = ghost_codes(dataset)
    assert ghosts
    assert confirmed <= held  # nothing Norce lacks is called confirmed
    assert not ghosts & confirmed
    every = {r["customer_id"] for r in dataset.records()}
    assert confirmed | set(letters) == every  # and nothing is lost
    assert not confirmed & set(letters)
    assert all(
        NAMED.fullmatch(letters[c]) or "failed without naming this item" in letters[c]
        for c in ghosts
    )
    assert report.targets["norce"].created == len(confirmed)


@pytest.mark.parametrize(
    ("row_order", "row_max_chars"), [("alphabetical", 0), ("alphabetical", 120), ("object", 0)]
)
async def test_log_lines_attributed_by_the_rows_own_code_in_any_key_order(
    env: Env, row_order: str, row_max_chars: int
) -> None:
    # Item 5: accounts on, ImportedRow with sorted keys (role Codes come before the
    # customer's Code), whole or truncated before the customer's Code, or sent as an object.
    dataset = Dataset(1_000, seed=5)
    await env.start(dataset, **norce(row_order=row_order, row_max_chars=row_max_chars))
    report, _ = await run_pass(
        env, targets__norce__accounts=True, targets__norce__application_key="app-key"
    )

    ghosts = ghost_codes(dataset)
    letters = await dead_letters(env, "norce")
    assert set(letters) == ghosts | set(dataset.defects)
    for code in ghosts:
        assert NAMED.fullmatch(letters[code]), letters[code]
    assert env.nc_store.import_calls["ImportCustomers"] == 10  # no batch split or re-sent
    assert {c["Code"] for c in env.nc_store.snapshot()["customers"]} == norce_codes(dataset)
    assert report.targets["norce"].created == len(norce_codes(dataset))


async def test_application_key_and_company_fields_as_the_docs_require(env: Env) -> None:
    # Item 6: ApplicationKey required on companies and accounts; CompanyFieldsThatAreSet
    # required with Companies.
    dataset = Dataset(1_000, seed=5)
    await env.start(
        dataset, **norce(companies=(), require_application_key=True, require_company_fields=True)
    )
    with pytest.raises(ConfigError) as info:
        env.settings(targets__norce__create_companies=True, targets__norce__accounts=True)
    assert info.value.path == "targets.norce.application_key"

    report, _ = await run_pass(
        env,
        targets__norce__create_companies=True,
        targets__norce__accounts=True,
        targets__norce__application_key="app-key",
    )

    store = env.nc_store.snapshot()
    assert {c["Code"] for c in store["companies"]} == {
        r["businessUnit"] for r in dataset.records()
    } - {None}
    valid = {r["customer_id"] for r in dataset.records()} - set(dataset.defects)
    assert {c["Code"] for c in store["customers"]} == valid
    assert all(c["Accounts"][0]["ApplicationKey"] == "app-key" for c in store["customers"])
    assert report.targets["norce"].created == len(valid)


async def test_jobs_read_under_api_path_and_queue_time_is_not_run_time(env: Env) -> None:
    # Item 7: Job/Get and Job/GetLog answer 404, only api/Job/... serves; every job waits
    # queued longer than job_timeout_seconds, then runs briefly.
    dataset = Dataset(300, seed=5)
    await env.start(
        dataset, **norce(job_paths="api", queue_delay=0.4, job_delay=0.05, failed_job_rate=0.0)
    )
    report, _ = await run_pass(env, targets__norce__job_timeout_seconds=0.2)

    letters = await dead_letters(env, "norce")
    assert set(letters) == ghost_codes(dataset) | set(dataset.defects)
    assert {c["Code"] for c in env.nc_store.snapshot()["customers"]} == norce_codes(dataset)
    assert report.targets["norce"].created == len(norce_codes(dataset))
    assert env.nc_store.import_calls["ImportCustomers"] == 3


async def test_a_queue_that_never_moves_fails_its_batches_instead_of_hanging(env: Env) -> None:
    dataset = Dataset(200, seed=5)
    await env.start(dataset, **norce(queue_delay=30.0, failed_job_rate=0.0))
    report, _ = await run_pass(env, targets__norce__job_queue_timeout_seconds=0.3)

    letters = await dead_letters(env, "norce")
    valid = norce_codes(dataset) | ghost_codes(dataset)
    assert set(letters) == valid | set(dataset.defects)  # nothing confirmed, nothing lost
    queued = [r for c, r in letters.items() if c in valid]
    assert all("was still queued after 0.3 s" in r for r in queued), queued[:1]
    assert report.targets["norce"].created == 0
