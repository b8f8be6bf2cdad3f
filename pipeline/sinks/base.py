"""The contract every target implements, and helpers shared by targets."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from types import TracebackType
from typing import Protocol, Self

import msgspec

from pipeline.config import RetrySettings, secret
from pipeline.http import MB, HttpClient, HttpStats, tls_context
from pipeline.records import Ack, AckKind, Customer, Item, personal_values
from pipeline.sinks.oauth import ClientCredentials
from pipeline.text import escape_controls

__all__ = [
    "HttpTarget",
    "HttpTargetSettings",
    "Target",
    "client_credentials",
    "confirmed",
    "dead",
    "mask_batch",
    "mask_personal",
    "redact",
]

_EMAIL = re.compile(r"[^\s@'\"<>(),;:]+@[^\s@'\"<>(),;:]+")
_DIGITS = re.compile(r"\+?\d[\d ()/-]{6,}\d")
_PHONE = re.compile(r"\+\d[\d ()/-]*\d")
"""An international number, even cut short."""
_OBJECT = re.compile(r"\{.*", re.DOTALL)
"""A JSON object quoted in a message (a row of the import), to its end: it is a record's."""
MAX_REASON = 500


def redact(text: str) -> str:
    """A server's message made safe for logs and dead letters: emails and phone-like runs
    masked, an object it quotes (a record, say) cut, control characters escaped."""
    cut = _OBJECT.sub("{…}", text)
    masked = _PHONE.sub("<number>", _DIGITS.sub("<number>", _EMAIL.sub("<email>", cut)))
    return escape_controls(masked)[:MAX_REASON]


def mask_batch(acks: Sequence[Ack], items: Sequence[Item]) -> list[Ack]:
    """``acks`` with the personal values of every record of the batch masked out of each
    dead letter's reason: a target's message about one record may quote another."""
    if all(a.kind != "dead" for a in acks):
        return list(acks)
    personal = tuple(v for i in items if i.customer for v in personal_values(i.customer))
    if not personal:
        return list(acks)
    return [
        msgspec.structs.replace(a, reason=mask_personal(a.reason, personal))
        if a.kind == "dead" and a.reason
        else a
        for a in acks
    ]


def mask_personal(text: str, personal: Sequence[str]) -> str:
    """``text`` without any of the ``personal`` values of the record it speaks of (a name, a
    street...), in any case, each as a whole word or phrase; control characters escaped."""
    if personal:
        text = _values(tuple(personal)).sub("<personal>", text)
    return escape_controls(text)[:MAX_REASON]


@functools.lru_cache(maxsize=256)
def _values(personal: tuple[str, ...]) -> re.Pattern[str]:
    """Any of the values, as a whole word or phrase, in any case."""
    longest = sorted({v.strip() for v in personal if v.strip()}, key=len, reverse=True)
    alternatives = "|".join(re.escape(v) for v in longest)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def confirmed(target: str, item: Item) -> Ack:
    """The ack of an item the target confirmed: an update when it held an earlier version."""
    kind: AckKind = "updated" if item.known else "created"
    return Ack(target, item.customer_id, kind, hash=item.hash, offset=item.offset, ref=item.ref)


def dead(
    target: str,
    item: Item,
    reason: str,
    offset: int | None = None,
    *,
    request_failed: bool = False,
) -> Ack:
    """The ack of an item the target refused for good, or could not be written this pass
    (``request_failed``: the request itself failed, see :class:`~pipeline.records.Ack`).
    Every dead letter of a target is made here: the record's own personal values are masked
    out of the reason, whatever words of the target it quotes."""
    where = item.offset if offset is None else offset
    personal = personal_values(item.customer) if item.customer is not None else ()
    text = mask_personal(reason, personal)
    return Ack(
        target, item.customer_id, "dead", reason=text, offset=where, request_failed=request_failed
    )


class HttpTargetSettings(Protocol):
    """The settings every HTTP target shares (``[targets.*]``)."""

    @property
    def batch_size(self) -> int: ...
    @property
    def max_in_flight(self) -> int: ...
    @property
    def rate_per_second(self) -> float | None: ...
    @property
    def timeout_seconds(self) -> float: ...
    @property
    def retry(self) -> RetrySettings: ...
    @property
    def ca_bundle(self) -> str | None: ...
    @property
    def max_response_mb(self) -> int: ...
    @property
    def deactivate_missing(self) -> bool: ...
    @property
    def max_deactivate_share(self) -> float: ...


class HttpTarget:
    """The life cycle every HTTP target shares: one client with the target's limits, its
    statistics, and the settings the flow reads (batch size, in flight, deactivation)."""

    name: str

    def __init__(self, settings: HttpTargetSettings, headers: dict[str, str]) -> None:
        self.batch_size = settings.batch_size
        self.max_in_flight = settings.max_in_flight
        self.deactivate_missing = settings.deactivate_missing
        self.max_deactivate_share = settings.max_deactivate_share
        self._http = HttpClient(
            ssl_context=tls_context(settings.ca_bundle, key=f"targets.{self.name}.ca_bundle"),
            timeout_seconds=settings.timeout_seconds,
            retry=settings.retry,
            max_in_flight=settings.max_in_flight,
            rate_per_second=settings.rate_per_second,
            max_response_bytes=settings.max_response_mb * MB,
            headers=headers,
        )

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


def client_credentials(
    target: HttpTarget,
    *,
    token_url: str,
    client_id_env: str,
    client_secret_env: str,
    scope: str | None,
) -> ClientCredentials:
    """The target's OAuth2 token, with credentials read from the environment variables named.

    Raises:
        ConfigError: a variable is not set.
    """
    client_id = secret(client_id_env, key=f"targets.{target.name}.client_id_env")
    client_secret = secret(client_secret_env, key=f"targets.{target.name}.client_secret_env")
    assert client_id is not None and client_secret is not None  # the names are required
    return ClientCredentials(
        target._http,
        target=target.name,
        token_url=token_url,
        client_id=client_id,
        client_secret=client_secret,
        scope=scope,
    )


class Target(Protocol):
    """One destination of the pass.

    ``prepare`` maps customers to payloads and hashes them (no write); ``write`` sends a batch
    and returns one ack per item, having retried what is transient. ``write`` raises only for
    what stops the target as a whole (an :class:`~pipeline.errors.AuthError`, say).
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
