"""The read loop: pages in flight, released in offset order, the end confirmed before it counts.

:class:`~pipeline.sources.paging.Paging` decides what each page means; this module does the
I/O around it: keeps ``max_in_flight`` requests going, drops pages planned at a stride that
proved wrong, skips the records a page re-reads from the one before, and, when the paging
finds a candidate end, looks past it before believing it. A read that stops anywhere but at
a confirmed end raises :class:`~pipeline.errors.SourceError`: never a silent partial read.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable

import anyio
import msgspec
from anyio.streams.memory import MemoryObjectSendStream

from pipeline.errors import (
    DecodeError,
    HTTPStatusError,
    PipelineError,
    RedirectError,
    ResponseTooLargeError,
    SourceError,
    ThrottledError,
    TLSError,
    TransientHTTPError,
)
from pipeline.records import Page
from pipeline.sources.envelope import Answer
from pipeline.sources.paging import MAX_REOPEN, Paging, Verdict
from pipeline.urls import safe_url

__all__ = ["END_STATUSES", "READ_ERRORS", "Reader", "SourceProgress"]

log = logging.getLogger("pipeline.source")

END_STATUSES = frozenset({400, 404, 416})
"""Statuses a server may answer for a page past its last record; there, they mean the end."""

READ_ERRORS = (
    DecodeError,
    TransientHTTPError,
    HTTPStatusError,
    TLSError,
    RedirectError,
    ResponseTooLargeError,
    ThrottledError,
)
"""What reading one page may raise, each already retried where that made sense."""

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

Fetch = Callable[[int], Awaitable[Answer | None]]

Key = str | bytes
"""What tells two records apart: the customer id, or the bytes when it cannot be read."""


class SourceProgress(msgspec.Struct):
    """What the source has done in this pass."""

    pages: int = 0
    records: int = 0
    """Records sent on (re-reads of the page before not counted)."""
    next_offset: int = 0
    total: int | None = None
    """Records the source last announced (``total``), unless it proved too small."""
    page_size: int = 0
    """Records per page the server honours."""
    gaps: int = 0
    """Pages that did not begin with the records the page before ended with: more records
    than ``overlap`` moved between two requests, and some may have been skipped."""
    error: str | None = None


class _Slot:
    """One page request in flight."""

    __slots__ = ("answer", "done", "error", "generation", "offset", "scope")

    def __init__(self, offset: int, generation: int) -> None:
        self.offset = offset
        self.generation = generation
        self.answer: Answer | None = None
        self.error: PipelineError | None = None
        self.done = anyio.Event()
        self.scope = anyio.CancelScope()


def _end_like(error: PipelineError | None) -> bool:
    """An error answer that may mean "no records here" (None: an empty body)."""
    return error is None or (isinstance(error, HTTPStatusError) and error.status in END_STATUSES)


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


class Reader:
    """One pass's read: ``fetch`` a page by offset, ``paging`` says what the pages mean.

    Args:
        progress: updated as pages go out (pages, records, gaps), for the report and metrics.
        url: named in errors, as :func:`~pipeline.urls.safe_url` shows it.
        stalled: the error for a server that ignores the offset (it names offset or page).
    """

    def __init__(
        self,
        fetch: Fetch,
        paging: Paging,
        progress: SourceProgress,
        *,
        max_in_flight: int,
        url: str,
        stalled: Callable[[int], SourceError],
        key: Callable[[msgspec.Raw], Key] = bytes,
    ) -> None:
        self.fetch = fetch
        self.paging = paging
        self.progress = progress
        self.max_in_flight = max_in_flight
        self.url = safe_url(url)
        self.stalled = stalled
        self.key = key
        self._last_label = paging.start - 1
        self._recent: deque[set[Key]] = deque(maxlen=RECENT_PAGES)
        self._previous: set[Key] = set()
        self._previous_end = paging.start
        self._first: set[Key] | None = None
        self._same_pages = 0
        self._same_records = 0
        self._unread_pages = 0
        self._last_page: set[Key] = set()  # the last page answered, delivered or not

    async def _fill(self, slot: _Slot) -> None:
        with slot.scope:
            try:
                slot.answer = await self.fetch(slot.offset)
            except READ_ERRORS as exc:
                slot.error = exc  # judged in offset order: it may be the end
            slot.done.set()

    def _records(self, slot: _Slot) -> tuple[list[msgspec.Raw], PipelineError | None]:
        """The page's records, or none and the error answer that may mean the end.

        Raises:
            SourceError: the page failed where it cannot be the end; names URL, status, offset.
        """
        error, answer = slot.error, slot.answer
        if error is None and answer is not None:
            return answer.records, None
        if _end_like(error) and self.paging.may_end_at(slot.offset):
            return [], error
        raise self._failure(slot.offset, error)

    def _failure(self, offset: int, error: PipelineError | None) -> SourceError:
        if error is None:
            return SourceError(f"GET {self.url} answered an empty body (offset {offset})")
        return SourceError(f"{error} (offset {offset})")

    def _known(self, key: Key) -> bool:
        return any(key in page for page in self._recent)

    async def read(self, out: MemoryObjectSendStream[Page]) -> None:
        """Send every page to ``out`` in offset order and return at the confirmed end.

        Raises:
            SourceError: a page failed, the server ignores the offset, or its end is not one.
        """
        paging = self.paging
        async with anyio.create_task_group() as tg:
            slots: deque[_Slot] = deque()
            while True:
                # Keep max_in_flight pages asked for; release them in offset order.
                while len(slots) < self.max_in_flight:
                    offset = paging.plan()
                    if offset is None:
                        break
                    slot = _Slot(offset, paging.generation)
                    slots.append(slot)
                    tg.start_soon(self._fill, slot)
                if not slots:  # only the end stops planning: anything else is a bug here
                    raise SourceError(f"the read stopped before the end (at {paging.reach})")
                slot = slots.popleft()
                await slot.done.wait()
                generation = paging.generation
                verdict, records, keys, error = self._judge(slot)
                if verdict is Verdict.STALE:
                    continue
                if paging.generation != generation:  # planned at the wrong stride: ask again
                    for stale in slots:
                        stale.scope.cancel()
                    slots.clear()
                await self._deliver(slot.offset, records, keys, out)
                if verdict is Verdict.LAST:
                    if await self._confirmed(slot.offset, error, slots):
                        tg.cancel_scope.cancel()
                        return
                    for stale in slots:
                        stale.scope.cancel()
                    slots.clear()

    def _judge(
        self, slot: _Slot
    ) -> tuple[Verdict, list[msgspec.Raw], list[Key], PipelineError | None]:
        paging = self.paging
        records, error = self._records(slot)
        keys = [self.key(r) for r in records]
        page = set(keys)
        adopted = paging.adopted
        # An offset-blind server serves its first page again and again (a field such as a
        # timestamp may change: records are told apart by their ids); two equal neighbours
        # alone may be a run of repeated rows at a tiny page size.
        repeated = bool(page) and page == self._previous == self._first
        new = self._first is None or not all(map(self._known, keys))
        stale = self._stale(page, repeated=repeated)
        count = 0 if stale else len(records)
        total = slot.answer.total if slot.answer is not None else None
        verdict = paging.judge(slot.offset, count, total=total, repeated=repeated, new=new)
        if verdict is Verdict.STALLED:
            raise self.stalled(slot.offset)
        if self._first is None and verdict is not Verdict.STALE:
            self._first = page
        if not new:
            self._unread_pages += 1
            if self._unread_pages >= MAX_UNREAD_PAGES:
                raise SourceError(
                    f"GET {self.url} answered {MAX_UNREAD_PAGES} pages in a row with no record "
                    f"the pages before did not hold (offset {slot.offset}): its paging does not "
                    "move on, and the pass stops rather than read it forever"
                )
        else:
            self._unread_pages = 0
        if paging.adopted and not adopted:
            log.warning(
                "the source answers fewer records per page than asked: following it",
                extra={"asked": paging.asked, "page_size": paging.stride},
            )
        # A page with nothing new holds only records the last pages sent on: not again.
        return verdict, (records if new else []), (keys if new else []), error

    def _stale(self, page: set[Key], *, repeated: bool) -> bool:
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

    async def _confirmed(
        self, offset: int, error: PipelineError | None, ahead: deque[_Slot]
    ) -> bool:
        """Look past the candidate end, first at the pages already asked for; False (and the
        paging reopened) when records are there and the read should go on.

        Raises:
            SourceError: records past an empty page or an error answer (a hole in the source),
                or an end that keeps proving wrong.
        """
        paging = self.paging
        by_total = paging.end_by_total
        found = await self._found_ahead(ahead)
        if found is not None:
            if not by_total:
                raise self._hole(offset, found, error)
        else:
            for i, probe in enumerate(paging.probes(offset)):
                if await self._has_new(probe):
                    if not by_total and i > 0:  # nothing here, asked twice, records after it
                        raise self._hole(offset, probe, error)
                    found = probe
                    break
        if found is None:
            return True
        if paging.reopened + 1 >= MAX_REOPEN:
            raise SourceError(
                f"GET {self.url}: records keep turning up past the end of the data "
                f"(offset {found}); the pass stops rather than take a moving end"
            )
        log.warning(
            "records past the end the source gave: reading on",
            extra={"end": paging.end, "found_at": found, "by_total": by_total},
        )
        paging.reopen()
        return False

    async def _found_ahead(self, ahead: deque[_Slot]) -> int | None:
        """The offset of the first page already asked for past the end that holds a record
        not read; None when none does (their errors say nothing here)."""
        for slot in ahead:
            await slot.done.wait()
            if slot.answer is not None and any(
                not self._known(self.key(r)) for r in slot.answer.records
            ):
                return slot.offset
        return None

    def _hole(self, offset: int, probe: int, error: PipelineError | None) -> SourceError:
        what = str(error) if error is not None else f"GET {self.url} answered no records"
        return SourceError(
            f"{what} (offset {offset}), but records follow at offset {probe}: the pass stops "
            "so that nothing after it is taken as gone"
        )

    async def _has_new(self, offset: int) -> bool:
        """Whether the page at ``offset`` holds a record not read in the last pages."""
        try:
            answer = await self.fetch(offset)
        except READ_ERRORS as exc:
            if _end_like(exc):
                return False
            raise self._failure(offset, exc) from exc
        if answer is None:
            return False
        keys = {self.key(r) for r in answer.records}
        if keys == self._first:  # a server that starts again from its first page past the end
            return False
        return any(not self._known(key) for key in keys)

    async def _deliver(
        self,
        offset: int,
        records: list[msgspec.Raw],
        keys: list[Key],
        out: MemoryObjectSendStream[Page],
    ) -> None:
        previous = self._previous
        skip = _repeated_head(previous, keys)
        progress = self.progress
        began_inside = bool(previous) and offset < self._previous_end
        expected = self._previous_end - offset  # records of the page before it should re-read
        # None of them matched: more than the overlap were deleted, and records may have been
        # passed over. More than them matched: records were inserted or moved behind the read,
        # and one that moved there from ahead of it was passed over. Either way, say so.
        moved = skip == 0 or skip > expected
        if records and self.paging.overlap and began_inside and moved:
            progress.gaps += 1
            if progress.gaps == 1:
                log.warning(
                    "records moved at the source between two page requests: some may have "
                    "been passed over, so no deactivation follows this pass",
                    extra={"offset": offset},
                )
        # Beyond the overlap, records the last pages held are not sent again either (a record
        # inserted mid-page pushes the rest of the overlap down): the repeats that reach the
        # transform are those of records read long before, a sign of a source out of order.
        fresh = [r for r, k in zip(records[skip:], keys[skip:], strict=True) if not self._known(k)]
        if fresh:
            # Pages reach the checkpoint in strictly rising offsets; a source that moved
            # records between two requests can make a page begin where the last one did.
            label = max(offset + skip, self._last_label + 1)
            self._last_label = label
            await out.send(Page(label, fresh))
            progress.pages += 1
            progress.records += len(fresh)
        if records:
            page = set(keys)
            self._recent.append(page)
            self._previous = page
            self._previous_end = offset + len(records)
        progress.next_offset = max(progress.next_offset, offset + len(records))
