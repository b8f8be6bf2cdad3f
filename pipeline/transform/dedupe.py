"""What a pass has seen (its ids and emails): repeats of a customer_id are dropped, a reused
email is refused. :class:`Seen` is the contract, :class:`SeenInMemory` keeps it in memory
(pure), :class:`~pipeline.state.seen.SeenOnDisk` in a temporary file."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

__all__ = ["Seen", "SeenInMemory"]


class Seen(Protocol):
    """What the transform asks of the pass's memory of ids and emails.

    ``begin_page`` announces the ids and emails a page may claim, so that a store kept out of
    memory can look them up in one go; ``end_page`` makes the page's claims permanent.
    """

    def begin_page(self, ids: Sequence[str], emails: Sequence[str]) -> None: ...

    def seen_id(self, customer_id: str) -> bool: ...

    def email_owner(self, email_key: str, customer_id: str) -> str | None: ...

    def end_page(self) -> None: ...

    def missing(self, customer_ids: Iterable[str]) -> list[str]: ...


class SeenInMemory:
    """What one pass has seen so far.

    The first record with a ``customer_id`` wins; later copies (offset drift repeats records)
    are dropped. An email already held by another ``customer_id`` refuses the later record.
    """

    __slots__ = ("_emails", "_ids")

    def __init__(self) -> None:
        self._ids: set[str] = set()
        self._emails: dict[str, str] = {}

    def seen_id(self, customer_id: str) -> bool:
        """True when ``customer_id`` came before; otherwise remember it and return False."""
        if customer_id in self._ids:
            return True
        self._ids.add(customer_id)
        return False

    def email_owner(self, email_key: str, customer_id: str) -> str | None:
        """The other ``customer_id`` that holds this email, or None (and the email is claimed)."""
        owner = self._emails.setdefault(email_key, customer_id)
        return None if owner == customer_id else owner

    def begin_page(self, ids: Sequence[str], emails: Sequence[str]) -> None:
        """Nothing to load: everything is in memory."""

    def end_page(self) -> None:
        """Nothing to write: everything is in memory."""

    def missing(self, customer_ids: Iterable[str]) -> list[str]:
        """Those of ``customer_ids`` the pass has not seen."""
        return [c for c in customer_ids if c not in self._ids]

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, customer_id: object) -> bool:
        """Whether the pass has seen ``customer_id`` (valid or not)."""
        return customer_id in self._ids
