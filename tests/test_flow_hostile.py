"""Whole passes against hostile servers on loopback: what one of them does stops that side
for the pass, with a message, and nothing else."""

from __future__ import annotations

import anyio
from aiohttp import web

from pipeline.emulators import Dataset, serve_app
from tests.conftest import Env
from tests.test_flow import run_pass

SIZE = 120


def throttling() -> tuple[web.Application, list[float]]:
    """Answers every request 429 with a day-long Retry-After; records arrival times."""
    arrivals: list[float] = []

    async def handler(request: web.Request) -> web.Response:
        arrivals.append(anyio.current_time())
        return web.json_response({}, status=429, headers={"Retry-After": "86400"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return app, arrivals


async def test_target_throttled_for_a_day_stops_for_the_pass_others_go_on(env: Env) -> None:
    await env.start(Dataset(SIZE, defects=False), targets=("syncbatch", "emporix"))
    app, arrivals = throttling()
    async with serve_app(app) as hostile:
        report, _ = await run_pass(env, targets__syncbatch__url=hostile)

    stopped, healthy = report.targets["syncbatch"], report.targets["emporix"]
    assert stopped.error is not None and "pause of 86400 s" in stopped.error
    assert "retry.max_seconds" in stopped.error
    # Asked once per worker at most (those in flight together), never again after the answer.
    assert len(arrivals) <= env.settings().targets.syncbatch.max_in_flight  # type: ignore[union-attr]
    assert stopped.created == 0 and stopped.skipped == SIZE
    assert healthy.error is None and healthy.created == SIZE
    assert len(env.emx_store.customers) == SIZE
    assert report.status == "aborted"


async def test_source_throttled_for_a_day_aborts_the_pass_with_the_pause(env: Env) -> None:
    await env.start(Dataset(SIZE, defects=False))
    app, arrivals = throttling()
    async with serve_app(app) as hostile:
        report, _ = await run_pass(env, source__url=f"{hostile}/customer-users")

    assert report.status == "aborted"
    assert report.source.error is not None and "pause of 86400 s" in report.source.error
    assert len(arrivals) <= env.settings().source.max_in_flight
    assert env.store.accounts == {}
