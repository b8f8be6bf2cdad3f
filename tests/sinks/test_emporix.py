"""The Emporix target's limits under load, against its emulator on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from aiohttp import web

from pipeline.emulators import (
    Dataset,
    EmporixEmulatorConfig,
    EmporixStore,
    FaultPlan,
    create_emporix_app,
    serve_app,
)
from pipeline.errors import HTTPStatusError
from pipeline.records import Ack, Page
from pipeline.state.store import StateStore
from pipeline.targets.base import TargetContext
from pipeline.targets.emporix.client import EmporixTarget
from pipeline.targets.emporix.settings import EmporixSettings
from pipeline.transform.dedupe import SeenInMemory
from pipeline.transform.stage import transform_page


def items_for(n: int) -> list[Any]:
    dataset = Dataset(n, seed=3, defects=False)
    page = Page(0, [msgspec.Raw(msgspec.json.encode(r)) for r in dataset.records()])
    return transform_page(page, SeenInMemory()).customers


async def write(url: str, n: int, **overrides: Any) -> tuple[list[Ack], EmporixTarget, float]:
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
        EmporixTarget(settings, TargetContext("emporix", store)) as target,
    ):
        items = await target.prepare(items_for(n))
        started = anyio.current_time()
        with anyio.fail_after(30):
            acks = await target.write(items)
        return acks, target, anyio.current_time() - started


async def test_max_in_flight_is_reached_and_never_exceeded(tmp_path: Path) -> None:
    config = EmporixEmulatorConfig(faults=FaultPlan(latency=0.01))
    async with serve_app(create_emporix_app(config, EmporixStore())) as url:
        acks, target, _ = await write(url, 60, max_in_flight=3)
    assert {a.kind for a in acks} == {"created"}
    assert target.stats.peak_in_flight == 3


async def test_rate_per_second_holds_the_pace(tmp_path: Path) -> None:
    # 75 customers are about 150 requests; at 100 per second, after the first second's
    # allowance of 100, the other 50 take at least half a second.
    async with serve_app(create_emporix_app(EmporixEmulatorConfig(), EmporixStore())) as url:
        acks, target, seconds = await write(url, 75, max_in_flight=16, rate_per_second=100)
    assert len(acks) == 75
    assert target.stats.requests >= 140
    assert seconds >= 0.45


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
