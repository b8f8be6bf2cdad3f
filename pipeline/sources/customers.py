"""The MAN customer-users client (MANPINT002) and the source stage that streams its pages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import msgspec
from anyio.streams.memory import MemoryObjectSendStream

from pipeline.config import SourceSettings, secret
from pipeline.errors import SourceError
from pipeline.http import MB, HttpClient, tls_context
from pipeline.records import Page
from pipeline.sources.envelope import Answer, EnvelopeDecoder
from pipeline.sources.paging import Paging
from pipeline.sources.reader import READ_ERRORS, Key, Reader, SourceProgress
from pipeline.urls import safe_url

__all__ = ["CustomerSource", "SourceProgress", "record_key"]


def record_key(id_field: str) -> Callable[[msgspec.Raw], Key]:
    """How the read tells records apart: by their customer id (``id_field`` in the answer),
    so that a field that changes on every answer (a timestamp) does not make old records look
    new; by their bytes when the id cannot be read."""
    probe = msgspec.defstruct(
        "IdProbe", [("customer_id", str | int | None, None)], rename={"customer_id": id_field}
    )
    decode: Callable[[msgspec.Raw], Any] = msgspec.json.Decoder(probe).decode

    def key(raw: msgspec.Raw) -> Key:
        try:
            value = decode(raw).customer_id
        except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            return bytes(raw)
        if value is None or isinstance(value, bool):
            return bytes(raw)
        return str(value).strip() or bytes(raw)

    return key


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
        self._scope: anyio.CancelScope | None = None
        self._envelope = EnvelopeDecoder(settings.url, settings.data_path, settings.total_path)
        self.http = HttpClient(
            ssl_context=tls_context(settings.ca_bundle, key="source.ca_bundle"),
            timeout_seconds=settings.timeout_seconds,
            retry=settings.retry,
            max_in_flight=settings.max_in_flight,
            max_response_bytes=settings.max_response_mb * MB,
            headers=headers,
        )
        self.paging = self._paging()
        self._key = record_key(settings.fields.customer_id)
        self._reader = Reader(
            self.fetch,
            self.paging,
            self.progress,
            max_in_flight=settings.max_in_flight,
            url=settings.url,
            stalled=self._stalled,
            key=self._key,
        )

    def _paging(self) -> Paging:
        settings = self.settings
        if settings.paging == "page":
            return Paging(settings.page_size, by_page=True)
        # A quarter of a page at most: with page_size 10, overlap 10 would ask once per record.
        overlap = min(settings.overlap, settings.page_size // 4)
        return Paging(settings.page_size, self.start_offset, overlap)

    def describe(self) -> list[str]:
        """The effective source shape, in words (``pipeline check-config``)."""
        settings = self.settings
        url = safe_url(settings.url)
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
            PipelineError: one of :data:`~pipeline.sources.reader.READ_ERRORS`, the page could
                not be read.
        """
        return await self._get(self._params(offset))

    async def _get(self, params: dict[str, str]) -> Answer | None:
        url = self.settings.url
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
                    await self._check_numbering()
                    await self._reader.read(out)
                    self.complete = not scope.cancel_called
            except* SourceError as group:
                self.progress.error = str(group.exceptions[0])
        self.progress.total = self.paging.total
        self.progress.page_size = self.paging.stride

    async def _check_numbering(self) -> None:
        """With pages numbered from 1, look at page 0 once: a server that numbers from 0
        answers it with records page 1 does not hold, and they would never be read.

        Raises:
            SourceError: page 0 holds such records; the message names the setting.
        """
        settings = self.settings
        if settings.paging != "page" or settings.first_page != 1:
            return
        zero, one = await self._page_keys(0), await self._page_keys(1)
        if zero - one:
            raise SourceError(
                "the source answers page 0 with records that page 1 does not hold: it numbers "
                "its pages from 0, so set source.first_page = 0"
            )

    async def _page_keys(self, number: int) -> set[Key]:
        params = {self.settings.limit_param: str(self.settings.page_size)}
        params[self.settings.page_param] = str(number)
        try:
            answer = await self._get(params)
        except READ_ERRORS:
            return set()  # no page 0 (a 400, say): numbered from 1 indeed
        return {self._key(r) for r in answer.records} if answer is not None else set()

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
