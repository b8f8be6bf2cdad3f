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
from collections.abc import Callable

import anyio
import msgspec
from anyio.streams.memory import MemoryObjectSendStream

from pipeline.errors import PipelineError, SourceError
from pipeline.records import Page
from pipeline.sources.paging import MAX_REOPEN, Paging, Verdict
from pipeline.sources.recent import MAX_UNREAD_PAGES, RecentPages
from pipeline.sources.slots import (
    END_STATUSES,
    READ_ERRORS,
    Fetch,
    Key,
    Slot,
    SourceProgress,
    end_like,
)
from pipeline.urls import safe_url

__all__ = ["END_STATUSES", "READ_ERRORS", "Fetch", "Key", "Reader", "SourceProgress"]

log = logging.getLogger("pipeline.source")


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
        self.recent = RecentPages(paging.start)

    def _records(self, slot: Slot) -> tuple[list[msgspec.Raw], PipelineError | None]:
        """The page's records, or none and the error answer that may mean the end.

        Raises:
            SourceError: the page failed where it cannot be the end; names URL, status, offset.
        """
        error, answer = slot.error, slot.answer
        if error is None and answer is not None:
            return answer.records, None
        if end_like(error) and self.paging.may_end_at(slot.offset):
            return [], error
        raise self._failure(slot.offset, error)

    def _failure(self, offset: int, error: PipelineError | None) -> SourceError:
        if error is None:
            return SourceError(f"GET {self.url} answered an empty body (offset {offset})")
        return SourceError(f"{error} (offset {offset})")

    async def read(self, out: MemoryObjectSendStream[Page]) -> None:
        """Send every page to ``out`` in offset order and return at the confirmed end.

        Raises:
            SourceError: a page failed, the server ignores the offset, or its end is not one.
        """
        paging = self.paging
        async with anyio.create_task_group() as tg:
            slots: deque[Slot] = deque()
            while True:
                # Keep max_in_flight pages asked for; release them in offset order.
                while len(slots) < self.max_in_flight:
                    offset = paging.plan()
                    if offset is None:
                        break
                    slot = Slot(offset, paging.generation)
                    slots.append(slot)
                    tg.start_soon(slot.fill, self.fetch)
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
        self, slot: Slot
    ) -> tuple[Verdict, list[msgspec.Raw], list[Key], PipelineError | None]:
        paging, recent = self.paging, self.recent
        records, error = self._records(slot)
        keys = [self.key(r) for r in records]
        page = set(keys)
        adopted = paging.adopted
        repeated = recent.repeats_first(page)
        new = recent.new(keys)
        stale = recent.stale(page, repeated=repeated)
        count = 0 if stale else len(records)
        total = slot.answer.total if slot.answer is not None else None
        verdict = paging.judge(slot.offset, count, total=total, repeated=repeated, new=new)
        if verdict is Verdict.STALLED:
            raise self.stalled(slot.offset)
        if recent.first is None and verdict is not Verdict.STALE:
            recent.first = page
        if recent.unread(new=new):
            raise SourceError(
                f"GET {self.url} answered {MAX_UNREAD_PAGES} pages in a row with no record "
                f"the pages before did not hold (offset {slot.offset}): its paging does not "
                "move on, and the pass stops rather than read it forever"
            )
        if paging.adopted and not adopted:
            log.warning(
                "the source answers fewer records per page than asked: following it",
                extra={"asked": paging.asked, "page_size": paging.stride},
            )
        # A page with nothing new holds only records the last pages sent on: not again.
        return verdict, (records if new else []), (keys if new else []), error

    async def _confirmed(
        self, offset: int, error: PipelineError | None, ahead: deque[Slot]
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

    async def _found_ahead(self, ahead: deque[Slot]) -> int | None:
        """The offset of the first page already asked for past the end that holds a record
        not read; None when none does (their errors say nothing here)."""
        for slot in ahead:
            await slot.done.wait()
            if slot.answer is not None and any(
                not self.recent.known(self.key(r)) for r in slot.answer.records
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
            if end_like(exc):
                return False
            raise self._failure(offset, exc) from exc
        if answer is None:
            return False
        keys = {self.key(r) for r in answer.records}
        if keys == self.recent.first:  # a server that starts again from its first page past the end
            return False
        return any(not self.recent.known(key) for key in keys)

    async def _deliver(
        self,
        offset: int,
        records: list[msgspec.Raw],
        keys: list[Key],
        out: MemoryObjectSendStream[Page],
    ) -> None:
        label, fresh, moved = self.recent.fresh(offset, records, keys)
        progress = self.progress
        if records and self.paging.overlap and moved:
            progress.gaps += 1
            if progress.gaps == 1:
                log.warning(
                    "records moved at the source between two page requests: some may have "
                    "been passed over, so no deactivation follows this pass",
                    extra={"offset": offset},
                )
        if fresh:
            await out.send(Page(label, fresh))
            progress.pages += 1
            progress.records += len(fresh)
        self.recent.remember(offset, keys)
        progress.next_offset = max(progress.next_offset, offset + len(records))
