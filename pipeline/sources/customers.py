"""The MAN customer-users client (MANPINT002) and the source stage that streams its pages."""

from __future__ import annotations

from collections import deque

import anyio
import msgspec
from anyio.streams.memory import MemoryObjectSendStream

from pipeline.config import SourceSettings, secret
from pipeline.errors import (
    DecodeError,
    HTTPStatusError,
    SourceError,
    TLSError,
    TransientHTTPError,
)
from pipeline.http import HttpClient, tls_context
from pipeline.records import Page
from pipeline.sources.paging import OffsetPaging

__all__ = ["CustomerSource", "SourceProgress"]

_array_decoder = msgspec.json.Decoder(list[msgspec.Raw])


class SourceProgress(msgspec.Struct):
    """What the source has done in this pass."""

    pages: int = 0
    records: int = 0
    next_offset: int = 0
    error: str | None = None


class _Slot:
    __slots__ = ("done", "offset", "records")

    def __init__(self, offset: int) -> None:
        self.offset = offset
        self.records: list[msgspec.Raw] = []
        self.done = anyio.Event()


def _repeated_head(tail: set[bytes], records: list[msgspec.Raw]) -> int:
    """How many leading ``records`` the page before ended with, byte for byte (the overlap).

    When nothing moved at the source that is the whole overlap; when records were deleted in
    between, fewer match, and what no longer matches goes on to the transform, where repeats
    of a ``customer_id`` are dropped.
    """
    count = 0
    for raw in records:
        if bytes(raw) not in tail:
            break
        count += 1
    return count


class CustomerSource:
    """Reads every customer user with ``max_in_flight`` page requests in flight.

    Pages are emitted in offset order; the read stops at the first short page.
    """

    def __init__(self, settings: SourceSettings, *, start_offset: int = 0) -> None:
        self.settings = settings
        self.start_offset = start_offset
        self.progress = SourceProgress(next_offset=start_offset)
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
        self._scope: anyio.CancelScope | None = None
        self._envelope = msgspec.json.Decoder(
            list[msgspec.Raw]
            | msgspec.defstruct("Envelope", [(settings.data_path, list[msgspec.Raw])])
        )
        self.http = HttpClient(
            ssl_context=tls_context(settings.ca_bundle, key="source.ca_bundle"),
            timeout_seconds=settings.timeout_seconds,
            retry=settings.retry,
            max_in_flight=settings.max_in_flight,
            headers=headers,
        )

    def _records(self, body: bytes) -> list[msgspec.Raw]:
        try:
            decoded = self._envelope.decode(body)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise DecodeError(self.settings.url, str(exc)) from exc
        except (UnicodeDecodeError, RecursionError) as exc:
            raise DecodeError(self.settings.url, type(exc).__name__) from exc
        if isinstance(decoded, list):
            return decoded
        records: list[msgspec.Raw] = getattr(decoded, self.settings.data_path)
        return records

    async def fetch(self, offset: int) -> list[msgspec.Raw]:
        """One page's records, undecoded; a truncated or malformed body is retried too.

        Raises:
            SourceError: the page could not be read; names the URL and the last status.
        """
        url = self.settings.url
        params = {"limit": str(self.settings.page_size), "offset": str(offset)}
        try:
            return await self.http.request_decoded(
                lambda: self.http.request("GET", url, params=params),
                self._records,
                method="GET",
                url=url,
            )
        except (DecodeError, TransientHTTPError, HTTPStatusError, TLSError) as exc:
            raise SourceError(f"{exc} (offset {offset})") from exc

    def stop(self) -> None:
        """Stop fetching: pages in flight are dropped, the stream ends, what was sent goes on."""
        self._stopped = True
        if self._scope is not None:
            self._scope.cancel()

    async def _fill(self, slot: _Slot) -> None:
        slot.records = await self.fetch(slot.offset)
        slot.done.set()

    async def stream(self, out: MemoryObjectSendStream[Page]) -> None:
        """Send every page to ``out`` in offset order, then close it.

        A source failure is recorded in ``progress.error`` and ends the stream early, so that
        what was read is still delivered downstream; the pass then reports itself aborted.
        """
        overlap = min(self.settings.overlap, self.settings.page_size - 1)
        paging = OffsetPaging(self.settings.page_size, self.start_offset, overlap)
        async with out, self.http:
            try:
                with anyio.CancelScope() as scope:
                    self._scope = scope
                    if self._stopped:
                        scope.cancel()
                    await self._read(paging, out)
            except* SourceError as group:
                self.progress.error = str(group.exceptions[0])

    async def _read(self, paging: OffsetPaging, out: MemoryObjectSendStream[Page]) -> None:
        async with anyio.create_task_group() as tg:
            slots: deque[_Slot] = deque()
            tail: set[bytes] = set()  # the last records of the page before, to skip re-reads
            while True:
                # Keep max_in_flight pages asked for; release them in offset order.
                while len(slots) < self.settings.max_in_flight:
                    offset = paging.plan()
                    if offset is None:
                        break
                    slot = _Slot(offset)
                    slots.append(slot)
                    tg.start_soon(self._fill, slot)
                if not slots:
                    break
                slot = slots.popleft()
                await slot.done.wait()
                if not paging.settle(slot.offset, len(slot.records)):
                    continue
                skip = _repeated_head(tail, slot.records)
                records = slot.records[skip:]
                tail = (
                    {bytes(r) for r in slot.records[-paging.overlap :]} if paging.overlap else set()
                )
                if records:
                    await out.send(Page(slot.offset + skip, records))
                    self.progress.pages += 1
                    self.progress.records += len(records)
                self.progress.next_offset = slot.offset + len(slot.records)
                if paging.done:
                    self.complete = True
                    tg.cancel_scope.cancel()
                    break
