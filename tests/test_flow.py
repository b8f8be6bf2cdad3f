"""Full passes against the emulators on loopback."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from pipeline.emulators import (
    SYNCBATCH_COUNTS,
    Dataset,
    FaultPlan,
    ManEmulatorConfig,
)
from pipeline.flow import Pass
from pipeline.registry import build_targets
from pipeline.runner import run_once
from pipeline.state.store import StateStore
from tests.conftest import MAN_TOKEN, SB_TOKEN, Env, sb_config
from tests.kit.oracles import expected_account, stored_accounts
from tests.kit.passes import DEADLINE, run_pass


async def test_full_pass_matches_expected_mapping_record_by_record(env: Env) -> None:
    dataset = Dataset(2_000, seed=11)
    await env.start(dataset)
    report, _ = await run_pass(env)

    stored = stored_accounts(env)
    valid = [r for r in dataset.records() if r["customer_id"] not in dataset.defects]
    assert len(stored) == len(valid)
    for raw in valid:
        account = stored[raw["customer_id"]]
        for key, value in expected_account(raw).items():
            assert account[key] == value, (raw["customer_id"], key)
        organisation = env.store.customers[account["refId"]]
        assert organisation["name"] == raw["businessUnit"].strip()
    assert all(n == 1 for n in env.store.writes.values())
    target = report.targets["syncbatch"]
    assert target.created == len(valid)
    assert target.dead_lettered == len(dataset.defects)
    assert report.status == "dead_letters"


async def test_invalid_records_are_dead_lettered_with_readable_reasons(env: Env) -> None:
    dataset = Dataset(2_000, seed=3)
    await env.start(dataset)
    report, _ = await run_pass(env)

    settings = env.settings()
    async with StateStore(settings.state.path) as store:
        letters = {d.customer_id: d.reason for d in await store.dead_letters("syncbatch")}
    assert set(letters) == set(dataset.defects)
    expected_words = {
        "missing_email": "email is missing",
        "empty_email": "email is empty",
        "bad_email": "email is malformed",
        "empty_first_name": "firstName is empty",
        "missing_last_name": "lastName is missing",
        "iso2_three_letters": "iso2Code",
        "iso2_empty": "iso2Code is missing",
        "wrong_type": "$.firstName",
        "duplicate_email": "email already used by customer C",
    }
    for customer_id, kind in dataset.defects.items():
        assert expected_words[kind] in letters[customer_id], (kind, letters[customer_id])
    records = {r["customer_id"]: r for r in dataset.records()}
    for customer_id, reason in letters.items():
        email = records[customer_id].get("email")
        if isinstance(email, str) and "@" in email:
            assert email.strip().lower() not in reason.lower()
    assert report.source.rejected == len(dataset.defects)


async def test_second_pass_sends_nothing(env: Env) -> None:
    dataset = Dataset(1_000, seed=5)
    await env.start(dataset)
    first, _ = await run_pass(env)
    requests_before = env.sb_app[SYNCBATCH_COUNTS]["requests"]
    writes_before = sum(env.store.writes.values())

    second, _ = await run_pass(env)

    target = second.targets["syncbatch"]
    assert target.requests == 0
    assert target.sent == 0
    assert target.unchanged == first.targets["syncbatch"].created
    assert sum(env.store.writes.values()) == writes_before
    assert env.sb_app[SYNCBATCH_COUNTS]["requests"] == requests_before


async def test_changed_record_is_sent_again_alone(env: Env) -> None:
    dataset = Dataset(1_000, seed=5)
    await env.start(dataset)
    await run_pass(env)
    customer_id = dataset.customer_id(42)
    dataset.update(customer_id, {"lastName": "Changed", "address": {"city": "Graz"}})

    report, _ = await run_pass(env)

    target = report.targets["syncbatch"]
    assert (target.sent, target.updated, target.requests) == (1, 1, 1)
    account = stored_accounts(env)[customer_id]
    assert (account["lastName"], account["city"]) == ("Changed", "Graz")
    assert env.store.writes[account["id"]] == 2
    assert sum(env.store.writes.values()) == target.unchanged + 2


async def test_faults_still_deliver_every_valid_record_exactly_once(env: Env) -> None:
    dataset = Dataset(3_000, seed=9)
    faults = FaultPlan(seed=1, error_rate=0.05, throttle_rate=0.05, retry_after=0.01)
    await env.start(
        dataset,
        man=ManEmulatorConfig(token=MAN_TOKEN, faults=faults),
        sb=sb_config(
            faults=FaultPlan(seed=2, error_rate=0.05, throttle_rate=0.05, retry_after=0.01),
            item_error_rate=0.05,
        ),
    )
    report, _ = await run_pass(env)

    valid = {r["customer_id"] for r in dataset.records()} - set(dataset.defects)
    stored = stored_accounts(env)
    assert set(stored) == valid
    assert all(n == 1 for n in env.store.writes.values())
    assert report.targets["syncbatch"].retried > 0
    assert report.targets["syncbatch"].throttled > 0
    assert report.source.retried > 0
    assert report.targets["syncbatch"].created == len(valid)
    assert report.status == "dead_letters"


async def test_slow_target_keeps_records_in_memory_bounded(env: Env) -> None:
    dataset = Dataset(6_000, seed=2, defects=False)
    await env.start(
        dataset,
        sb=sb_config(faults=FaultPlan(latency=0.02)),
    )
    settings = env.settings(
        flow__queue_size=2,
        source__page_size=50,
        source__max_in_flight=2,
        targets__syncbatch__batch_size=25,
        targets__syncbatch__max_in_flight=2,
    )
    peak_in_memory = 0
    source_blocked = 0
    async with StateStore(settings.state.path) as store:
        run = Pass(settings, store, build_targets(settings, store))
        async with anyio.create_task_group() as tg:

            async def sample() -> None:
                nonlocal peak_in_memory, source_blocked
                while True:
                    snapshot = run.statistics()
                    stats = {s.name: s for s in snapshot.channels}
                    if stats and stats["pages"].senders_waiting:
                        source_blocked += 1
                    peak_in_memory = max(peak_in_memory, snapshot.in_memory)
                    await anyio.sleep(0.002)

            tg.start_soon(sample)
            with anyio.fail_after(DEADLINE):
                report = await run.run()
            tg.cancel_scope.cancel()

    assert report.targets["syncbatch"].created == 6_000
    # What can be held at once: each channel full, plus the pages being fetched, transformed,
    # diffed, buffered for a batch and written.
    page, batch, queue = 50, 25, 2
    bound = (
        queue * page  # pages channel
        + 2 * page  # pages in flight at the source
        + page  # page in the transform
        + queue * page  # records channel
        + queue * page  # target's records channel
        + page
        + batch  # page in the diff stage and its partial batch
        + queue * batch  # batches channel
        + 2 * batch  # batches being written
        + queue * 3 * batch  # acks channel
    )
    assert 0 < peak_in_memory <= bound
    assert peak_in_memory < 6_000 / 3
    assert source_blocked > 0
    assert run.channels.peak["pages"] <= queue


async def test_refused_token_stops_the_target_with_a_clear_error(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNCBATCH_TOKEN", "not-a-valid-token")
    await env.start(Dataset(300, seed=1))

    report, _ = await run_pass(env)

    target = report.targets["syncbatch"]
    assert report.status == "aborted"
    assert target.error is not None and "401" in target.error
    assert "not-a-valid-token" not in target.error
    assert target.requests == 1  # not retried
    assert env.store.accounts == {}


async def test_a_stopped_target_holds_the_checkpoint_so_the_next_pass_sends_everything(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = Dataset(300, seed=1)
    await env.start(dataset)
    settings = env.settings(source__page_size=50)
    monkeypatch.setenv("SYNCBATCH_TOKEN", "not-a-valid-token")
    with anyio.fail_after(DEADLINE):
        _, stopped = await run_once(settings, show_progress=False, handle_signals=False)
    assert stopped.status == "aborted"
    assert stopped.targets["syncbatch"].skipped > 0
    assert stopped.source.checkpoint == 0  # nothing of the stopped target is settled
    monkeypatch.setenv("SYNCBATCH_TOKEN", SB_TOKEN)
    with anyio.fail_after(DEADLINE):
        _, resumed = await run_once(settings, show_progress=False, handle_signals=False)
    assert resumed.source.start_offset == 0
    assert resumed.status == "dead_letters"  # the dataset's invalid records, nothing else
    created = resumed.targets["syncbatch"].created
    assert created == len(dataset) - len(dataset.defects) == len(env.store.accounts)


async def test_dry_run_writes_nothing_anywhere(env: Env) -> None:
    dataset = Dataset(500, seed=3)
    await env.start(dataset)
    settings = env.settings()
    async with StateStore(settings.state.path) as store:
        run = Pass(settings, store, build_targets(settings, store), dry_run=True)
        report = await run.run()
        letters = await store.dead_letters()
        confirmed = await store.confirmed_ids("syncbatch")

    target = report.targets["syncbatch"]
    assert target.would_send == 500 - len(dataset.defects)
    assert target.requests == 0 and env.store.accounts == {}
    assert letters == [] and confirmed == []


@pytest.mark.parametrize(
    "host",
    [
        {"casing": "pascal"},
        {"casing": "pascal", "exclude_defaults": True, "empty_error_code": True},
    ],
    ids=["PascalCase", "PascalCase, defaults left out, empty errorCode"],
)
async def test_a_servicestack_host_of_any_casing_gets_every_record_once(
    env: Env, host: dict[str, Any]
) -> None:
    dataset = Dataset(1_000, seed=11)
    await env.start(dataset, sb=sb_config(**host))
    report, _ = await run_pass(env)
    valid = [r for r in dataset.records() if r["customer_id"] not in dataset.defects]
    stored = stored_accounts(env)
    assert set(stored) == {r["customer_id"] for r in valid}
    assert all(n == 1 for n in env.store.writes.values())  # nothing sent twice
    target = report.targets["syncbatch"]
    assert target.created == len(valid)
    assert target.dead_lettered == len(dataset.defects)
    assert target.retried == 0
