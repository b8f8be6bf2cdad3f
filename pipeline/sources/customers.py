"""The MAN customer-users client (MANPINT002) and the source stage that streams its pages."""

from __future__ import annotations

import logging
from collections import deque

import anyio
import msgspec
from anyio.streams.memory import MemoryObjectSendStream

from pipeline.config import SourceSettings, secret
from pipeline.errors import (
    DecodeError,
    HTTPStatusError,
    PipelineError,
    SourceError,
    TLSError,
    TransientHTTPError,
)
from pipeline.http import HttpClient, tls_context
from pipeline.records import Page
from pipeline.sources.envelope import Answer, EnvelopeDecoder
from pipeline.sources.paging import Paging, Verdict

__all__ = ["CustomerSource", "SourceProgress"]

log = logging.getLogger("pipeline.source")

END_STATUSES = frozenset({400, 404, 416})
"""Statuses a server may answer for a page past its last record; there, they mean the end."""


class SourceProgress(msgspec.Struct):
    """What the source has done in this pass."""

    pages: int = 0
    records: int = 0
    next_offset: int = 0
    total: int | None = None
    """Records the source announced (``total``), when it did and it held."""
    shortfall: int = 0
    """Records the source announced beyond where its data ended: the read fell short."""
    page_size: int = 0
    """Records per page the server honours."""
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


def _repeated_head(previous: set[bytes], records: list[msgspec.Raw]) -> int:
    """How many leading ``records`` the page before held, byte for byte (the overlap).

    When nothing moved at the source that is the whole overlap; when records were deleted in
    between, fewer match, and what no longer matches goes on to the transform, where repeats
    of a ``customer_id`` are dropped.
    """
    count = 0
    for raw in records:
        if bytes(raw) not in previous:
            break
        count += 1
    return count


def _renamed(names: msgspec.Struct, prefix: str = "") -> list[str]:
    pairs = msgspec.structs.asdict(names).items()
    return [f"{prefix}{ours} = {theirs!r}" for ours, theirs in pairs if ours != theirs]


class CustomerSource:
    """Reads every customer user with ``max_in_flight`` page requests in flight.

    Pages are emitted in offset order. Where the read ends, and at which page size, is
    learnt from the answers (:mod:`pipeline.sources.paging`), never from one short page.
    """

    def __init__(self, settings: SourceSettings, *, start_offset: int = 0) -> None:
        self.settings = settings
        # Page numbers cannot start mid-page: a page-number read always starts at the start.
        self.start_offset = start_offset if settings.paging == "offset" else 0
        self.progress = SourceProgress(next_offset=self.start_offset)
        self.complete = False
        """The read reached the end of the source."""
        headers = {"Accept": "application/json"}
        token = secret(settings.token_env, key="source.token_env")
        if token is not None:
            headers["Authorization"] = f"Bearer {token.reveal()}"
        client_id = secret(settings.client_id_env, key="source.client_id_env")
        client_secret = secret(settings.client_secret_env, key="source.client_secret_env")
        if client_id is not None and client_secret is not None:
            headers["client_id"] = client_id.reveal()
            headers["client_secret"] = client_secret.reveal()
        self._stopped = False
        self._last_offset = self.start_offset - 1
        self._scope: anyio.CancelScope | None = None
        self._envelope = EnvelopeDecoder(settings.url, settings.data_path, settings.total_path)
        self.http = HttpClient(
            ssl_context=tls_context(settings.ca_bundle, key="source.ca_bundle"),
            timeout_seconds=settings.timeout_seconds,
            retry=settings.retry,
            max_in_flight=settings.max_in_flight,
            headers=headers,
        )
        self.paging = self._paging()

    def _paging(self) -> Paging:
        settings = self.settings
        if settings.paging == "page":
            return Paging(settings.page_size, by_page=True)
        overlap = min(settings.overlap, settings.page_size - 1)
        return Paging(settings.page_size, self.start_offset, overlap)

    def describe(self) -> list[str]:
        """The effective source shape, in words (``pipeline check-config``)."""
        settings = self.settings
        url = settings.url.split("?", 1)[0]
        size = f"{settings.limit_param}={settings.page_size}"
        if settings.paging == "page":
            paging = f"GET {url}?{settings.page_param}=<page from {settings.first_page}>&{size}"
            overlap = "page-number paging, always from the first page"
        else:
            paging = f"GET {url}?{size}&{settings.offset_param}=<offset>"
            overlap = f"{self.paging.overlap} records re-read per page"
        total = f'"{settings.total_path}"' if settings.total_path else "ignored"
        lines = [
            f"source: {paging} ({overlap}, {settings.max_in_flight} pages in flight)",
            f'  records at "{settings.data_path}" of an object answer, or a bare array; '
            f"total at {total}",
        ]
        renamed = _renamed(settings.fields) + _renamed(settings.address_fields, "address.")
        lines.append("  fields: " + (", ".join(renamed) if renamed else "as in MANPINT002"))
        lines.append(
            f"  address: one object, or from a list the {settings.address_pick} one"
            if settings.address_pick != "first"
            else "  address: one object, or the first of a list"
        )
        return lines

    def _records(self, body: bytes) -> Answer | None:
        return self._envelope.decode(body)

    def _params(self, offset: int) -> dict[str, str]:
        settings = self.settings
        params = {settings.limit_param: str(settings.page_size)}
        if settings.paging == "page":
            first = settings.first_page or 0
            params[settings.page_param] = str(self.paging.page_number(offset, first))
        else:
            params[settings.offset_param] = str(offset)
        return params

    async def fetch(self, offset: int) -> Answer | None:
        """One page's answer (None for an empty body); a cut or malformed body is retried.

        Raises:
            DecodeError, TransientHTTPError, HTTPStatusError, TLSError: the page could not be read.
        """
        url = self.settings.url
        params = self._params(offset)
        return await self.http.request_decoded(
            lambda: self.http.request("GET", url, params=params),
            self._records,
            method="GET",
            url=url,
        )

    def stop(self) -> None:
        """Stop fetching: pages in flight are dropped, the stream ends, what was sent goes on."""
        self._stopped = True
        if self._scope is not None:
            self._scope.cancel()

    async def _fill(self, slot: _Slot) -> None:
        with slot.scope:
            try:
                slot.answer = await self.fetch(slot.offset)
            except (DecodeError, TransientHTTPError, HTTPStatusError, TLSError) as exc:
                slot.error = exc  # judged in offset order: past the end it is the end
            slot.done.set()

    async def stream(self, out: MemoryObjectSendStream[Page]) -> None:
        """Send every page to ``out`` in offset order, then close it.

        A source failure is recorded in ``progress.error`` and ends the stream early, so that
        what was read is still delivered downstream; the pass then reports itself aborted.
        """
        async with out, self.http:
            try:
                with anyio.CancelScope() as scope:
                    self._scope = scope
                    if self._stopped:
                        scope.cancel()
                    await self._read(out)
            except* SourceError as group:
                self.progress.error = str(group.exceptions[0])
        self._finish()

    def _finish(self) -> None:
        paging = self.paging
        self.progress.total = paging.total
        self.progress.shortfall = paging.shortfall
        self.progress.page_size = paging.stride
        if paging.shortfall:
            log.warning(
                "the source announced more records than it served",
                extra={"total": paging.total, "end": paging.end, "short": paging.shortfall},
            )

    def _judge(self, slot: _Slot) -> list[msgspec.Raw]:
        """The records of a settled slot; an error or an empty body past the end is the end.

        Raises:
            SourceError: the page failed before the end; names the URL, the status, the offset.
        """
        error, answer = slot.error, slot.answer
        at = f"(offset {slot.offset})"
        if error is None and answer is not None:
            return answer.records
        end_like = error is None or (
            isinstance(error, HTTPStatusError) and error.status in END_STATUSES
        )
        if end_like and self.paging.past_end(slot.offset):
            return []
        if error is None:
            raise SourceError(f"GET {self.settings.url} answered an empty body {at}")
        raise SourceError(f"{error} {at}") from error

    def _stalled(self, offset: int) -> SourceError:
        settings = self.settings
        if settings.paging == "page":
            return SourceError(
                f"the source returned no new record at page "
                f"{self.paging.page_number(offset, settings.first_page or 0)}: "
                f"does it honour `{settings.page_param}`?"
            )
        return SourceError(
            f"the source returned no new record at offset {offset}: does it honour "
            f"`{settings.offset_param}`? (a server that pages by page number needs "
            'source.paging = "page")'
        )

    async def _read(self, out: MemoryObjectSendStream[Page]) -> None:
        paging = self.paging
        async with anyio.create_task_group() as tg:
            slots: deque[_Slot] = deque()
            previous: list[bytes] = []  # the records of the page before, byte for byte
            first: list[bytes] | None = None  # the records of the read's first page
            while True:
                # Keep max_in_flight pages asked for; release them in offset order.
                while len(slots) < self.settings.max_in_flight:
                    offset = paging.plan()
                    if offset is None:
                        break
                    slot = _Slot(offset, paging.generation)
                    slots.append(slot)
                    tg.start_soon(self._fill, slot)
                if not slots:
                    # Only the end stops the planning; anything else would be a silent
                    # partial read, so it is an error.
                    raise SourceError(f"the read stopped before the end ({paging.reach})")
                slot = slots.popleft()
                await slot.done.wait()
                records = self._judge(slot)
                total = slot.answer.total if slot.answer is not None else None
                generation, adopted = paging.generation, paging.adopted
                raw = [bytes(r) for r in records]
                # An offset-blind server serves its first page again and again; two equal
                # neighbours alone may be a run of repeated rows at a tiny page size.
                repeated = bool(raw) and raw == previous and raw == first
                first = raw if first is None else first
                verdict = paging.settle(slot.offset, len(records), total=total, repeated=repeated)
                if verdict is Verdict.STALE:
                    continue
                if verdict is Verdict.STALLED:
                    raise self._stalled(slot.offset)
                if paging.generation != generation:  # planned at the wrong stride: ask again
                    for stale in slots:
                        stale.scope.cancel()
                    slots.clear()
                if paging.adopted and not adopted:
                    log.warning(
                        "the source answers fewer records per page than asked: following it",
                        extra={"asked": paging.asked, "page_size": paging.stride},
                    )
                await self._deliver(slot.offset, records, set(previous), out)
                previous = raw
                if verdict is Verdict.LAST:
                    self.complete = True
                    tg.cancel_scope.cancel()
                    break

    async def _deliver(
        self,
        offset: int,
        records: list[msgspec.Raw],
        previous: set[bytes],
        out: MemoryObjectSendStream[Page],
    ) -> None:
        skip = _repeated_head(previous, records)
        if len(records) > skip:
            # Pages reach the checkpoint in strictly rising offsets; a source that moved
            # records between two requests can make a page begin where the last one did.
            label = max(offset + skip, self._last_offset + 1)
            self._last_offset = label
            await out.send(Page(label, records[skip:]))
            self.progress.pages += 1
            self.progress.records += len(records) - skip
        self.progress.next_offset = max(self.progress.next_offset, offset + len(records))
