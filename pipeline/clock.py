"""The time source of the HTTP edge: what its rate limit, backoff and pauses read and wait on.

The product uses :data:`SYSTEM_CLOCK` (anyio's event-loop clock); a test hands an
:class:`~pipeline.http.HttpClient` (or a target, through its context) a clock of its own
whose time only moves when something sleeps on it.
"""

from __future__ import annotations

from typing import Protocol

import anyio

__all__ = ["SYSTEM_CLOCK", "AnyioClock", "Clock", "RateLimiter"]


class Clock(Protocol):
    """Seconds on a monotonic scale, and a way to wait some of them."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class AnyioClock:
    """The event loop's clock (``anyio.current_time``, ``anyio.sleep``)."""

    def now(self) -> float:
        return anyio.current_time()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


SYSTEM_CLOCK: Clock = AnyioClock()

_ROUNDING = 1e-9
"""Requests a bucket may be over by after draining exactly the time computed (float error)."""


class RateLimiter:
    """A leaky bucket: it holds ``capacity`` requests and drains at ``capacity / seconds``
    per second. A request passes when one more fits in the bucket; the first ``capacity``
    (rounded down) pass at once, every later one waits for a request's worth to drain.
    Waiters pass in the order they came.
    """

    def __init__(self, capacity: float, seconds: float, clock: Clock = SYSTEM_CLOCK) -> None:
        if capacity < 1 or seconds <= 0:
            raise ValueError("a bucket holds at least one request and drains in some time")
        self.capacity = capacity
        self.rate = capacity / seconds
        self._clock = clock
        self._level = 0.0
        self._checked: float | None = None
        self._lock = anyio.Lock()

    def _leak(self) -> None:
        now = self._clock.now()
        if self._checked is not None:
            self._level = max(self._level - (now - self._checked) * self.rate, 0.0)
        self._checked = now

    async def acquire(self) -> None:
        """Wait until one more request fits in the bucket, then take its place."""
        async with self._lock:
            self._leak()
            while self._level + 1 > self.capacity + _ROUNDING:
                await self._clock.sleep((self._level + 1 - self.capacity) / self.rate)
                self._leak()
            self._level += 1
