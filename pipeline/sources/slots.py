"""Pages in flight: a slot per page request, what reading one may raise, which answers may mean
the end, and the progress the read reports.

The read loop (:mod:`pipeline.sources.reader`) fills slots and releases them in offset order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import msgspec

from pipeline.errors import (
    DecodeError,
    HTTPStatusError,
    PipelineError,
    RedirectError,
    ResponseTooLargeError,
    ThrottledError,
    TLSError,
    TransientHTTPError,
)
from pipeline.sources.envelope import Answer

__all__ = ["END_STATUSES", "READ_ERRORS", "Fetch", "Key", "Slot", "SourceProgress", "end_like"]

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


class Slot:
    """One page request in flight."""

    __slots__ = ("answer", "done", "error", "generation", "offset", "scope")

    def __init__(self, offset: int, generation: int) -> None:
        self.offset = offset
        self.generation = generation
        self.answer: Answer | None = None
        self.error: PipelineError | None = None
        self.done = anyio.Event()
        self.scope = anyio.CancelScope()

    async def fill(self, fetch: Fetch) -> None:
        """Ask for the page; an error is kept to be judged in offset order (it may be the end)."""
        with self.scope:
            try:
                self.answer = await fetch(self.offset)
            except READ_ERRORS as exc:
                self.error = exc
            self.done.set()


def end_like(error: PipelineError | None) -> bool:
    """An error answer that may mean "no records here" (None: an empty body)."""
    return error is None or (isinstance(error, HTTPStatusError) and error.status in END_STATUSES)
