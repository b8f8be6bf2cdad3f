"""Paging as a small state machine (pure): which offsets to ask for, and when the read ends.

MAN's interface document (MANPINT002) gives ``limit`` and ``offset`` and leaves the page-size
cap, the envelope and the end of data to be determined, so nothing here trusts one answer
alone:

* **The end** is an empty page, or the ``total`` of the answer once the read reaches it, and
  either is only a candidate: the source confirms it by looking past it (:meth:`Paging.probes`)
  and, when records are found there, the read goes on (:meth:`Paging.reopen`) or fails. A
  short page alone is never the end: a server that caps ``limit`` answers short pages all the
  way through.
* **The page size the server honours** is learnt from the first page: when it holds fewer
  records than asked, the read goes on at that size. Pages already planned at the wrong stride
  are planned again (:attr:`Paging.generation` changes), nothing is skipped. A short page later
  on re-plans the read from where it ended, for the same reason.
* **Pages that repeat the first page**, record for record, :data:`STALL_PAGES` times in a row,
  mean the server ignores the offset: the read stops with :attr:`Verdict.STALLED` instead of
  looping, and no ``total`` ends it early meanwhile. (One such page may be a run of repeated
  rows at a tiny page size; repeats are dropped downstream.)
* **An error answer that may mean the end** (404, 400, 416, an empty body) is a candidate end
  like an empty page, except on the first page and below an announced total
  (:meth:`Paging.may_end_at`), where it is a failure.

Several pages are in flight; they are judged here in offset order.
"""

from __future__ import annotations

import enum

__all__ = ["MAX_REOPEN", "STALL_PAGES", "STALL_RECORDS", "Paging", "Verdict"]

STALL_PAGES = 3
STALL_RECORDS = 30
"""Pages in a row equal to the first one, at new offsets, and records in them, after which the
offset is taken as ignored (at a page size of one, three equal rows are just repeats)."""

MAX_REOPEN = 3
"""Ends found wrong (records past them) after which the source is not trusted to have one."""


class Verdict(enum.Enum):
    """What to do with a page once it is judged."""

    USE = "use"
    """Deliver its records; the read goes on."""
    LAST = "last"
    """Deliver its records (if any); the read ends with it, once the end is confirmed."""
    STALE = "stale"
    """Planned before a re-plan or past the end: drop it unread."""
    STALLED = "stalled"
    """It repeats the read's first page at a new offset: the server ignores the offset."""


class Paging:
    """Plans offsets ``start, start+step, ...`` and learns the end and the page size.

    Args:
        limit: records asked for per page.
        start: offset of the first page (a resumed read).
        overlap: records each page re-reads from the end of the one before, so that deletions
            between two requests skip nothing (offset paging only; page numbers cannot overlap).
        by_page: the server pages by page number; offsets stay multiples of the page size.

    Example:
        >>> p = Paging(limit=10)
        >>> p.plan(), p.plan()
        (0, 10)
        >>> p.judge(0, 10), p.judge(10, 4), p.plan()
        (<Verdict.USE: 'use'>, <Verdict.USE: 'use'>, 14)
        >>> p.judge(14, 0), p.done
        (<Verdict.LAST: 'last'>, True)
    """

    def __init__(
        self, limit: int, start: int = 0, overlap: int = 0, *, by_page: bool = False
    ) -> None:
        if limit <= 0:
            raise ValueError("limit must be positive")
        if start < 0:
            raise ValueError("start must not be negative")
        if not 0 <= overlap < limit:
            raise ValueError("overlap must be at least 0 and less than limit")
        if by_page and (overlap or start % limit):
            raise ValueError("page-number paging has no overlap and starts on a page")
        self.asked = limit
        self.stride = limit
        """Records per page the server honours (``asked`` until a first short page says less)."""
        self.start = start
        self.overlap = overlap
        self._overlap_asked = overlap
        self.by_page = by_page
        self.generation = 0
        """Changes whenever the offsets planned so far are abandoned and planned again."""
        self.end: int | None = None
        """Offset one past the last record, once known."""
        self.total: int | None = None
        """Records the server says it holds (``total`` of its latest answer), when trusted."""
        self.total_ignored = False
        """A page reached beyond the announced total: the total is not trusted any more."""
        self.reach = start
        """Offset one past the last record read so far."""
        self.adopted = False
        """The first page showed a smaller page size than asked, and the read follows it."""
        self.end_by_total = False
        """The candidate end is the announced total (else an empty page at :attr:`end`)."""
        self.reopened = 0
        """Candidate ends that proved wrong."""
        self._suspect = 0
        self._suspect_records = 0
        self._stale = 0
        self._judged = 0
        self._next = start

    @property
    def step(self) -> int:
        return self.stride - self.overlap

    @property
    def done(self) -> bool:
        """No more offsets to plan."""
        return self.end is not None

    def page_number(self, offset: int, first_page: int) -> int:
        """The page number of ``offset`` for page-number paging."""
        return offset // self.stride + first_page

    def plan(self) -> int | None:
        """The next offset to request, or None when the end is known."""
        if self.end is not None:
            return None
        if (
            self.total is not None
            and self._next >= self.total
            and not (self._suspect or self._stale)
        ):
            return None  # nothing planned past the announced end; the last page ends the read
        offset = self._next
        self._next += self.step
        return offset

    def may_end_at(self, offset: int) -> bool:
        """Whether an error answer (404, 400, 416, an empty body) for the page at ``offset`` may
        mean the end: not for the first page of the source, and not below an announced total."""
        if offset == 0:
            return False  # a resumed read may find its checkpoint at the end, not a new one
        return self.total is None or offset >= self.total

    def probes(self, offset: int) -> list[int]:
        """Where to look to confirm the candidate end the page at ``offset`` gave.

        Past a total: the next page. Past an empty page: the same page again (it may have been
        a passing glitch), then the very next record and the next page (the next page, by page
        number): records there mean a hole, not the end.
        """
        assert self.end is not None, "no candidate end"
        if self.end_by_total:
            return [offset + self.stride if self.by_page else self.end]
        if self.by_page:
            return [offset, offset + self.stride]
        return [offset, offset + 1, offset + self.stride]

    def reopen(self) -> None:
        """Records were found past the candidate end: read on from it. A total that proved
        too small is not trusted any more; an empty page is asked for again."""
        assert self.end is not None, "no candidate end"
        if self.end_by_total:
            self.total, self.total_ignored = None, True
        self._next = self.end - (self.overlap if self.end_by_total else 0)
        self.end = None
        self.end_by_total = False
        self.reopened += 1
        self.generation += 1

    def judge(
        self,
        offset: int,
        count: int,
        *,
        total: int | None = None,
        repeated: bool = False,
        new: bool = True,
    ) -> Verdict:
        """Judge the page at ``offset``, which held ``count`` records: use it, end the read there,
        or ask for it again (the :class:`Verdict`).

        Args:
            total: the record count the answer announced, if any.
            repeated: the page holds exactly the records of the page before, in order, and
                they are those of the read's first page.
            new: the page holds a record the last pages did not; a page without one neither
                moves the read's reach nor speaks against the total.
        """
        if self.end is not None and offset >= self.end:
            return Verdict.STALE
        first = self._judged == 0
        self._judged += 1
        self._note_total(total)
        reach = offset + count
        if count == 0:
            self.end = max(offset, self.start)
            return Verdict.LAST
        if not first and reach <= self.reach:
            # Nothing beyond what was read (the overlap re-read, at the end or on a short
            # page): ask again exactly where the read stands; an empty page there is the end.
            self._next = self.reach
            self.generation += 1
            return Verdict.USE
        if repeated and not first:
            self._suspect += 1
            self._suspect_records += count
            if self._suspect >= STALL_PAGES and self._suspect_records >= STALL_RECORDS:
                return Verdict.STALLED
        else:
            self._suspect = self._suspect_records = 0
        self._stale = self._stale + 1 if not (new or first) else 0
        if not self._stale:
            self.reach = reach
        if self.total is not None and not (self._suspect or self._stale):
            if reach == self.total:
                self.end, self.end_by_total = reach, True
                return Verdict.LAST
            if reach > self.total:
                self.total, self.total_ignored = None, True
        if count < self.stride:
            self._short(offset, count, first=first)
        elif count > self.stride and self.adopted and not self.by_page:
            # The first page was short for another reason: follow the larger size again.
            self.stride = min(count, self.asked)
            self.overlap = min(self._overlap_asked, self.stride // 4)
            self._next = max(reach - self.overlap, offset + 1)
            self.generation += 1
        return Verdict.USE

    def _note_total(self, total: int | None) -> None:
        if total is None or self.total_ignored or total < 0:
            return
        if total < self.reach:
            self.total, self.total_ignored = None, True
            return
        self.total = total

    def _short(self, offset: int, count: int, *, first: bool) -> None:
        """A page held fewer records than the stride and the read goes on: plan again from
        where it ended (the pages planned after it would leave a gap)."""
        reach = offset + count
        if first and count < self.asked:
            self.stride = count
            # A quarter of a page at most: a server that serves 10 per page is not asked
            # ten times per record.
            self.overlap = min(self.overlap, count // 4)
            self.adopted = True
        elif self.by_page:
            return  # page numbers cannot start mid-page; the next page is already planned
        self._next = max(reach - self.overlap, offset + 1)  # never back before this page
        self.generation += 1
