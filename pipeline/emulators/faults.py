"""Fault plans for the emulators: seeded errors, throttling, latency and scripted failures."""

from __future__ import annotations

import asyncio
import collections
import http
import random
from collections.abc import Callable
from typing import Any

import msgspec
import orjson
from aiohttp import web

__all__ = [
    "ErrorBody",
    "FaultInjector",
    "FaultPlan",
    "format_retry_after",
    "generic_error_body",
    "json_response",
]

ErrorBody = Callable[[int, str], Any]
"""Builds the JSON body of an injected error from its status and a human message."""


class FaultPlan(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What goes wrong, and how often: failures are data, seeded so a run can be replayed.

    Per request the injector draws once: below `throttle_rate` the answer is a 429,
    below `throttle_rate + error_rate` one of `error_statuses`. Request numbers in
    `fail_requests` (1-based, counted per injector) answer 500 whatever the draw.
    """

    seed: int = 0
    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = (500, 502, 503, 504)
    throttle_rate: float = 0.0
    retry_after: float = 1.0
    latency: float = 0.0
    latency_jitter: float = 0.0
    fail_requests: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for name in ("error_rate", "throttle_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {rate!r}")
        if self.error_rate + self.throttle_rate > 1.0:
            raise ValueError("error_rate + throttle_rate must not exceed 1")
        for name in ("retry_after", "latency", "latency_jitter"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.error_rate > 0 and not self.error_statuses:
            raise ValueError("error_statuses must not be empty when error_rate > 0")
        if any(not 400 <= status <= 599 for status in self.error_statuses):
            raise ValueError("error_statuses must be HTTP error statuses (400-599)")


def format_retry_after(seconds: float) -> str:
    """Render a Retry-After value: "2" for whole seconds, "0.02" otherwise (never an exponent)."""
    if float(seconds).is_integer():
        return str(int(seconds))
    return format(seconds, "f").rstrip("0").rstrip(".")


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """Encode `body` with orjson as `application/json; charset=utf-8`."""
    return web.Response(
        body=orjson.dumps(body),
        status=status,
        headers=headers,
        content_type="application/json",
        charset="utf-8",
    )


def generic_error_body(status: int, message: str) -> Any:
    """Default body of an injected error: `{"error": <snake_case reason>, "message": ...}`."""
    reason = http.HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    return {"error": reason, "message": message}


class FaultInjector:
    """Apply a `FaultPlan` to the requests of one emulator.

    `apply()` is awaited by a handler before it answers: it sleeps the planned
    latency, then returns the injected error response, or None to answer normally.
    The counters (`requests`, `injected`) are there for assertions and `/_admin/stats`.
    """

    def __init__(self, plan: FaultPlan, *, error_body: ErrorBody = generic_error_body) -> None:
        self.plan = plan
        self.requests = 0
        self.injected: collections.Counter[str] = collections.Counter()
        self._error_body = error_body
        self._fail_requests = frozenset(plan.fail_requests)
        self._random = random.Random(plan.seed)
        # Jitter draws come from their own generator, so turning jitter on
        # does not change which requests fail.
        self._jitter = random.Random(f"jitter-{plan.seed}")

    def __repr__(self) -> str:
        return f"FaultInjector(seed={self.plan.seed}, requests={self.requests})"

    async def apply(self) -> web.Response | None:
        """Count the request, wait the latency, and return an injected error or None."""
        self.requests += 1
        number = self.requests
        plan = self.plan
        draw = self._random.random()
        status: int | None = None
        if number in self._fail_requests:
            status = 500
        elif draw < plan.throttle_rate:
            status = 429
        elif draw < plan.throttle_rate + plan.error_rate:
            status = self._random.choice(plan.error_statuses)

        delay = plan.latency
        if plan.latency_jitter > 0:
            delay += self._jitter.uniform(0.0, plan.latency_jitter)
        if delay > 0:
            await asyncio.sleep(delay)

        if status is None:
            return None
        self.injected[str(status)] += 1
        return self._response(status)

    def _response(self, status: int) -> web.Response:
        headers: dict[str, str] = {}
        if status in (429, 503):
            headers["Retry-After"] = format_retry_after(self.plan.retry_after)
        message = f"injected fault: {http.HTTPStatus(status).phrase}"
        return json_response(self._error_body(status, message), status=status, headers=headers)
