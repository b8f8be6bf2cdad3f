"""Offset paging as a small state machine (pure): which offsets to ask for, and when to stop.

MAN answers ``GET ?limit=L&offset=O`` with at most ``L`` records. A page shorter than ``L``
(or empty) is the last one; ``total``, when the envelope has it, is only a hint. Several pages
may be in flight, so offsets are planned ahead and pages may come back out of order; the
paginator releases them in offset order.
"""

from __future__ import annotations

__all__ = ["OffsetPaging"]


class OffsetPaging:
    """Plans offsets ``start, start+L, start+2L, ...`` until a short page ends the read.

    Example:
        >>> p = OffsetPaging(limit=10)
        >>> p.plan(), p.plan()
        (0, 10)
        >>> p.settle(0, 10), p.settle(10, 4), p.done
        (True, True, True)
    """

    def __init__(self, limit: int, start: int = 0, overlap: int = 0) -> None:
        if limit <= 0:
            raise ValueError("limit must be positive")
        if start < 0:
            raise ValueError("start must not be negative")
        if not 0 <= overlap < limit:
            raise ValueError("overlap must be at least 0 and less than limit")
        self.limit = limit
        self.start = start
        self.overlap = overlap
        self.step = limit - overlap
        """Each page starts ``overlap`` records before the end of the one before it: a record
        that moves down because others were deleted between two requests is still read."""
        self._next = start
        self.end: int | None = None
        """Offset one past the last record, once a short page has been seen."""

    @property
    def done(self) -> bool:
        """No more offsets to plan."""
        return self.end is not None and self._next >= self.end

    def plan(self) -> int | None:
        """The next offset to request, or None when the end is known and reached."""
        if self.end is not None and self._next >= self.end:
            return None
        offset = self._next
        self._next += self.step
        return offset

    def settle(self, offset: int, count: int) -> bool:
        """Record that the page at ``offset`` held ``count`` records.

        Returns whether the page is useful (it lies before the end); pages planned past the
        end before the short page came back are not.
        """
        if self.end is not None and offset >= self.end:
            return False
        if count < self.limit:
            self.end = offset + count
        return True
