"""The HTTP edge against scripted servers on loopback: retries, Retry-After, error mapping."""

from __future__ import annotations

import gzip
import tracemalloc

import anyio
import pytest
from aiohttp import web

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
from pipeline.http import BURST_SECONDS, MB, HttpClient, limiter_shape

FAST = RetrySettings(max_attempts=4, initial_seconds=0.001, max_seconds=1.0)


def scripted(*answers: tuple[int, dict[str, str]]) -> tuple[web.Application, list[float]]:
    """An app answering each request with the next (status, headers); records arrival times."""
    arrivals: list[float] = []

    async def handler(request: web.Request) -> web.Response:
        arrivals.append(anyio.current_time())
        status, headers = answers[min(len(arrivals) - 1, len(answers) - 1)]
        return web.json_response({"n": len(arrivals)}, status=status, headers=headers)

    app = web.Application()
    app.router.add_route("*", "/x", handler)
    return app, arrivals


async def test_429_waits_for_retry_after_then_succeeds() -> None:
    app, arrivals = scripted((429, {"Retry-After": "0.2"}), (200, {}))
    async with (
        serve_app(app) as url,
        HttpClient(timeout_seconds=5, retry=FAST, max_in_flight=2) as client,
    ):
        response = await client.request("GET", f"{url}/x")
    assert response.status == 200
    assert arrivals[1] - arrivals[0] >= 0.2
    assert (client.stats.retries, client.stats.throttled, client.stats.requests) == (1, 1, 2)


async def test_5xx_retried_until_attempts_run_out() -> None:
    app, arrivals = scripted((503, {}))
    async with (
        serve_app(app) as url,
        HttpClient(timeout_seconds=5, retry=FAST, max_in_flight=1) as client,
    ):
        with pytest.raises(TransientHTTPError) as caught:
            await client.request("POST", f"{url}/x?secret=1", body=b"{}")
    assert len(arrivals) == FAST.max_attempts
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


class Capture:
    """A server at another origin that records whatever reaches it."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(
            (request.method, request.path, dict(request.headers), await request.read())
        )
        return web.json_response({"captured": True})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app


def redirecting(status: int, location: str) -> tuple[web.Application, list[str]]:
    """``/x`` redirects to ``location``; ``/y`` answers 200; records the paths asked for."""
    paths: list[str] = []

    async def redirect(request: web.Request) -> web.Response:
        paths.append(request.path)
        return web.Response(status=status, headers={"Location": location})

    async def final(request: web.Request) -> web.Response:
        paths.append(request.path)
        return web.json_response({"client_id": request.headers.get("client_id")})

    app = web.Application()
    app.router.add_route("*", "/x", redirect)
    app.router.add_route("*", "/y", final)
    return app, paths


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


async def test_rate_below_ten_per_second_is_honoured() -> None:
    app, arrivals = scripted((200, {}))
    async with (
        serve_app(app) as url,
        HttpClient(timeout_seconds=5, retry=FAST, max_in_flight=4, rate_per_second=2) as client,
        anyio.create_task_group() as tg,
    ):
        for _ in range(4):
            tg.start_soon(client.request, "GET", f"{url}/x")
    # At 2/s, four requests are half a second apart: 1.5 s from the first to the last
    # (the old bucket let ten a second through: 0.3 s).
    assert len(arrivals) == 4
    assert arrivals[-1] - arrivals[0] >= 1.4
