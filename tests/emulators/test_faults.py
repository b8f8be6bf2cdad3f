"""Tests of fault plans: seeded rates, scripted failures, Retry-After, latency, bodies."""

from __future__ import annotations

import asyncio
import time
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import msgspec
import orjson
import pytest
from aiohttp import web

from pipeline.emulators.faults import (
    MALFORMED_BODY,
    FaultInjector,
    FaultPlan,
    format_retry_after,
    json_response,
    with_body_faults,
)
from pipeline.emulators.server import serve_app

INJECTOR = web.AppKey("injector", FaultInjector)
PROCESSED: web.AppKey[list[str]] = web.AppKey("processed")
PAYLOAD = {"data": [{"id": i, "name": f"record {i}"} for i in range(20)]}


async def _statuses(injector: FaultInjector, count: int) -> list[int]:
    statuses = []
    for _ in range(count):
        response = await injector.apply()
        statuses.append(200 if response is None else response.status)
    return statuses


def _body(response: web.Response) -> object:
    assert isinstance(response.body, bytes)
    return orjson.loads(response.body)


async def test_faults_empty_plan_injects_nothing() -> None:
    injector = FaultInjector(FaultPlan())
    assert await _statuses(injector, 200) == [200] * 200
    assert injector.requests == 200
    assert injector.injected == {}


async def test_faults_rates_roughly_match_plan() -> None:
    plan = FaultPlan(seed=1, error_rate=0.2, throttle_rate=0.1)
    injector = FaultInjector(plan)
    statuses = await _statuses(injector, 2000)
    throttled = statuses.count(429)
    errors = sum(1 for s in statuses if s >= 500)
    assert 150 <= throttled <= 250
    assert 330 <= errors <= 470
    assert {s for s in statuses if s >= 500} == {500, 502, 503, 504}
    assert sum(injector.injected.values()) == throttled + errors
    assert injector.injected["429"] == throttled


async def test_faults_same_seed_same_sequence() -> None:
    plan = FaultPlan(seed=9, error_rate=0.3, throttle_rate=0.2)
    first = await _statuses(FaultInjector(plan), 300)
    second = await _statuses(FaultInjector(plan), 300)
    third = await _statuses(FaultInjector(msgspec.structs.replace(plan, seed=10)), 300)
    assert first == second
    assert first != third


async def test_faults_jitter_does_not_change_sequence() -> None:
    plan = FaultPlan(seed=9, error_rate=0.3)
    jittered = msgspec.structs.replace(plan, latency_jitter=0.0001)
    assert await _statuses(FaultInjector(plan), 100) == await _statuses(
        FaultInjector(jittered), 100
    )


async def test_faults_fail_requests_scripted() -> None:
    injector = FaultInjector(FaultPlan(fail_requests=(2, 5)))
    assert await _statuses(injector, 6) == [200, 500, 200, 200, 500, 200]
    assert injector.injected == {"500": 2}


async def test_faults_429_carries_retry_after_and_body() -> None:
    def body(status: int, message: str) -> object:
        return {"flavour": "test", "status": status, "message": message}

    injector = FaultInjector(FaultPlan(throttle_rate=1.0, retry_after=0.02), error_body=body)
    response = await injector.apply()
    assert response is not None and response.status == 429
    assert response.headers["Retry-After"] == "0.02"
    assert response.content_type == "application/json"
    assert response.charset == "utf-8"
    assert _body(response) == {
        "flavour": "test",
        "status": 429,
        "message": "injected fault: Too Many Requests",
    }


async def test_faults_503_carries_retry_after_500_does_not() -> None:
    injector = FaultInjector(FaultPlan(error_rate=1.0, error_statuses=(503,), retry_after=2.0))
    response = await injector.apply()
    assert response is not None and response.status == 503
    assert response.headers["Retry-After"] == "2"
    scripted = FaultInjector(FaultPlan(fail_requests=(1,)))
    response = await scripted.apply()
    assert response is not None and response.status == 500
    assert "Retry-After" not in response.headers
    assert _body(response) == {
        "error": "internal_server_error",
        "message": "injected fault: Internal Server Error",
    }


async def test_faults_latency_delays_answer() -> None:
    injector = FaultInjector(FaultPlan(latency=0.05, latency_jitter=0.02))
    started = time.perf_counter()
    assert await injector.apply() is None
    elapsed = time.perf_counter() - started
    assert 0.05 <= elapsed < 0.5


@pytest.mark.parametrize(
    ("seconds", "header"),
    [(1.0, "1"), (0, "0"), (30, "30"), (0.02, "0.02"), (1.5, "1.5"), (0.00001, "0.00001")],
)
def test_faults_retry_after_format(seconds: float, header: str) -> None:
    assert format_retry_after(seconds) == header
    assert float(header) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "fields",
    [
        {"error_rate": 1.5},
        {"throttle_rate": -0.1},
        {"error_rate": 0.6, "throttle_rate": 0.6},
        {"latency": -1.0},
        {"error_rate": 0.1, "error_statuses": ()},
        {"error_statuses": (200,)},
        {"retry_after": -1.0},
        {"hang_rate": 1.5},
        {"hang_seconds": -0.1},
        {"reset_rate": -0.5},
        {"truncate_rate": 2.0},
        {"malformed_rate": 1.01},
        {"reset_rate": 0.5, "truncate_rate": 0.3, "malformed_rate": 0.3},
        {"burst_every": -1},
        {"burst_length": 2},
        {"burst_every": 3, "burst_length": 4},
        {"burst_every": 2, "burst_length": -1},
        {"hang_rate": "often"},
    ],
)
def test_faults_plan_invalid_raises(fields: dict[str, object]) -> None:
    with pytest.raises((ValueError, msgspec.ValidationError)):
        msgspec.convert(fields, FaultPlan)


def test_faults_plan_unknown_field_rejected() -> None:
    with pytest.raises(msgspec.ValidationError, match="nope"):
        msgspec.convert({"nope": 1}, FaultPlan)


# -- over HTTP ------------------------------------------------------------------------


async def _data(request: web.Request) -> web.Response:
    """A data endpoint: status faults first, then the work, then the JSON answer."""
    refused = await request.app[INJECTOR].apply(request)
    if refused is not None:
        return refused
    request.app[PROCESSED].append(request.path)
    if request.path == "/empty":
        return web.Response(status=204)
    if request.path == "/missing":
        return json_response({"error": "not_found"}, status=404)
    return json_response(PAYLOAD, headers={"X-Count": "20"})


@asynccontextmanager
async def _served(plan: FaultPlan) -> AsyncIterator[tuple[str, web.Application]]:
    app = web.Application()
    app[INJECTOR] = FaultInjector(plan)
    app[PROCESSED] = []
    handler = with_body_faults(INJECTOR, _data)
    paths = ("/data", "/empty", "/missing")
    app.router.add_routes(
        [web.route(method, path, handler) for path in paths for method in ("GET", "POST")]
    )
    async with serve_app(app) as url:
        yield url, app


async def _fetch(session: aiohttp.ClientSession, url: str) -> tuple[int, str, bytes]:
    """(status, outcome, body): outcome "json", "bad-json", or the client error's name."""
    try:
        async with session.get(url) as response:
            raw = await response.read()
    except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
        return 0, type(exc).__name__, b""
    if not raw:
        return response.status, "empty", raw
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError:
        return response.status, "bad-json", raw
    return response.status, "json", raw


async def test_faults_http_429_and_503_without_retry_after() -> None:
    for plan in (
        FaultPlan(throttle_rate=1.0, retry_after=None),
        FaultPlan(throttle_rate=1.0, send_retry_after=False),
        FaultPlan(error_rate=1.0, error_statuses=(503,), send_retry_after=False),
    ):
        async with (
            _served(plan) as (url, app),
            aiohttp.ClientSession() as session,
            session.get(url + "/data") as response,
        ):
            assert response.status in (429, 503)
            assert "Retry-After" not in response.headers
            assert (await response.json())["message"].startswith("injected fault")
            assert app[PROCESSED] == []  # answered before the request was processed


async def test_faults_http_bursts_hit_exact_request_numbers() -> None:
    plan = FaultPlan(burst_every=5, burst_length=2, retry_after=0.5)
    async with _served(plan) as (url, app), aiohttp.ClientSession() as session:
        statuses, retry_after = [], set()
        for _ in range(12):
            async with session.get(url + "/data") as response:
                statuses.append(response.status)
                if response.status == 503:
                    retry_after.add(response.headers["Retry-After"])
    assert [n for n, status in enumerate(statuses, 1) if status == 503] == [1, 2, 6, 7, 11, 12]
    assert set(statuses) == {200, 503}
    assert retry_after == {"0.5"}
    assert app[INJECTOR].injected == {"503": 6}
    assert len(app[PROCESSED]) == 6


async def test_faults_http_hang_outlasts_client_timeout() -> None:
    plan = FaultPlan(hang_rate=1.0, hang_seconds=0.5)
    timeout = aiohttp.ClientTimeout(total=0.1)
    async with _served(plan) as (url, app), aiohttp.ClientSession(timeout=timeout) as session:
        started = time.perf_counter()
        with pytest.raises(asyncio.TimeoutError):
            async with session.get(url + "/data") as response:
                await response.read()
        assert time.perf_counter() - started < 0.4
        assert app[INJECTOR].injected == {"hang": 1}


async def test_faults_http_hang_answers_after_hang_seconds() -> None:
    plan = FaultPlan(hang_rate=1.0, hang_seconds=0.2)
    async with _served(plan) as (url, _), aiohttp.ClientSession() as session:
        started = time.perf_counter()
        assert (await _fetch(session, url + "/data"))[:2] == (200, "json")
        assert time.perf_counter() - started >= 0.2


async def test_faults_http_reset_mid_body_after_processing() -> None:
    async with _served(FaultPlan(reset_rate=1.0)) as (url, app), aiohttp.ClientSession() as s:
        async with s.get(url + "/data") as response:
            assert response.status == 200
            assert response.headers["Content-Length"] == str(len(orjson.dumps(PAYLOAD)))
            with pytest.raises(aiohttp.ClientPayloadError):
                await response.read()
        # An answer without a body is dropped whole. POST: aiohttp re-sends an
        # idempotent request (GET, PUT, DELETE) once by itself after such a hang-up.
        with pytest.raises(aiohttp.ServerDisconnectedError):
            async with s.post(url + "/empty") as response:
                await response.read()
        assert app[PROCESSED] == ["/data", "/empty"]  # the work was done, the answer lost
        assert app[INJECTOR].injected == {"reset": 2}
        with pytest.raises(aiohttp.ServerDisconnectedError):
            async with s.get(url + "/empty") as response:
                await response.read()
        assert app[PROCESSED][2:] == ["/empty", "/empty"]  # the client's own retry


async def test_faults_http_truncated_body_is_cut_in_half() -> None:
    full = orjson.dumps(PAYLOAD)
    async with (
        _served(FaultPlan(truncate_rate=1.0)) as (url, app),
        aiohttp.ClientSession() as session,
        session.get(url + "/data") as response,
    ):
        raw = await response.read()
        assert response.status == 200
        assert response.headers["Content-Length"] == str(len(raw))
        assert response.headers["X-Count"] == "20"
        assert response.content_type == "application/json"
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(raw)
        assert raw == full[: len(full) // 2]
        assert app[INJECTOR].injected == {"truncated": 1}


async def test_faults_http_malformed_body_is_html_with_json_type() -> None:
    async with (
        _served(FaultPlan(malformed_rate=1.0)) as (url, app),
        aiohttp.ClientSession() as session,
    ):
        async with session.get(url + "/data") as response:
            assert (response.status, response.content_type) == (200, "application/json")
            assert await response.read() == MALFORMED_BODY
            with pytest.raises(ValueError):
                await response.json()
        empty = await _fetch(session, url + "/empty")
        assert app[INJECTOR].injected == {"malformed": 1}
    assert empty == (204, "empty", b"")  # nothing to spoil in an empty body


async def test_faults_http_body_faults_spare_error_answers() -> None:
    plan = FaultPlan(reset_rate=0.5, truncate_rate=0.5)
    async with _served(plan) as (url, app), aiohttp.ClientSession() as session:
        for _ in range(5):
            status, outcome, _ = await _fetch(session, url + "/missing")
            assert (status, outcome) == (404, "json")
        assert app[INJECTOR].injected == {}


async def _outcomes(plan: FaultPlan, count: int = 40) -> list[tuple[int, str]]:
    async with _served(plan) as (url, _), aiohttp.ClientSession() as session:
        return [(await _fetch(session, url + "/data"))[:2] for _ in range(count)]


async def test_faults_http_seeded_families_are_independent() -> None:
    body = FaultPlan(seed=5, reset_rate=0.2, truncate_rate=0.2, malformed_rate=0.2)
    first = await _outcomes(body)
    assert first == await _outcomes(body)
    assert first != await _outcomes(msgspec.structs.replace(body, seed=6))
    assert {outcome for _, outcome in first} == {
        "json", "bad-json", "ClientPayloadError",
    }  # fmt: skip
    # Status faults on top: the requests they spare keep their body outcome.
    both = await _outcomes(msgspec.structs.replace(body, error_rate=0.3, throttle_rate=0.2))
    assert any(status >= 429 for status, _ in both)
    for alone, mixed in zip(first, both, strict=True):
        assert mixed[0] >= 429 or mixed == alone
    # Body faults on top of status faults: the status sequence stays put.
    plain = await _outcomes(FaultPlan(seed=5, error_rate=0.3, throttle_rate=0.2))
    for alone, mixed in zip(plain, both, strict=True):
        assert mixed == alone if alone[0] >= 429 else mixed[0] in (0, 200)


async def test_faults_hang_does_not_change_status_sequence() -> None:
    plan = FaultPlan(seed=9, error_rate=0.3, throttle_rate=0.1)
    hanging = msgspec.structs.replace(plan, hang_rate=0.5, hang_seconds=0.0)
    injector = FaultInjector(hanging)
    assert await _statuses(FaultInjector(plan), 100) == await _statuses(injector, 100)
    assert 30 <= injector.injected["hang"] <= 70


def test_faults_plan_from_toml_without_retry_after() -> None:
    text = """
seed = 3
throttle_rate = 0.25
send_retry_after = false
burst_every = 10
burst_length = 3
hang_rate = 0.01
hang_seconds = 5
reset_rate = 0.1
truncate_rate = 0.1
malformed_rate = 0.05
"""
    plan = msgspec.convert(tomllib.loads(text), FaultPlan)
    assert plan.send_retry_after is False and plan.retry_after == 1.0
    assert (plan.burst_every, plan.burst_length, plan.hang_seconds) == (10, 3, 5.0)
    assert (plan.reset_rate, plan.truncate_rate, plan.malformed_rate) == (0.1, 0.1, 0.05)
