"""Checkpoint arithmetic (pure): the source offset below which every target settled everything.

Pages reach each target in offset order. A page is settled in a target when each of its records
is confirmed, unchanged or dead-lettered there (a record skipped because its target stopped
never is: the checkpoint stays before it, and the next pass reads it again). The checkpoint is
the end of the longest run of settled pages from the start, in the slowest target: a pass
killed at any moment can restart its read there without losing a record.
"""

from __future__ import annotations

from collections import deque

__all__ = ["Checkpoint", "PageTracker"]


class PageTracker:
    """Settlement of pages in one target."""

    __slots__ = ("_last", "_outstanding", "_pages", "watermark")

    def __init__(self, start: int) -> None:
        self.watermark = start
        self._last = start - 1
        self._pages: deque[tuple[int, int]] = deque()  # (offset, end) in offset order
        self._outstanding: dict[int, int] = {}

    def opened(self, offset: int, end: int, records: int) -> None:
        """A page reached the target holding ``records`` records to settle."""
        # Pages may overlap (a page re-reads the end of the one before), never go back.
        if offset <= self._last:
            raise ValueError(f"page at offset {offset} opened twice or out of order")
        self._last = offset
        self._pages.append((offset, end))
        self._outstanding[offset] = records
        self._advance()

    def settle(self, offset: int, count: int = 1) -> None:
        """``count`` records of the page at ``offset`` are settled."""
        left = self._outstanding.get(offset)
        if left is None or left < count:
            raise ValueError(f"more records settled than page {offset} holds")
        self._outstanding[offset] = left - count
        self._advance()

    def _advance(self) -> None:
        while self._pages and self._outstanding[self._pages[0][0]] == 0:
            offset, end = self._pages.popleft()
            del self._outstanding[offset]
            self.watermark = end

    @property
    def pending(self) -> int:
        """Records opened and not settled yet."""
        return sum(self._outstanding.values())


class Checkpoint:
    """Page trackers of every target of a pass, and the offset they agree on."""

    def __init__(self, targets: list[str], start: int = 0) -> None:
        self.start = start
        self.trackers = {name: PageTracker(start) for name in targets}

    @property
    def offset(self) -> int:
        """Every record below this offset is settled in every target."""
        return min((t.watermark for t in self.trackers.values()), default=self.start)
