"""The HTTP edge against scripted servers on loopback: retries, Retry-After, error mapping."""

from __future__ import annotations

import gzip
import random
import tracemalloc
from collections.abc import Callable

import anyio
import pytest
from aiohttp import web

from pipeline.backoff import backoff_delay
from pipeline.clock import BURST_SECONDS, limiter_shape
from pipeline.config import RetrySettings
from pipeline.emulators import serve_app
from pipeline.errors import (
    AuthError,
    HTTPStatusError,
    RedirectError,
    ResponseTooLargeError,
    ThrottledError,
    TransientHTTPError,
)
from pipeline.http import MB, HttpClient
from tests.kit.clock import FakeClock
from tests.kit.servers import Capture, redirecting

FAST = RetrySettings(max_attempts=4, initial_seconds=0.001, max_seconds=1.0)


def scripted(
    *answers: tuple[int, dict[str, str]], now: Callable[[], float] = anyio.current_time
) -> tuple[web.Application, list[float]]:
    """An app answering each request with the next (status, headers); records arrival times
    (read from ``now``)."""
    arrivals: list[float] = []

    async def handler(request: web.Request) -> web.Response:
        arrivals.append(now())
        status, headers = answers[min(len(arrivals) - 1, len(answers) - 1)]
        return web.json_response({"n": len(arrivals)}, status=status, headers=headers)

    app = web.Application()
    app.router.add_route("*", "/x", handler)
    return app, arrivals


async def test_429_waits_for_retry_after_then_succeeds() -> None:
    clock = FakeClock()
    app, arrivals = scripted((429, {"Retry-After": "0.2"}), (200, {}), now=clock.now)
    async with (
        serve_app(app) as url,
        HttpClient(timeout_seconds=5, retry=FAST, max_in_flight=2, clock=clock) as client,
    ):
        response = await client.request("GET", f"{url}/x")
    assert response.status == 200
    assert arrivals == [0.0, 0.2]  # the retry waits exactly the Retry-After, once
    assert clock.sleeps == [0.2]
    assert (client.stats.retries, client.stats.throttled, client.stats.requests) == (1, 1, 2)


async def test_429_pauses_every_worker_of_the_client_until_retry_after() -> None:
    clock = FakeClock()
    app, arrivals = scripted((429, {"Retry-After": "0.5"}), (200, {}), now=clock.now)
    async with (
        serve_app(app) as url,
        HttpClient(timeout_seconds=5, retry=FAST, max_in_flight=1, clock=clock) as client,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(client.request, "GET", f"{url}/x")
        await clock.sleep(0.1)  # the 429 has come: a second worker asks 0.1 s later
        tg.start_soon(client.request, "GET", f"{url}/x")
    # The second worker waits out what is left of the pause (0.4 s), not a backoff of its own.
    assert arrivals == [0.0, 0.5, 0.5]
    assert sorted(clock.sleeps) == pytest.approx([0.1, 0.4, 0.5])


async def test_5xx_retried_until_attempts_run_out() -> None:
    clock = FakeClock()
    app, arrivals = scripted((503, {}), now=clock.now)
    async with (
        serve_app(app) as url,
        HttpClient(timeout_seconds=5, retry=FAST, max_in_flight=1, seed=7, clock=clock) as client,
    ):
        with pytest.raises(TransientHTTPError) as caught:
            await client.request("POST", f"{url}/x?secret=1", body=b"{}")
    assert len(arrivals) == FAST.max_attempts
    # Each retry waits the jittered backoff of its attempt, drawn from the client's seed.
    rand = random.Random(7)
    backoffs = [backoff_delay(n, FAST, rand=rand) for n in range(1, FAST.max_attempts)]
    assert clock.sleeps == backoffs
    assert all(
        0 <= wait <= FAST.initial_seconds * 2 ** (n - 1) for n, wait in enumerate(backoffs, 1)
    )
    assert clock.now() == pytest.approx(sum(backoffs))
    assert caught.value.status == 503
    assert "secret" not in str(caught.value)
    assert client.stats.failures == 1


@pytest.mark.parametrize(
    ("status", "error"), [(401, AuthError), (403, AuthError), (404, HTTPStatusError)]
)
async def test_client_errors_are_not_retried(status: int, error: type[Exception]) -> None:
    app, arrivals = scripted((status, {}))
    async with (
        serve_app(app) as url,
        HttpClient(timeout_seconds=5, retry=FAST, max_in_flight=1) as client,
    ):
        with pytest.raises(error):
            await client.request("GET", f"{url}/x")
    assert len(arrivals) == 1


async def test_accepted_status_is_returned_not_raised() -> None:
    app, _ = scripted((400, {}))
    async with (
        serve_app(app) as url,
        HttpClient(timeout_seconds=5, retry=FAST, max_in_flight=1) as client,
    ):
        response = await client.request("GET", f"{url}/x", accept=frozenset({400}))
    assert response.status == 400


async def test_timeout_is_transient_and_retried() -> None:
    calls = 0

    async def slow(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            await anyio.sleep(2)
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/x", slow)
    async with (
        serve_app(app) as url,
        HttpClient(timeout_seconds=0.2, retry=FAST, max_in_flight=1) as client,
    ):
        response = await client.request("GET", f"{url}/x")
    assert response.status == 200
    assert client.stats.retries == 1


async def test_connection_refused_is_transient() -> None:
    async with HttpClient(timeout_seconds=1, retry=FAST, max_in_flight=1) as client:
        with pytest.raises(TransientHTTPError, match="connection failed"):
            await client.request("GET", "http://127.0.0.1:9/x")


async def test_an_error_never_shows_the_credentials_in_a_url() -> None:
    async with HttpClient(timeout_seconds=1, retry=FAST, max_in_flight=1) as client:
        with pytest.raises(TransientHTTPError) as caught:
            await client.request("GET", "http://user:s3cret@127.0.0.1:9/x")
    assert "s3cret" not in str(caught.value)
    assert "http://***@127.0.0.1:9/x" in str(caught.value)


@pytest.mark.parametrize("retry_after", ["86400", "1.5"])
async def test_retry_after_beyond_max_seconds_stops_the_client(retry_after: str) -> None:
    app, arrivals = scripted((429, {"Retry-After": retry_after}), (200, {}))
    async with (
        serve_app(app) as url,
        HttpClient(timeout_seconds=5, retry=FAST, max_in_flight=1) as client,
    ):
        with pytest.raises(ThrottledError, match=f"pause of {retry_after} s") as caught:
            await client.request("GET", f"{url}/x?key=secret")
        # Every later request of this client stops too, without being sent.
        with pytest.raises(ThrottledError, match=f"pause of {retry_after} s"):
            await client.request("POST", f"{url}/x", body=b"{}")
    assert len(arrivals) == 1
    assert "retry.max_seconds = 1 s" in str(caught.value)
    assert "secret" not in str(caught.value)
    assert client.stats.retries == 0


# Redirects -------------------------------------------------------------------------------

CREDENTIALS = {"client_id": "the-id", "client_secret": "the-secret"}


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirect_to_another_origin_is_refused_naming_both(status: int) -> None:
    capture = Capture()
    async with serve_app(capture.app()) as elsewhere:
        app, paths = redirecting(status, f"{elsewhere}/y?token=leak")
        async with (
            serve_app(app) as url,
            HttpClient(
                timeout_seconds=5, retry=FAST, max_in_flight=1, headers=CREDENTIALS
            ) as client,
        ):
            with pytest.raises(RedirectError) as caught:
                await client.request("GET", f"{url}/x")
    assert capture.seen == []
    assert paths == ["/x"]  # not retried
    message = str(caught.value)
    assert f"({url} -> {elsewhere})" in message
    assert "leak" not in message


async def test_redirect_within_the_origin_is_followed_for_a_get() -> None:
    app, paths = redirecting(302, "/y")
    async with (
        serve_app(app) as url,
        HttpClient(timeout_seconds=5, retry=FAST, max_in_flight=1, headers=CREDENTIALS) as client,
    ):
        response = await client.request("GET", f"{url}/x", params={"limit": "1"})
    assert response.status == 200
    assert response.body == b'{"client_id": "the-id"}'
    assert paths == ["/x", "/y"]


@pytest.mark.parametrize("status", [302, 307, 308])
async def test_redirect_of_a_post_is_not_followed_even_within_the_origin(status: int) -> None:
    app, paths = redirecting(status, "/y")
    async with (
        serve_app(app) as url,
        HttpClient(timeout_seconds=5, retry=FAST, max_in_flight=1) as client,
    ):
        with pytest.raises(RedirectError, match="only a GET follows one"):
            await client.request("POST", f"{url}/x", body=b"grant_type=client_credentials")
    assert paths == ["/x"]


async def test_endless_redirects_stop() -> None:
    app, paths = redirecting(302, "/x")
    async with (
        serve_app(app) as url,
        HttpClient(timeout_seconds=5, retry=FAST, max_in_flight=1) as client,
    ):
        with pytest.raises(RedirectError, match="more than 10 in a row"):
            await client.request("GET", f"{url}/x")
    assert len(paths) == 11


# max_response_mb -------------------------------------------------------------------------


async def test_gzip_bomb_is_cut_at_the_cap_with_the_url_named() -> None:
    bomb = gzip.compress(bytes(64 * MB), compresslevel=9)  # about 64 KB on the wire
    calls = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip"})

    app = web.Application()
    app.router.add_get("/bomb", handler)
    async with (
        serve_app(app) as url,
        HttpClient(timeout_seconds=5, retry=FAST, max_in_flight=1, max_response_bytes=MB) as client,
    ):
        tracemalloc.start()
        try:
            with pytest.raises(ResponseTooLargeError) as caught:
                await client.request("GET", f"{url}/bomb?token=secret")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert str(caught.value) == (
        f"GET {url}/bomb answered more than 1 MB (decoded): max_response_mb caps it"
    )
    assert calls == 1  # not retried: the same answer would come again
    assert peak < 16 * MB  # the old client held all 64 MB


async def test_answer_up_to_the_cap_is_read_whole() -> None:
    body = bytes(range(256)) * 4096  # exactly 1 MB

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body)

    app = web.Application()
    app.router.add_get("/x", handler)
    async with (
        serve_app(app) as url,
        HttpClient(timeout_seconds=5, retry=FAST, max_in_flight=1, max_response_bytes=MB) as c,
    ):
        response = await c.request("GET", f"{url}/x")
    assert response.body == body


# rate_per_second -------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.25, 1, 2, 3, 9.5, 10, 25, 1000])
def test_limiter_shape_holds_every_rate(rate: float) -> None:
    capacity, seconds = limiter_shape(rate)
    assert capacity >= 1  # a bucket that holds no request lets none through
    assert capacity / seconds == pytest.approx(rate)
    assert capacity <= max(rate * BURST_SECONDS, 1.0)  # no burst of a whole second's worth


async def send_together(n: int, rate: float) -> tuple[FakeClock, list[float]]:
    """``n`` requests sent at once through a client limited to ``rate``, on a fake clock."""
    clock = FakeClock()
    app, arrivals = scripted((200, {}))
    async with (
        serve_app(app) as url,
        HttpClient(
            timeout_seconds=5, retry=FAST, max_in_flight=n, rate_per_second=rate, clock=clock
        ) as client,
        anyio.create_task_group() as tg,
    ):
        for _ in range(n):
            tg.start_soon(client.request, "GET", f"{url}/x")
    assert len(arrivals) == n
    return clock, clock.sleeps


async def test_rate_below_ten_per_second_is_honoured() -> None:
    # At 2/s the bucket holds one request: four are half a second apart, 1.5 s from the first
    # to the last (the old bucket let ten a second through: 0.3 s).
    clock, waits = await send_together(4, rate=2)
    assert waits == [0.5, 0.5, 0.5]
    assert clock.now() == 1.5


@pytest.mark.parametrize(("rate", "capacity"), [(100, 10), (25, 2.5), (1000, 100)])
async def test_requests_sent_together_pass_a_bucket_then_one_per_period(
    rate: float, capacity: float
) -> None:
    # The bucket holds a tenth of a second's requests: that many pass at once (whole ones),
    # each later one when one request's worth has drained, 1/rate after the one before.
    assert limiter_shape(rate)[0] == capacity
    n = 3 * int(capacity) + 7
    clock, waits = await send_together(n, rate=rate)
    later = n - int(capacity)
    assert clock.now() == pytest.approx((n - capacity) / rate, abs=1e-9)
    assert len(waits) == later
    assert waits[1:] == pytest.approx([1 / rate] * (later - 1), abs=1e-9)
