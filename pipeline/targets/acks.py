"""What a target answers about each item: confirmed or dead-lettered, with the reason made
safe (no personal value of any record of the batch, no control character)."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

import msgspec

from pipeline.records import Ack, AckKind, Item, personal_values
from pipeline.text import escape_controls

__all__ = ["confirmed", "dead", "mask_batch", "mask_personal", "redact"]

_EMAIL = re.compile(r"[^\s@'\"<>(),;:]+@[^\s@'\"<>(),;:]+")
_DIGITS = re.compile(r"\+?\d[\d ()/-]{6,}\d")
_PHONE = re.compile(r"\+\d[\d ()/-]*\d")
"""An international number, even cut short."""
_OBJECT = re.compile(r"\{.*", re.DOTALL)
"""A JSON object quoted in a message (a row of the import), to its end: it is a record's."""
MAX_REASON = 500


def redact(text: str) -> str:
    """A server's message made safe for logs and dead letters: emails and phone-like runs
    masked, an object it quotes (a record, say) cut, control characters escaped."""
    cut = _OBJECT.sub("{…}", text)
    masked = _PHONE.sub("<number>", _DIGITS.sub("<number>", _EMAIL.sub("<email>", cut)))
    return escape_controls(masked)[:MAX_REASON]


def mask_batch(acks: Sequence[Ack], items: Sequence[Item]) -> list[Ack]:
    """``acks`` with the personal values of every record of the batch masked out of each
    dead letter's reason: a target's message about one record may quote another."""
    if all(a.kind != "dead" for a in acks):
        return list(acks)
    personal = tuple(v for i in items if i.customer for v in personal_values(i.customer))
    if not personal:
        return list(acks)
    return [
        msgspec.structs.replace(a, reason=mask_personal(a.reason, personal))
        if a.kind == "dead" and a.reason
        else a
        for a in acks
    ]


def mask_personal(text: str, personal: Sequence[str]) -> str:
    """``text`` without any of the ``personal`` values of the record it speaks of (a name, a
    street...), in any case, each as a whole word or phrase; control characters escaped."""
    if personal:
        text = _values(tuple(personal)).sub("<personal>", text)
    return escape_controls(text)[:MAX_REASON]


@functools.lru_cache(maxsize=256)
def _values(personal: tuple[str, ...]) -> re.Pattern[str]:
    """Any of the values, as a whole word or phrase, in any case."""
    longest = sorted({v.strip() for v in personal if v.strip()}, key=len, reverse=True)
    alternatives = "|".join(re.escape(v) for v in longest)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def confirmed(target: str, item: Item) -> Ack:
    """The ack of an item the target confirmed: an update when it held an earlier version."""
    kind: AckKind = "updated" if item.known else "created"
    return Ack(target, item.customer_id, kind, hash=item.hash, offset=item.offset, ref=item.ref)


def dead(
    target: str,
    item: Item,
    reason: str,
    offset: int | None = None,
    *,
    request_failed: bool = False,
) -> Ack:
    """The ack of an item the target refused for good, or could not be written this pass
    (``request_failed``: the request itself failed, see :class:`~pipeline.records.Ack`).
    Every dead letter of a target is made here: the record's own personal values are masked
    out of the reason, whatever words of the target it quotes."""
    where = item.offset if offset is None else offset
    personal = personal_values(item.customer) if item.customer is not None else ()
    text = mask_personal(reason, personal)
    return Ack(
        target, item.customer_id, "dead", reason=text, offset=where, request_failed=request_failed
    )
