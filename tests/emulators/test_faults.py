"""Tests of fault plans: seeded rates, scripted failures, Retry-After, latency, bodies."""

from __future__ import annotations

import time

import msgspec
import orjson
import pytest
from aiohttp import web

from pipeline.emulators.faults import FaultInjector, FaultPlan, format_retry_after


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
    ],
)
def test_faults_plan_invalid_raises(fields: dict[str, object]) -> None:
    with pytest.raises((ValueError, msgspec.ValidationError)):
        msgspec.convert(fields, FaultPlan)


def test_faults_plan_unknown_field_rejected() -> None:
    with pytest.raises(msgspec.ValidationError, match="nope"):
        msgspec.convert({"nope": 1}, FaultPlan)
