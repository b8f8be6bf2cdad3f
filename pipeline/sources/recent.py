"""What the last pages of a read held: which records are new, which a page re-reads from the
one before (the overlap, or records that moved at the source), and runs of pages that bring
nothing new or repeat the page before.

Records are told apart by their keys (:data:`~pipeline.sources.slots.Key`). The read loop
(:mod:`pipeline.sources.reader`) asks; the decisions of what a page means for the paging stay
with :class:`~pipeline.sources.paging.Paging`.
"""

from __future__ import annotations

from collections import deque

import msgspec

from pipeline.sources.slots import Key

__all__ = ["MAX_UNREAD_PAGES", "RECENT_PAGES", "STALE_PAGES", "STALE_RECORDS", "RecentPages"]

RECENT_PAGES = 3
"""Pages whose records are remembered to tell a page with nothing new from one with records."""

MAX_UNREAD_PAGES = 20
"""Pages in a row that bring no record the pages before did not hold, after which the source's
paging is taken as broken (one that wraps around, or shuffles its last pages forever)."""

STALE_PAGES = 3
STALE_RECORDS = 100
"""Pages in a row, and records in them, that repeat the page before exactly, before the read
takes them for the end: a server that answers its last page for any offset past it would
otherwise be read forever. (When they repeat the first page, the server ignores the offset:
that stops the pass, see :data:`~pipeline.sources.paging.STALL_PAGES`.) A few equal pages at
a tiny page size may be repeated rows; they are dropped downstream."""


class RecentPages:
    """The keys of the last pages read from offset ``start`` on, and the runs they make."""

    def __init__(self, start: int) -> None:
        self.first: set[Key] | None = None
        """The keys of the first page (None until it is read)."""
        self._recent: deque[set[Key]] = deque(maxlen=RECENT_PAGES)
        self._previous: set[Key] = set()
        self._previous_end = start
        self._last_label = start - 1
        self._last_page: set[Key] = set()  # the last page answered, delivered or not
        self._same_pages = 0
        self._same_records = 0
        self._unread_pages = 0

    def known(self, key: Key) -> bool:
        """Whether one of the last pages held the record."""
        return any(key in page for page in self._recent)

    def new(self, keys: list[Key]) -> bool:
        """Whether a page brings a record the last pages did not hold (the first page does)."""
        return self.first is None or not all(map(self.known, keys))

    def repeats_first(self, page: set[Key]) -> bool:
        """Whether a page is the first one again, after the page before was too.

        An offset-blind server serves its first page again and again (a field such as a
        timestamp may change: records are told apart by their ids); two equal neighbours
        alone may be a run of repeated rows at a tiny page size.
        """
        return bool(page) and page == self._previous == self.first

    def stale(self, page: set[Key], *, repeated: bool) -> bool:
        """Whether the run of pages equal to the page before is long enough to be the end."""
        same = page == self._last_page
        if page:
            self._last_page = page
        if repeated or not page or not same:
            self._same_pages = self._same_records = 0
            return False
        self._same_pages += 1
        self._same_records += len(page)
        return self._same_pages >= STALE_PAGES and self._same_records >= STALE_RECORDS

    def unread(self, *, new: bool) -> bool:
        """Count a page in the run of those that bring nothing new; True when the run reaches
        :data:`MAX_UNREAD_PAGES`."""
        self._unread_pages = 0 if new else self._unread_pages + 1
        return self._unread_pages >= MAX_UNREAD_PAGES

    def fresh(
        self, offset: int, records: list[msgspec.Raw], keys: list[Key]
    ) -> tuple[int, list[msgspec.Raw], bool]:
        """The label of the page at ``offset``, its records not sent on yet, and whether records
        moved at the source since the page before (then some may have been passed over).

        The page is remembered with :meth:`remember` once sent on.
        """
        skip = _repeated_head(self._previous, keys)
        began_inside = bool(self._previous) and offset < self._previous_end
        expected = self._previous_end - offset  # records of the page before it should re-read
        # None of them matched: more than the overlap were deleted, and records may have been
        # passed over. More than them matched: records were inserted or moved behind the read,
        # and one that moved there from ahead of it was passed over. Either way, say so.
        moved = began_inside and (skip == 0 or skip > expected)
        # Beyond the overlap, records the last pages held are not sent again either (a record
        # inserted mid-page pushes the rest of the overlap down): the repeats that reach the
        # transform are those of records read long before, a sign of a source out of order.
        fresh = [r for r, k in zip(records[skip:], keys[skip:], strict=True) if not self.known(k)]
        label = self._last_label
        if fresh:
            # Pages reach the checkpoint in strictly rising offsets; a source that moved
            # records between two requests can make a page begin where the last one did.
            label = self._last_label = max(offset + skip, self._last_label + 1)
        return label, fresh, moved

    def remember(self, offset: int, keys: list[Key]) -> None:
        """Keep the keys of the page at ``offset`` (nothing when it held no record)."""
        if keys:
            page = set(keys)
            self._recent.append(page)
            self._previous = page
            self._previous_end = offset + len(keys)


def _repeated_head(previous: set[Key], keys: list[Key]) -> int:
    """How many leading records the page before held (the overlap), by their keys.

    When nothing moved at the source that is the whole overlap; when records were deleted in
    between, fewer match, and what no longer matches goes on to the transform, where repeats
    of a ``customer_id`` are dropped.
    """
    count = 0
    for key in keys:
        if key not in previous:
            break
        count += 1
    return count
