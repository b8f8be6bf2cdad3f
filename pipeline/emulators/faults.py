"""Fault plans for the emulators: seeded errors, throttling, latency and scripted failures."""

from __future__ import annotations

import asyncio
import collections
import functools
import http
import random
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import msgspec
import orjson
from aiohttp import web
from multidict import CIMultiDict

__all__ = [
    "MALFORMED_BODY",
    "BodyFault",
    "ErrorBody",
    "FaultInjector",
    "FaultPlan",
    "Handler",
    "format_retry_after",
    "generic_error_body",
    "json_response",
    "with_body_faults",
]

ErrorBody = Callable[[int, str], Any]
"""Builds the JSON body of an injected error from its status and a human message."""

BodyFault = Literal["reset", "truncated", "malformed"]
"""What happens to the body of a 2xx answer; also the key it is counted under."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
"""An aiohttp request handler."""

MALFORMED_BODY = b"<html>upstream error</html>"
"""The body of a malformed answer: HTML from a proxy, sent as application/json."""


class FaultPlan(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What goes wrong, and how often: failures are data, seeded so a run can be replayed.

    Status faults are answered before the request is processed (nothing is stored):
    request numbers (1-based, counted per injector) in `fail_requests` answer 500;
    with `burst_every` > 0, request n answers 503 when (n-1) % burst_every < burst_length;
    otherwise one draw per request: below `throttle_rate` a 429, below
    `throttle_rate + error_rate` one of `error_statuses`. A 429 or 503 carries
    `Retry-After: retry_after` unless `retry_after` is None or `send_retry_after` is
    false (TOML has no None: write `send_retry_after = false`).

    Before that, every request waits `latency` plus up to `latency_jitter` seconds, and
    with probability `hang_rate` another `hang_seconds` (a client times out first; the
    request is then handled as usual, so a write that hung may still land).

    Body faults hit 2xx answers after the request was processed normally (a write IS
    stored, only the answer is lost), one draw per request: below `reset_rate` the
    headers and half the body are sent, then the connection is closed (an answer with
    no body is dropped whole); below `+ truncate_rate` the JSON body is cut in half;
    below `+ malformed_rate` the body is `MALFORMED_BODY`, still status 2xx and
    application/json. Truncation and malformation leave empty bodies alone.

    Each family (status, jitter, hang, body) draws from its own seeded stream, so
    turning one on does not change which requests another hits. Injected faults are
    counted by status ("429", "500", ... bursts count as "503") and as "hang",
    "reset", "truncated" and "malformed".
    """

    seed: int = 0
    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = (500, 502, 503, 504)
    throttle_rate: float = 0.0
    retry_after: float | None = 1.0
    send_retry_after: bool = True
    latency: float = 0.0
    latency_jitter: float = 0.0
    fail_requests: tuple[int, ...] = ()
    burst_every: int = 0
    burst_length: int = 0
    hang_rate: float = 0.0
    hang_seconds: float = 30.0
    reset_rate: float = 0.0
    truncate_rate: float = 0.0
    malformed_rate: float = 0.0

    def __post_init__(self) -> None:
        rates = ("error_rate", "throttle_rate", "hang_rate")
        for name in (*rates, "reset_rate", "truncate_rate", "malformed_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {rate!r}")
        if self.error_rate + self.throttle_rate > 1.0:
            raise ValueError("error_rate + throttle_rate must not exceed 1")
        if self.reset_rate + self.truncate_rate + self.malformed_rate > 1.0:
            raise ValueError("reset_rate + truncate_rate + malformed_rate must not exceed 1")
        for name in ("latency", "latency_jitter", "hang_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.retry_after is not None and self.retry_after < 0:
            raise ValueError("retry_after must not be negative")
        if self.error_rate > 0 and not self.error_statuses:
            raise ValueError("error_statuses must not be empty when error_rate > 0")
        if any(not 400 <= status <= 599 for status in self.error_statuses):
            raise ValueError("error_statuses must be HTTP error statuses (400-599)")
        if self.burst_every < 0 or self.burst_length < 0:
            raise ValueError("burst_every and burst_length must not be negative")
        if self.burst_length > 0 and self.burst_every == 0:
            raise ValueError("burst_length needs burst_every > 0")
        if self.burst_length > self.burst_every:
            raise ValueError("burst_length must not exceed burst_every")


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


_BODY_FAULT = web.RequestKey("emulator_body_fault", str)


class FaultInjector:
    """Apply a `FaultPlan` to the requests of one emulator.

    A handler awaits `apply(request)` before it processes a request: it sleeps the
    planned latency (and hang), then returns the injected error response, or None to
    go on. The handler's normal answer then goes through `finish(request, response)`,
    which applies the body fault drawn for that request, if any.
    The counters (`requests`, `injected`) are there for assertions and `/_admin/stats`.
    """

    def __init__(self, plan: FaultPlan, *, error_body: ErrorBody = generic_error_body) -> None:
        self.plan = plan
        self.requests = 0
        self.injected: collections.Counter[str] = collections.Counter()
        self._error_body = error_body
        self._fail_requests = frozenset(plan.fail_requests)
        self._random = random.Random(plan.seed)
        # One generator per fault family, so turning one family on does not
        # change which requests another one hits.
        self._jitter = random.Random(f"jitter-{plan.seed}")
        self._hang = random.Random(f"hang-{plan.seed}")
        self._body = random.Random(f"body-{plan.seed}")

    def __repr__(self) -> str:
        return f"FaultInjector(seed={self.plan.seed}, requests={self.requests})"

    async def apply(self, request: web.Request | None = None) -> web.Response | None:
        """Count the request, wait latency and hang, and return an injected error or None.

        The body fault drawn for the request is remembered on `request` for `finish()`;
        without a request it is drawn all the same (the sequence stays put) and dropped.
        """
        self.requests += 1
        status = self._status(self.requests)
        plan = self.plan
        hang = self._hang.random() < plan.hang_rate
        body_fault = self._body_fault(self._body.random())
        if request is not None and body_fault is not None:
            request[_BODY_FAULT] = body_fault

        delay = plan.latency
        if plan.latency_jitter > 0:
            delay += self._jitter.uniform(0.0, plan.latency_jitter)
        if hang:
            self.injected["hang"] += 1
            delay += plan.hang_seconds
        if delay > 0:
            await asyncio.sleep(delay)

        if status is None:
            return None
        self.injected[str(status)] += 1
        return self._response(status)

    async def finish(
        self, request: web.Request, response: web.StreamResponse
    ) -> web.StreamResponse:
        """Apply the body fault drawn for `request` to its 2xx answer; else return it as is.

        A reset sends the headers and half the body (or nothing, for an empty body),
        closes the connection and returns the already prepared response.
        """
        kind = request.get(_BODY_FAULT)
        if kind is None or not 200 <= response.status < 300:
            return response
        if not isinstance(response, web.Response):
            return response
        body = b"" if response.body is None else response.body
        if not isinstance(body, bytes):  # a streamed payload: left alone
            return response
        headers = response.headers.copy()
        headers.popall("Content-Length", None)
        if kind == "reset":
            del request[_BODY_FAULT]
            self.injected["reset"] += 1
            return await _reset(request, response, headers, body)
        if not body:
            return response
        del request[_BODY_FAULT]
        self.injected[kind] += 1
        cut = body[: len(body) // 2] if kind == "truncated" else MALFORMED_BODY
        return web.Response(body=cut, status=response.status, headers=headers)

    def _status(self, number: int) -> int | None:
        plan = self.plan
        draw = self._random.random()
        if number in self._fail_requests:
            return 500
        if plan.burst_every and (number - 1) % plan.burst_every < plan.burst_length:
            return 503
        if draw < plan.throttle_rate:
            return 429
        if draw < plan.throttle_rate + plan.error_rate:
            return self._random.choice(plan.error_statuses)
        return None

    def _body_fault(self, draw: float) -> BodyFault | None:
        plan = self.plan
        if draw < plan.reset_rate:
            return "reset"
        if draw < plan.reset_rate + plan.truncate_rate:
            return "truncated"
        if draw < plan.reset_rate + plan.truncate_rate + plan.malformed_rate:
            return "malformed"
        return None

    def _response(self, status: int) -> web.Response:
        headers: dict[str, str] = {}
        plan = self.plan
        if status in (429, 503) and plan.send_retry_after and plan.retry_after is not None:
            headers["Retry-After"] = format_retry_after(plan.retry_after)
        message = f"injected fault: {http.HTTPStatus(status).phrase}"
        return json_response(self._error_body(status, message), status=status, headers=headers)


async def _reset(
    request: web.Request, response: web.Response, headers: CIMultiDict[str], body: bytes
) -> web.StreamResponse:
    """Send the headers and the first half of `body`, then close the connection."""
    if not body:  # nothing to cut: drop the whole answer
        if request.transport is not None:
            request.transport.close()
        return response
    stream = web.StreamResponse(status=response.status, reason=response.reason, headers=headers)
    stream.content_length = len(body)
    await stream.prepare(request)
    await stream.write(body[: len(body) // 2])
    if request.transport is not None:
        request.transport.close()
    return stream


def with_body_faults(key: web.AppKey[FaultInjector], handler: Handler) -> Handler:
    """Wrap a data handler so its answer goes through the app's injector `finish()`."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        return await request.app[key].finish(request, await handler(request))

    return wrapped
