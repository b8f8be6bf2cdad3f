"""Pass-wide uniqueness: repeats of a customer_id are dropped, a reused email is refused (pure)."""

from __future__ import annotations

__all__ = ["PassDedupe"]


class PassDedupe:
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

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, customer_id: object) -> bool:
        """Whether the pass has seen ``customer_id`` (valid or not)."""
        return customer_id in self._ids
