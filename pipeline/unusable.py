"""A target that fails every request the same way from the start is unusable as configured.

Connection refused on every call, or a 404 because the base URL already holds the endpoint's
path: sending the rest of the pass would only dead-letter every record with the same reason.
:class:`FirstFailures` watches a target's first batches (pure, per batch); when the first
:data:`LIMIT` of them fail whole, every record for one reason, before any record got through,
it gives the message that stops the target for the pass. Its remaining records are left for
the next pass.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pipeline.records import Ack

__all__ = ["LIMIT", "FirstFailures"]

LIMIT = 3
"""Batches failed whole the same way, from the start, after which the target stops."""


class FirstFailures:
    """The verdict on a target's first batches: usable, or failing every record one way."""

    def __init__(self, target: str, limit: int = LIMIT) -> None:
        self.target = target
        self.limit = limit
        self._done = False  # a record got through, or the failures differed: watching ends
        self._reason: str | None = None
        self._batches = 0

    def observe(self, acks: Sequence[Ack]) -> str | None:
        """Take one batch's acks; return why the target must stop, once it must.

        A batch fails "the same way" when the request of every one of its records failed for
        one reason (the record's own id taken out of it: a URL may name the record)."""
        if self._done or not acks:
            return None
        if any(a.kind != "dead" or not a.request_failed for a in acks):
            self._done = True  # an answer came: the target is reachable as configured
            return None
        reasons = {_without_id(a.reason or "", a.customer_id) for a in acks}
        if len(reasons) != 1 or (self._reason is not None and reasons != {self._reason}):
            self._done = True
            return None
        self._reason = reasons.pop()
        self._batches += 1
        if self._batches < self.limit:
            return None
        self._done = True
        return (
            f"the first {self._batches} batches failed whole, every record the same way, "
            f"before any record got through: {self._reason}; is the target's configuration "
            "right (its URL, say)? It stops for this pass; its other records wait for the next"
        )


def _without_id(reason: str, customer_id: str) -> str:
    """``reason`` with the record's id, where it stands alone (a URL's segment), as ``<id>``."""
    return re.sub(rf"(?<![\w-]){re.escape(customer_id)}(?![\w-])", "<id>", reason)
