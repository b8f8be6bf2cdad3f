"""Whole passes against hostile servers on loopback: what one of them does stops that side
for the pass, with a message, and nothing else."""

from __future__ import annotations

import anyio
import pytest
from aiohttp import web

from pipeline.emulators import Dataset, serve_app
from pipeline.targets.syncbatch.settings import SyncBatchSettings
from tests.conftest import MAN_TOKEN, Env
from tests.kit.passes import run_pass
from tests.kit.servers import Capture, redirecting

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
    assert len(arrivals) <= env.settings().targets.get(SyncBatchSettings).max_in_flight  # type: ignore[union-attr]
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


async def test_token_endpoint_redirect_elsewhere_stops_the_target_and_leaks_nothing(
    env: Env,
) -> None:
    await env.start(Dataset(SIZE, defects=False), targets=("syncbatch", "emporix"))
    capture = Capture()
    async with (
        serve_app(capture.app()) as elsewhere,
        serve_app(redirecting(307, f"{elsewhere}/oauth/token")[0]) as hostile,
    ):
        report, _ = await run_pass(env, targets__emporix__token_url=f"{hostile}/oauth/token")

    assert capture.seen == []  # no form, no client secret, nothing
    stopped, healthy = report.targets["emporix"], report.targets["syncbatch"]
    assert stopped.error is not None
    assert f"({hostile} -> {elsewhere})" in stopped.error
    assert stopped.created == 0 and env.emx_store.customers == {}
    assert healthy.error is None and healthy.created == SIZE
    assert len(env.store.accounts) == SIZE


@pytest.mark.parametrize("status", [302, 307])
async def test_source_redirect_elsewhere_aborts_without_sending_the_header_pair(
    env: Env, monkeypatch: pytest.MonkeyPatch, status: int
) -> None:
    monkeypatch.setenv("MAN_CLIENT_ID", "man-id")
    monkeypatch.setenv("MAN_CLIENT_SECRET", "man-secret")
    await env.start(Dataset(SIZE, defects=False))
    capture = Capture()
    async with (
        serve_app(capture.app()) as elsewhere,
        serve_app(redirecting(status, f"{elsewhere}/customer-users")[0]) as hostile,
    ):
        report, _ = await run_pass(
            env,
            source__url=f"{hostile}/customer-users",
            source__client_id_env="MAN_CLIENT_ID",
            source__client_secret_env="MAN_CLIENT_SECRET",
        )

    assert capture.seen == []
    assert report.status == "aborted"
    assert report.source.error is not None
    assert f"({hostile} -> {elsewhere})" in report.source.error
    assert "man-secret" not in report.source.error and MAN_TOKEN not in report.source.error
    assert env.store.accounts == {}
