"""What every target is: a :class:`TargetSpec` (name, settings type, constructor) registered in
:mod:`pipeline.registry`, and a :class:`Target` the flow drives. :class:`HttpTarget` is the
life cycle the HTTP targets share: one client with the target's limits, the credentials on
every call (a refused token renewed once, in :meth:`HttpTarget.call`), and the one place that
tells a failed request from a failure of the whole target (:meth:`HttpTarget.failed`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, Protocol, Self, TypeVar

import msgspec

from pipeline.clock import SYSTEM_CLOCK, Clock
from pipeline.config import Secret, TargetSettings, secret
from pipeline.errors import AuthError, Fatal, PipelineError
from pipeline.http import MB, HttpClient, Response, tls_context
from pipeline.http_stats import HttpStats
from pipeline.records import Ack, Customer, Item
from pipeline.targets.acks import dead
from pipeline.targets.oauth import ClientCredentials

if TYPE_CHECKING:
    from aiohttp import web

    from pipeline.state.store import StateStore

__all__ = [
    "EmulatedData",
    "EmulatorSpec",
    "HttpTarget",
    "Target",
    "TargetContext",
    "TargetSpec",
]


@dataclass(frozen=True)
class TargetContext:
    """What the pipeline hands every target it builds: its name (the ``[targets.<name>]`` key,
    the label of its metrics), the state store (confirmed refs, ids a target allocates) and
    the clock its waits run on (the event loop's; a test's own in a test)."""

    name: str
    store: StateStore
    clock: Clock = SYSTEM_CLOCK

    def key(self, setting: str) -> str:
        """The configuration key of one of the target's settings, for error messages."""
        return f"targets.{self.name}.{setting}"


class Target(Protocol):
    """One destination of the pass.

    ``prepare`` maps customers to payloads and hashes them (no write); ``write`` sends a batch
    and returns one ack per item, having retried what is transient. ``write`` raises only for
    what stops the target as a whole (a :class:`~pipeline.errors.Fatal` error).
    """

    name: str
    batch_size: int
    max_in_flight: int
    deactivate_missing: bool
    max_deactivate_share: float

    @property
    def stats(self) -> HttpStats: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def prepare(self, customers: Sequence[Customer]) -> list[Item]: ...

    async def write(self, items: Sequence[Item]) -> list[Ack]: ...

    async def deactivate(self, customer_ids: Sequence[str]) -> list[str]:
        """Mark these customers inactive in the target (never delete them); return the ids
        that were, the others are tried again after the next complete pass."""
        ...


P = TypeVar("P", bound=msgspec.Struct)


class EmulatedData(NamedTuple):
    """What every emulator of one stack is made from: how many customers the source serves,
    and the seed of their data."""

    customers: int
    seed: int


@dataclass(frozen=True)
class EmulatorSpec(Generic[P]):
    """How the emulator stack (:mod:`pipeline.stack`) plays a system and points the pipeline
    at it. Credentials go by role (``token``, ``client_id``, ``client_secret``): the stack
    names a variable per role (``NORCE_CLIENT_ID``) and the section names it in the key
    ``<role>_env``.

    Args:
        plan: the Struct of the system's section of an emulator plan (``[norce]`` in
            ``--plan FILE``).
        default: the plan used when that section is not given.
        app: the emulator's aiohttp app, from its plan and the stack's data.
        credentials: what the emulator accepts, by role.
        section: the system's configuration section, from the emulator's URL, its plan,
            the variable named per credential role and a rate (requests per second of a
            sync-batch-sized call; None: no rate limit).
        system: the system's own name (its plan section, the stem of its variables) when it
            is not the name the stack knows it by.
    """

    plan: type[P]
    default: P
    app: Callable[[P, EmulatedData], web.Application]
    credentials: Callable[[P], dict[str, str]]
    section: Callable[[str, P, dict[str, str], float | None], dict[str, Any]]
    system: str | None = None


@dataclass(frozen=True)
class TargetSpec:
    """A target as the registry knows it.

    Args:
        name: its ``[targets.<name>]`` key.
        settings: the Struct its section decodes into (a :class:`TargetSettings`).
        build: makes the target from its decoded settings and the context.
        emulator: how the emulator stack plays this target (None: it has no emulator).
    """

    name: str
    settings: type[TargetSettings]
    build: Callable[[Any, TargetContext], Target]
    emulator: EmulatorSpec[Any] | None = None


class HttpTarget:
    """The life cycle every HTTP target shares.

    Args:
        settings: the target's section; its shared keys set the client's limits.
        context: name and state store.
        headers: sent on every request.
        token: a static bearer token; or ``credentials``, OAuth2 tokens fetched, cached and
            renewed (see :meth:`call`).
    """

    def __init__(
        self,
        settings: TargetSettings,
        context: TargetContext,
        headers: Mapping[str, str],
        *,
        token: Secret | None = None,
    ) -> None:
        self.name = context.name
        self.context = context
        self.batch_size = settings.batch_size
        self.max_in_flight = settings.max_in_flight
        self.deactivate_missing = settings.deactivate_missing
        self.max_deactivate_share = settings.max_deactivate_share
        all_headers = dict(headers)
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token.reveal()}"
        self._http = HttpClient(
            ssl_context=tls_context(settings.ca_bundle, key=context.key("ca_bundle")),
            timeout_seconds=settings.timeout_seconds,
            retry=settings.retry,
            max_in_flight=settings.max_in_flight,
            rate_per_second=settings.rate_per_second,
            max_response_bytes=settings.max_response_mb * MB,
            headers=all_headers,
            clock=context.clock,
        )
        self.tokens: ClientCredentials | None = None

    @property
    def stats(self) -> HttpStats:
        return self._http.stats

    async def __aenter__(self) -> Self:
        await self._http.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._http.__aexit__(exc_type, exc, tb)

    # Credentials -------------------------------------------------------------------------

    def client_credentials(
        self,
        *,
        token_url: str,
        client_id_env: str,
        client_secret_env: str,
        scope: str | None,
    ) -> None:
        """Use OAuth2 client credentials read from the environment variables named.

        Raises:
            ConfigError: a variable is not set, naming the key that names it.
        """
        client_id = secret(client_id_env, key=self.context.key("client_id_env"))
        client_secret = secret(client_secret_env, key=self.context.key("client_secret_env"))
        assert client_id is not None and client_secret is not None  # the names are required
        self.tokens = ClientCredentials(
            self._http,
            target=self.name,
            token_url=token_url,
            client_id=client_id,
            client_secret=client_secret,
            scope=scope,
        )

    def expired(self, response: Response) -> bool:
        """Whether a 401 says the token expired (then it is renewed once); any 401 by default."""
        return True

    async def call(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        params: dict[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        accept: frozenset[int] = frozenset(),
    ) -> Response:
        """One request with the target's credentials. With OAuth2 tokens, a 401 that
        :meth:`expired` recognises renews the shared token once and repeats the call.

        Raises:
            AuthError: the credentials were refused (the renewed token too).
            PipelineError: as :meth:`~pipeline.http.HttpClient.request`.
        """
        if self.tokens is None:
            return await self._http.request(
                method, url, params=params, body=body, headers=headers, accept=accept
            )
        for renewed in (False, True):
            token = await self.tokens.token()
            sent = {**(headers or {}), "Authorization": f"Bearer {token}"}
            response = await self._http.request(
                method, url, params=params, body=body, headers=sent, accept=accept | {401}
            )
            if response.status != 401:
                return response
            if renewed or not self.expired(response):
                break
            self.tokens.invalidate(token)  # unless another writer renewed it already
        raise AuthError(method, url, 401, "access token refused")

    # Failures ----------------------------------------------------------------------------

    def failed(self, items: Sequence[Item], what: str, exc: PipelineError) -> list[Ack]:
        """The acks of ``items`` whose request failed with ``exc``: dead letters sent again
        next pass (the one place that decides it). An error that stops the target as a whole
        (:class:`~pipeline.errors.Fatal`) is raised again instead: the flow stops the
        target for the pass and settles its records as skipped.
        """
        if isinstance(exc, Fatal):
            raise exc
        reason = f"{what}: {exc}"
        return [dead(self.name, item, reason, request_failed=True) for item in items]
