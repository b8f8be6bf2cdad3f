"""Chaos: full passes to every target under each fault plan, then the stores are checked
against the dataset: every valid record present with the right content, none twice, every
invalid one dead-lettered with a reason, the report's counts equal to what the stores hold.

``CHAOS_RECORDS`` (environment) sets the dataset size; ``make test`` runs a small one.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import pytest

from pipeline.emulators import (
    EMPORIX_FAULTS,
    MAN_FAULTS,
    NORCE_FAULTS,
    SYNCBATCH_FAULTS,
    Dataset,
    EmporixEmulatorConfig,
    FaultPlan,
    ManEmulatorConfig,
    NorceEmulatorConfig,
)
from pipeline.emulators.man import DriftPlan
from pipeline.emulators.man.dataset import BUSINESS_UNITS
from tests.conftest import MAN_TOKEN, Env, sb_config
from tests.kit.oracles import ALL_TARGETS as ALL
from tests.kit.oracles import check_every_record_landed_once, dead_letters_by_target
from tests.kit.passes import run_pass

RECORDS = int(os.environ.get("CHAOS_RECORDS", "500"))

# A Retry-After above FAST's max_seconds stops the target: every plan that sends 429 or 503
# asks for less.
PLANS: dict[str, dict[str, Any]] = {
    "errors": {"error_rate": 0.1, "retry_after": 0.01},
    "throttle": {"throttle_rate": 0.15, "retry_after": 0.01},
    "throttle-no-retry-after": {"throttle_rate": 0.15, "send_retry_after": False},
    "bursts": {"burst_every": 15, "burst_length": 4, "retry_after": 0.01},
    "latency-jitter": {"latency": 0.001, "latency_jitter": 0.01},
    "hangs": {"hang_rate": 0.03, "hang_seconds": 3.0},
    "resets": {"reset_rate": 0.08},
    "truncated": {"truncate_rate": 0.08},
    "malformed": {"malformed_rate": 0.08},
    "mixed": {
        "error_rate": 0.04,
        "throttle_rate": 0.04,
        "retry_after": 0.01,
        "hang_rate": 0.01,
        "hang_seconds": 3.0,
        "reset_rate": 0.03,
        "truncate_rate": 0.02,
        "malformed_rate": 0.02,
    },
}
FAST = {"initial_seconds": 0.001, "max_seconds": 0.05, "max_attempts": 12}


def chaos_settings() -> dict[str, Any]:
    # Short timeouts, so that a hang costs little; many attempts, so faults never win.
    overrides: dict[str, Any] = {"source__timeout_seconds": 0.5, "source__retry": FAST}
    for target in ALL:
        overrides[f"targets__{target}__timeout_seconds"] = 0.5
        overrides[f"targets__{target}__retry"] = FAST
    overrides["targets__norce__batch_size"] = 50
    return overrides


def injected(env: Env) -> Counter[str]:
    total: Counter[str] = Counter()
    for app, key in ((env.man_app, MAN_FAULTS), (env.sb_app, SYNCBATCH_FAULTS),
                     (env.emx_app, EMPORIX_FAULTS), (env.nc_app, NORCE_FAULTS)):  # fmt: skip
        total.update(app[key].injected)
    return total


@pytest.mark.chaos
@pytest.mark.parametrize("plan", sorted(PLANS))
async def test_every_valid_record_lands_once_under_faults(env: Env, plan: str) -> None:
    dataset = Dataset(RECORDS, seed=41)
    faults = FaultPlan(seed=7, **PLANS[plan])
    await env.start(
        dataset,
        targets=ALL,
        man=ManEmulatorConfig(token=MAN_TOKEN, faults=faults),
        sb=sb_config(faults=faults),
        emporix=EmporixEmulatorConfig(faults=faults),
        norce=NorceEmulatorConfig(companies=BUSINESS_UNITS, faults=faults),
    )
    report, _ = await run_pass(env, **chaos_settings())

    faults_seen = injected(env)
    rewrites = sum(env.store.writes.values()) - len(env.store.accounts)
    print(
        f"chaos {plan}: {RECORDS} records, injected {dict(sorted(faults_seen.items()))}, "
        f"sync-batch accounts written again after a lost answer: {rewrites}"
    )
    assert sum(faults_seen.values()) > 0 or plan == "latency-jitter"
    check_every_record_landed_once(env, dataset, report, await dead_letters_by_target(env))


@pytest.mark.chaos
@pytest.mark.parametrize(("inserts", "deletes"), [(0.0, 0.8), (0.4, 0.4)])
async def test_offset_drift_delivers_every_record_that_stayed(
    env: Env, inserts: float, deletes: float
) -> None:
    # Without the overlap, the deletes-only case loses records (measured: 8 of 1,000).
    dataset = Dataset(1_000, seed=43, defects=False)
    start_ids = set(dataset.ids())
    # Sixteen inserts and deletes, all during the first pass (it makes about 25 requests).
    drift = DriftPlan(
        seed=5, insert_rate=inserts, delete_rate=deletes, after_requests=2, max_events=16
    )
    await env.start(dataset, man=ManEmulatorConfig(token=MAN_TOKEN, drift=drift))
    await run_pass(env, source__page_size=50, source__overlap=10, source__max_in_flight=2)

    assert dataset.deleted and (dataset.inserted or not inserts)
    stayed = start_ids - set(dataset.deleted)
    delivered = {a["meta"]["customerId"] for a in env.store.accounts.values()}
    assert stayed <= delivered  # every record that existed for the whole pass
    assert delivered <= start_ids | set(dataset.inserted)

    report, _ = await run_pass(env, source__page_size=50, source__overlap=10)

    # The next pass (the source is still now) picks up what was inserted behind the read.
    assert len(dataset.inserted) + len(dataset.deleted) == 16
    delivered = {a["meta"]["customerId"] for a in env.store.accounts.values()}
    assert set(dataset.ids()) <= delivered
    assert report.source.records == len(dataset)
