"""The Norce target's job polling against its emulator on loopback, on a fake clock."""

from __future__ import annotations

from typing import Any

import anyio
import msgspec
import pytest

from pipeline.emulators import NorceEmulatorConfig, NorceStore, create_norce_app, serve_app
from pipeline.emulators.man.dataset import BUSINESS_UNITS
from pipeline.state.store import StateStore
from pipeline.targets.base import TargetContext
from pipeline.targets.norce.client import NorceTarget
from pipeline.targets.norce.settings import NorceSettings
from tests.kit.clock import FakeClock
from tests.kit.records import customers


@pytest.mark.parametrize(
    ("variant", "key", "reason"),
    [
        ({"queue_delay": 30.0}, "job_queue_timeout_seconds", "was still queued after 0.7 s"),
        ({"stuck_jobs": (1,)}, "job_timeout_seconds", "did not finish within 0.7 s"),
    ],
)
async def test_a_job_is_never_given_up_before_its_bound(
    variant: dict[str, Any], key: str, reason: str
) -> None:
    # Polls back off (0.01, 0.02, 0.04 ... s); the last look must fall on the bound, not
    # before it because the next pause would pass it: 0.63 s of pauses, then 0.07 s.
    clock = FakeClock()
    config = NorceEmulatorConfig(companies=BUSINESS_UNITS, failed_job_rate=0.0, **variant)
    async with serve_app(create_norce_app(config, NorceStore())) as url:
        settings = msgspec.convert(
            {
                "url": url,
                "application_id": 1234,
                "account_id": 42,
                "scope": "stage",
                "client_id_env": "NORCE_CLIENT_ID",
                "client_secret_env": "NORCE_CLIENT_SECRET",
                key: 0.7,
                "poll_initial_seconds": 0.01,
                "poll_max_seconds": 5.0,
            },
            NorceSettings,
        )
        async with (
            StateStore(":memory:") as store,
            NorceTarget(settings, TargetContext("norce", store, clock)) as target,
        ):
            items = await target.prepare(customers(50, seed=5))
            with anyio.fail_after(30):
                acks = await target.write(items)
    assert clock.sleeps == pytest.approx([0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.07], abs=1e-9)
    assert clock.now() == pytest.approx(0.7, abs=1e-9)
    assert len(acks) == 50
    assert all(a.kind == "dead" and a.reason is not None and reason in a.reason for a in acks)
