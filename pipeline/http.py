"""The one HTTP edge: aiohttp behind retries, a rate limit and a cap on requests in flight.

aiohttp types and exceptions stay in this module; callers see :class:`Response` and the
errors of :mod:`pipeline.errors`.
"""

from __future__ import annotations

import random
import ssl
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Self, TypeVar

import aiohttp
import anyio
import msgspec
from yarl import URL

from pipeline.backoff import backoff_delay, parse_retry_after
from pipeline.clock import SYSTEM_CLOCK, Clock, RateLimiter, limiter_shape
from pipeline.config import DEFAULT_MAX_RESPONSE_MB, RetrySettings
from pipeline.errors import (
    AuthError,
    ConfigError,
    DecodeError,
    HTTPStatusError,
    RedirectError,
    ResponseTooLargeError,
    Retryable,
    ThrottledError,
    TLSError,
    TransientHTTPError,
)
from pipeline.http_stats import HttpStats

__all__ = ["MB", "HttpClient", "Response", "tls_context"]

T = TypeVar("T")

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
AUTH_STATUSES = frozenset({401, 403})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 10
MB = 2**20
"""Bytes in one MB of ``max_response_mb``."""
READ_CHUNK = 2**16


class Response(msgspec.Struct, frozen=True):
    """A finished response with its whole body read."""

    status: int
    headers: Mapping[str, str]
    body: bytes


def tls_context(ca_bundle: str | None, *, key: str) -> ssl.SSLContext | None:
    """The TLS context to verify servers with: the system's CAs, plus ``ca_bundle`` when given.

    Raises:
        ConfigError: the bundle cannot be read (``key`` names the setting).
    """
    if ca_bundle is None:
        return None
    try:
        context = ssl.create_default_context()
        context.load_verify_locations(cafile=ca_bundle)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load CA bundle {ca_bundle}: {exc}", path=key) from exc
    return context


def _origin(url: URL) -> tuple[str, str | None, int | None]:
    return url.scheme.lower(), (url.host or "").lower() or None, url.port


def _origin_text(url: URL) -> str:
    return f"{url.scheme}://{url.host_port_subcomponent or ''}"


class HttpClient:
    """An aiohttp session with retries (backoff + jitter, ``Retry-After``), ``rate_per_second``
    and ``max_in_flight``; no answer is read past ``max_response_bytes`` once decoded.

    Redirects are followed only within the origin (scheme, host and port) and only for a GET:
    the client's headers (tokens, the ``client_id``/``client_secret`` pair) and a request's
    body (a token form) never reach another origin, and a POST is never sent again.

    A 429 also pauses every request of this client until its ``Retry-After`` has passed, so a
    throttled target sees the whole client slow down, not just the one worker. A
    ``Retry-After`` longer than ``retry.max_seconds`` stops the client: that request and
    every later one raise :class:`~pipeline.errors.ThrottledError` without being sent.

    ``clock`` is the time the rate limit, the backoff and the pauses read and wait on: the
    event loop's (:data:`~pipeline.clock.SYSTEM_CLOCK`) unless a test brings its own.
    """

    def __init__(
        self,
        *,
        timeout_seconds: float,
        retry: RetrySettings,
        max_in_flight: int,
        rate_per_second: float | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_MB * MB,
        headers: Mapping[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        seed: int | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._clock = clock
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._retry = retry
        self._in_flight = anyio.Semaphore(max_in_flight)
        self._limiter = (
            RateLimiter(*limiter_shape(rate_per_second), clock=clock) if rate_per_second else None
        )
        self._headers = dict(headers or {})
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._max_in_flight = max_in_flight
        self._max_response_bytes = max_response_bytes
        self._rand = random.Random(seed)
        self._paused_until = 0.0
        self._throttled: ThrottledError | None = None
        self._session: aiohttp.ClientSession | None = None
        self.stats = HttpStats()

    async def __aenter__(self) -> Self:
        connector = aiohttp.TCPConnector(limit=self._max_in_flight, ssl=self._ssl)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=self._timeout, headers=self._headers
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _once(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        body: bytes | None,
        headers: Mapping[str, str] | None,
    ) -> Response:
        assert self._session is not None, "use HttpClient as an async context manager"
        self._raise_if_throttled()
        wait = self._paused_until - self._clock.now()
        if wait > 0:
            await self._clock.sleep(wait)
        if self._limiter is not None:
            await self._limiter.acquire()
        async with self._in_flight:
            stats = self.stats
            stats.requests += 1
            stats.in_flight += 1
            stats.peak_in_flight = max(stats.peak_in_flight, stats.in_flight)
            started = self._clock.now()
            try:
                async with self._session.request(
                    method, url, params=params, data=body, headers=headers, allow_redirects=False
                ) as resp:
                    payload = await self._read(method, url, resp)
                    return Response(resp.status, dict(resp.headers), payload)
            except TimeoutError as exc:
                raise TransientHTTPError(method, url, reason="timed out") from exc
            except aiohttp.ClientConnectorCertificateError as exc:
                raise TLSError(url, type(exc.certificate_error).__name__) from exc
            except aiohttp.ClientError as exc:
                reason = f"connection failed ({type(exc).__name__})"
                raise TransientHTTPError(method, url, reason=reason) from exc
            finally:
                stats.in_flight -= 1
                stats.observe(self._clock.now() - started)

    async def _read(self, method: str, url: str, resp: aiohttp.ClientResponse) -> bytes:
        # Chunk by chunk, counted as decoded: a small gzip body may inflate a thousandfold.
        limit = self._max_response_bytes
        chunks: list[bytes] = []
        size = 0
        while chunk := await resp.content.read(READ_CHUNK):
            size += len(chunk)
            if size > limit:
                raise ResponseTooLargeError(method, url, limit)
            chunks.append(chunk)
        return b"".join(chunks)

    async def _follow(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        body: bytes | None,
        headers: Mapping[str, str] | None,
    ) -> Response:
        """One attempt: the request, then the redirects that stay within its origin (GET only).

        Raises:
            RedirectError: a redirect to another origin, of a request other than a GET, or
                more than ``MAX_REDIRECTS`` of them.
        """
        hops = 0
        while True:
            response = await self._once(method, url, params, body, headers)
            location = response.headers.get("Location")
            if response.status not in REDIRECT_STATUSES or location is None:
                return response
            here = URL(url)
            there = here.join(URL(location))
            if _origin(there) != _origin(here):
                detail = (
                    f"it leads to another origin ({_origin_text(here)} -> "
                    f"{_origin_text(there)}), where no credential is sent"
                )
                raise RedirectError(method, url, response.status, detail)
            if method != "GET":
                detail = f"only a GET follows one, a {method} is not sent again"
                raise RedirectError(method, url, response.status, detail)
            hops += 1
            if hops > MAX_REDIRECTS:
                detail = f"more than {MAX_REDIRECTS} in a row"
                raise RedirectError(method, url, response.status, detail)
            url, params = str(there), None

    def _check(self, method: str, url: str, response: Response) -> Response:
        status = response.status
        if status < 400:
            return response
        if status in RETRY_STATUSES:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            raise TransientHTTPError(method, url, status=status, retry_after=retry_after)
        error = AuthError if status in AUTH_STATUSES else HTTPStatusError
        raise error(method, url, status)

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        accept: frozenset[int] = frozenset(),
    ) -> Response:
        """Send a request, retrying what may pass on retry.

        Statuses in ``accept`` are returned instead of raised (a 400 whose body the caller reads).

        Raises:
            TransientHTTPError: still failing after ``retry.max_attempts`` attempts.
            RedirectError: a redirect that is not followed (see the class).
            ThrottledError: the server asked for a pause longer than ``retry.max_seconds``.
            ResponseTooLargeError: the answer is larger than ``max_response_bytes``.
            AuthError: 401 or 403.
            HTTPStatusError: any other 4xx.
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._follow(method, url, params, body, headers)
                if response.status in accept:
                    return response
                return self._check(method, url, response)
            except Retryable as exc:
                self._refuse_long_pause(exc)
                if attempt >= self._retry.max_attempts:
                    self.stats.failures += 1
                    raise
                await self.pause_for(exc, attempt)

    async def request_decoded(
        self,
        call: Callable[[], Awaitable[Response]],
        decode: Callable[[bytes], T],
        *,
        method: str,
        url: str,
    ) -> T:
        """Run ``call`` (one request, retried as :meth:`request` retries) and decode its body;
        a cut or garbled body is asked for again, within the same ``max_attempts``.

        Raises:
            DecodeError: the body stayed unreadable through every attempt.
        """
        attempt = 0
        while True:
            attempt += 1
            response = await call()
            try:
                return decode(response.body)
            except (msgspec.ValidationError, msgspec.DecodeError, DecodeError) as exc:
                detail = exc.detail if isinstance(exc, DecodeError) else str(exc)
                if attempt >= self._retry.max_attempts:
                    raise DecodeError(url, detail) from exc
                unreadable = TransientHTTPError(method, url, reason=detail)
                await self.pause_for(unreadable, attempt)

    async def pause_for(self, exc: Retryable, attempt: int) -> None:
        """Wait before the next attempt; a 429 pauses the whole client.

        Raises:
            ThrottledError: ``exc`` asks for a pause longer than ``retry.max_seconds``.
        """
        self._refuse_long_pause(exc)
        self.stats.retries += 1
        delay = backoff_delay(attempt, self._retry, retry_after=exc.retry_after, rand=self._rand)
        if exc.status == 429:
            self.stats.throttled += 1
            self._paused_until = max(self._paused_until, self._clock.now() + delay)
        await self._clock.sleep(delay)

    def _refuse_long_pause(self, exc: Retryable) -> None:
        # Waiting max_seconds instead would ask again long before the server said to.
        if exc.retry_after is None or exc.retry_after <= self._retry.max_seconds:
            return
        if self._throttled is None:
            self.stats.throttled += 1
            self._throttled = ThrottledError(
                exc.method, exc.url, exc.status, exc.retry_after, self._retry.max_seconds
            )
        self._raise_if_throttled(exc)

    def _raise_if_throttled(self, cause: BaseException | None = None) -> None:
        first = self._throttled
        if first is not None:
            raise ThrottledError(
                first.method, first.url, first.status, first.retry_after, first.max_seconds
            ) from cause
