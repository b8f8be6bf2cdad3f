"""The time source of the HTTP edge, and the fake clock the tests drive it with."""

from __future__ import annotations

import anyio
import pytest

from pipeline.clock import SYSTEM_CLOCK, RateLimiter
from tests.kit.clock import FakeClock


async def test_fake_clock_wakes_sleepers_side_by_side_at_their_deadlines() -> None:
    clock = FakeClock(start=10.0)
    woke: list[tuple[str, float]] = []

    async def nap(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.now()))

    async with anyio.create_task_group() as tg:
        tg.start_soon(nap, "long", 3.0)
        tg.start_soon(nap, "short", 1.0)
        tg.start_soon(nap, "middle", 2.0)
    assert woke == [("short", 11.0), ("middle", 12.0), ("long", 13.0)]
    assert clock.now() == 13.0  # side by side: not 10 + 1 + 2 + 3


async def test_fake_clock_forgets_a_cancelled_sleeper() -> None:
    clock = FakeClock()
    scope = anyio.CancelScope()

    async def long_nap() -> None:
        with scope:
            await clock.sleep(3600)

    async def cancel_it() -> None:
        await clock.sleep(1)
        scope.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(long_nap)
        tg.start_soon(cancel_it)
    assert clock.now() == 1.0
    with anyio.fail_after(5):  # a forgotten sleeper at 3600 would stay first for ever
        await clock.sleep(5000)
    assert clock.now() == 5001.0


async def test_rate_limiter_passes_a_bucket_then_one_per_period() -> None:
    clock = FakeClock()
    limiter = RateLimiter(3, 0.5, clock)  # 3 requests, 6 per second
    passed = []
    for _ in range(6):
        await limiter.acquire()
        passed.append(clock.now())
    assert passed == pytest.approx([0, 0, 0, 1 / 6, 2 / 6, 3 / 6], abs=1e-9)
    await clock.sleep(10)  # an idle bucket drains, but never below empty
    for _ in range(3):
        await limiter.acquire()
    assert clock.now() == 10.5


def test_rate_limiter_holds_at_least_one_request() -> None:
    with pytest.raises(ValueError, match="at least one request"):
        RateLimiter(0.5, 1.0, SYSTEM_CLOCK)


async def test_system_clock_is_the_event_loop_clock() -> None:
    before = anyio.current_time()
    await SYSTEM_CLOCK.sleep(0.01)
    assert SYSTEM_CLOCK.now() - before >= 0.01
