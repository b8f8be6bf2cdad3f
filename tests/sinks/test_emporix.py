"""The Emporix target's limits under load, against its emulator on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from aiohttp import web

from pipeline.clock import SYSTEM_CLOCK, Clock
from pipeline.emulators import (
    EmporixEmulatorConfig,
    EmporixStore,
    FaultPlan,
    create_emporix_app,
    serve_app,
)
from pipeline.errors import HTTPStatusError
from pipeline.records import Ack
from pipeline.state.store import StateStore
from pipeline.targets.base import TargetContext
from pipeline.targets.emporix.client import EmporixTarget
from pipeline.targets.emporix.settings import EmporixSettings
from tests.kit.clock import FakeClock
from tests.kit.records import customers


async def write(
    url: str, n: int, clock: Clock = SYSTEM_CLOCK, **overrides: Any
) -> tuple[list[Ack], EmporixTarget]:
    settings = msgspec.convert(
        {
            "url": url,
            "tenant": "demo",
            "client_id_env": "EMPORIX_CLIENT_ID",
            "client_secret_env": "EMPORIX_CLIENT_SECRET",
            **overrides,
        },
        EmporixSettings,
    )
    async with (
        StateStore(":memory:") as store,
        EmporixTarget(settings, TargetContext("emporix", store, clock)) as target,
    ):
        items = await target.prepare(customers(n, seed=3))
        with anyio.fail_after(30):
            acks = await target.write(items)
        return acks, target


async def test_max_in_flight_is_reached_and_never_exceeded(tmp_path: Path) -> None:
    config = EmporixEmulatorConfig(faults=FaultPlan(latency=0.01))
    async with serve_app(create_emporix_app(config, EmporixStore())) as url:
        acks, target = await write(url, 60, max_in_flight=3)
    assert {a.kind for a in acks} == {"created"}
    assert target.stats.peak_in_flight == 3


async def test_rate_per_second_holds_the_pace(tmp_path: Path) -> None:
    # 75 customers are about 150 requests (token, customer, address). At 100 per second the
    # bucket holds a tenth of a second's requests, 10: they pass at once, and every later one
    # 10 ms after the one before, so the requests take (requests - 10) / 100 s exactly.
    clock = FakeClock()
    async with serve_app(create_emporix_app(EmporixEmulatorConfig(), EmporixStore())) as url:
        acks, target = await write(url, 75, clock, max_in_flight=16, rate_per_second=100)
    assert len(acks) == 75
    requests = target.stats.requests
    assert requests >= 140
    assert clock.sleeps == pytest.approx([0.01] * (requests - 10), abs=1e-9)
    assert clock.now() == pytest.approx((requests - 10) / 100, abs=1e-9)


async def test_a_tenant_refusing_merge_patch_stops_the_target_naming_it(tmp_path: Path) -> None:
    @web.middleware
    async def refuse_merge_patch(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method == "PUT" and request.content_type == "application/merge-patch+json":
            return web.json_response({"message": "Unsupported Media Type"}, status=415)
        response: web.StreamResponse = await handler(request)
        return response

    store = EmporixStore()
    app = create_emporix_app(EmporixEmulatorConfig(), store)
    app.middlewares.append(refuse_merge_patch)
    async with serve_app(app) as url:
        with pytest.raises(HTTPStatusError) as info:
            await write(url, 3)
    assert info.value.status == 415
    assert "refuses application/merge-patch+json" in str(info.value)
    assert store.snapshot() == []  # never a replacing PUT instead


async def test_a_status_refusing_one_customer_dead_letters_it_alone(tmp_path: Path) -> None:
    """A 4xx Emporix's documents do not name (422 here) fails that customer's request, sent
    again next pass; the others of the batch are written and the target goes on."""
    refused: list[str] = []

    @web.middleware
    async def refuse_one(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method == "PUT" and "/addresses/" not in request.path:
            number = request.path.rsplit("/", 1)[-1]
            if not refused or refused == [number]:
                refused[:] = [number]
                return web.json_response({"message": "Unprocessable"}, status=422)
        response: web.StreamResponse = await handler(request)
        return response

    store = EmporixStore()
    app = create_emporix_app(EmporixEmulatorConfig(), store)
    app.middlewares.append(refuse_one)
    async with serve_app(app) as url:
        acks, _ = await write(url, 5)
    dead = [a for a in acks if a.kind == "dead"]
    assert [a.customer_id for a in dead] == refused
    assert dead[0].request_failed and "answered 422" in (dead[0].reason or "")
    assert sorted(a.kind for a in acks) == ["created"] * 4 + ["dead"]
