"""The transform stage: source pages in, batches of valid customers and rejections out."""

from __future__ import annotations

import msgspec
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from pipeline.errors import SourceError
from pipeline.records import Page, RecordBatch, Rejected
from pipeline.transform.dedupe import Seen
from pipeline.transform.validate import SUSPECT, Invalid, customer_id_of, email_key, validate
from pipeline.transform.wire import DEFAULT_DECODER, RECORD_ERRORS, ManRecord, RecordDecoder

__all__ = ["TransformStats", "position_key", "run_transform", "transform_page"]


REPEAT_MARGIN = 50
"""Pages of nothing but repeats, beyond as many as brought new records, after which the source
is taken to serve its data round and round (a server that wraps past its end)."""


class TransformStats(msgspec.Struct):
    """What the transform has refused or dropped in this pass."""

    rejected: int = 0
    duplicates: int = 0
    new_pages: int = 0
    """Pages that held a record not read before in this pass."""
    repeat_run: int = 0
    """Pages in a row that held nothing but records read before."""

    def count(self, batch: RecordBatch) -> None:
        """Add one page's figures.

        Raises:
            SourceError: the run of pages of repeats is longer than the data read so far (plus
                a margin): the source serves its data again and again, and would never end.
        """
        self.rejected += len(batch.rejected)
        self.duplicates += batch.duplicates
        if batch.size and batch.duplicates == batch.size:
            self.repeat_run += 1
            if self.repeat_run > self.new_pages + REPEAT_MARGIN:
                raise SourceError(
                    f"the source served {self.repeat_run} pages in a row of records already read "
                    f"in this pass (up to offset {batch.offset}): it serves its data round and "
                    "round, and the pass stops rather than read it forever"
                )
        elif batch.size:
            self.repeat_run = 0
            self.new_pages += 1


def position_key(position: int) -> str:
    """The key of a record that has no readable ``customer_id``: its position in the source."""
    return f"#position-{position}"


def _decode_error_reason(exc: Exception) -> str:
    # msgspec names the path and expected type, never the value: safe to keep. The other
    # errors could quote bytes of the record: name only their kind.
    if isinstance(exc, msgspec.ValidationError | msgspec.DecodeError):
        return f"invalid record: {exc}"
    if isinstance(exc, UnicodeDecodeError):
        return "invalid record: a string is not valid UTF-8"
    return "invalid record: nested too deeply"


def _safe_key(candidate: str | None) -> str | None:
    if candidate is None:
        return None
    try:
        return customer_id_of(ManRecord(customer_id=candidate))
    except Invalid:
        return None


class _Unreadable(msgspec.Struct, frozen=True):
    """A record that did not decode: the key it is known by, and why."""

    key: str
    error: Exception


def _decode(
    page: Page, decoder: RecordDecoder
) -> tuple[list[ManRecord | _Unreadable], list[str], list[str]]:
    """Every record decoded (or why not), and the ids and email keys the page may claim."""
    decoded: list[ManRecord | _Unreadable] = []
    ids: list[str] = []
    emails: list[str] = []
    decode = decoder.decode
    for i, raw in enumerate(page.records):
        try:
            wire = decode(raw)
        except RECORD_ERRORS as exc:
            key = _safe_key(decoder.probe_customer_id(raw)) or position_key(page.offset + i)
            decoded.append(_Unreadable(key, exc))
            ids.append(key)
            continue
        decoded.append(wire)
        if wire.customer_id is not None:
            ids.append(str(wire.customer_id).strip())
        if isinstance(wire.email, str):
            emails.append(email_key(wire.email))
    return decoded, ids, emails


def transform_page(page: Page, seen: Seen, decoder: RecordDecoder = DEFAULT_DECODER) -> RecordBatch:
    """Decode and validate every record of ``page`` on its own; nothing here raises
    (but the seen-set's own storage). ``decoder`` reads the source's field names."""
    customers = []
    rejected = []
    duplicates = 0
    pick = decoder.pick
    decoded, ids, emails = _decode(page, decoder)
    seen.begin_page(ids, emails)
    for i, (raw, wire) in enumerate(zip(page.records, decoded, strict=True)):
        if isinstance(wire, _Unreadable):
            if not seen.seen_id(wire.key):
                rejected.append(Rejected(wire.key, _decode_error_reason(wire.error)))
            else:
                duplicates += 1
            continue
        try:
            customer_id = customer_id_of(wire)
        except Invalid as exc:
            rejected.append(Rejected(position_key(page.offset + i), str(exc)))
            continue
        if seen.seen_id(customer_id):
            duplicates += 1
            continue
        try:
            suspect = SUSPECT.search(raw) is not None
            customer = validate(wire, customer_id, size=len(raw), pick=pick, suspect=suspect)
        except Invalid as exc:
            rejected.append(Rejected(customer_id, str(exc)))
            continue
        owner = seen.email_owner(customer.email, customer_id)
        if owner is not None:
            rejected.append(Rejected(customer_id, f"email already used by customer {owner}"))
            continue
        customers.append(customer)
    seen.end_page()
    return RecordBatch(
        offset=page.offset,
        size=len(page.records),
        customers=customers,
        rejected=rejected,
        duplicates=duplicates,
    )


async def run_transform(
    pages: MemoryObjectReceiveStream[Page],
    out: MemoryObjectSendStream[RecordBatch],
    stats: TransformStats,
    seen: Seen,
    decoder: RecordDecoder = DEFAULT_DECODER,
) -> None:
    """Transform pages until the source closes its end, then close ours."""
    async with pages, out:
        async for page in pages:
            batch = transform_page(page, seen, decoder)
            stats.count(batch)
            await out.send(batch)
