"""The contract every target implements, and helpers shared by targets."""

from __future__ import annotations

import re
from collections.abc import Sequence
from types import TracebackType
from typing import Protocol, Self

from pipeline.http import HttpStats
from pipeline.records import Ack, AckKind, Customer, Item

__all__ = ["Target", "confirmed", "dead", "redact"]

_EMAIL = re.compile(r"[^\s@'\"<>(),;:]+@[^\s@'\"<>(),;:]+")
_DIGITS = re.compile(r"\+?\d[\d ()/-]{6,}\d")
MAX_REASON = 500


def redact(text: str) -> str:
    """A server's message made safe for logs and dead letters: emails and phone-like runs masked."""
    masked = _DIGITS.sub("<number>", _EMAIL.sub("<email>", text))
    return masked[:MAX_REASON]


def confirmed(target: str, item: Item) -> Ack:
    """The ack of an item the target confirmed: an update when it held an earlier version."""
    kind: AckKind = "updated" if item.known else "created"
    return Ack(target, item.customer_id, kind, hash=item.hash, offset=item.offset, ref=item.ref)


def dead(target: str, item: Item, reason: str) -> Ack:
    """The ack of an item the target refused for good, or could not be written this pass."""
    return Ack(target, item.customer_id, "dead", reason=reason, offset=item.offset)


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
