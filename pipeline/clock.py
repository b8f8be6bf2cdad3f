"""The time source of the HTTP edge: what its rate limit, backoff and pauses read and wait on.

The product uses :data:`SYSTEM_CLOCK` (anyio's event-loop clock); a test hands an
:class:`~pipeline.http.HttpClient` (or a target, through its context) a clock of its own
whose time only moves when something sleeps on it.
"""

from __future__ import annotations

from typing import Protocol

import anyio

__all__ = ["BURST_SECONDS", "SYSTEM_CLOCK", "AnyioClock", "Clock", "RateLimiter", "limiter_shape"]


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

BURST_SECONDS = 0.1
"""The rate limiter's bucket holds this many seconds' worth of requests (and never less than
one request): at most that many pass at once, every later one at the rate."""

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


def limiter_shape(rate_per_second: float) -> tuple[float, float]:
    """The leaky bucket of ``rate_per_second``: (capacity, seconds), a bucket holding
    ``capacity`` requests that drains in ``seconds`` (so ``capacity / seconds`` is the rate).

    It holds a tenth of a second's requests (10 at 100/s), so the rate holds from the first
    request on instead of allowing a whole second's worth at once (measured: 139% of the limit
    over a 3-second pass with a one-second bucket, 100% steady): ``n`` requests sent together
    take ``(n - capacity) / rate`` seconds. Below 10/s that is less than one request: the
    bucket then holds one, drained in the time one request takes at the rate (half a second at
    2/s), so ``n`` requests take ``(n - 1) / rate``.
    """
    capacity = max(rate_per_second * BURST_SECONDS, 1.0)
    return capacity, capacity / rate_per_second
