"""Reading a sync-batch answer: which request item a result answers, what its echo says of
each account (another user under our id, an account left out), and the dead-letter reason of
an item error (its codes and fields, never its message)."""

from __future__ import annotations

import re
from typing import NamedTuple

from pipeline.records import Item
from pipeline.targets.acks import redact
from pipeline.targets.syncbatch.payload import (
    SbAccount,
    SbResponseStatus,
    SbResult,
    SbResultAccount,
)

__all__ = [
    "ACCOUNT_REF",
    "Conflict",
    "echoed_accounts",
    "folded_name",
    "item_reason",
    "names_organisation_id",
    "other_organisation",
    "own_earlier",
    "parse_ref",
    "slot_of",
]

ACCOUNT_REF = re.compile(r"(?:customers\[(\d+)\]\.)?accounts\[(\d+)\](\.id\b)?", re.IGNORECASE)
"""A field error's account ("Customers[0].Accounts[2].UserName"), and whether it is the id."""


class Conflict(NamedTuple):
    """An account whose id the service showed holding another user: the account its answer
    echoed there (None when it refused the id, saying ``reason``)."""

    item: Item
    held: SbResultAccount | None
    reason: str = ""


def slot_of(result: SbResult, ids: list[int]) -> int | None:
    """The request item a result answers: its ``index`` (absent means 0: a host that leaves
    out default values drops it), checked against the organisation id it echoes; when the
    two disagree, the id decides if it names one item alone. None: it cannot be told."""
    index = 0 if result.index is None else result.index
    echoed = result.customer.id if result.customer is not None else None
    in_range = 0 <= index < len(ids)
    if echoed is None or (in_range and ids[index] == echoed):
        return index if in_range else None
    matches = [i for i, known in enumerate(ids) if known == echoed]
    return matches[0] if len(matches) == 1 else None


def folded_name(name: str) -> str:
    return " ".join(name.split()).casefold()


def other_organisation(result: SbResult, members: list[Item]) -> bool:
    """Whether the answer echoes the item's organisation id with another organisation's name:
    the service holds someone else's organisation there (it kept it)."""
    echoed = result.customer.name if result.customer is not None else None
    sent: SbAccount = members[0].payload
    return echoed is not None and folded_name(echoed) != folded_name(sent.company)


def echoed_accounts(result: SbResult, members: list[Item]) -> dict[str, SbResultAccount | None]:
    """What the answer's echo says of each account it disagrees with: the account it holds
    under the account's id when that has another ``userName``, None when a non-empty echo
    leaves the account out. A result without an echo of accounts says nothing either way."""
    if result.customer is None or not result.customer.accounts:
        return {}
    held = {a.id: a for a in result.customer.accounts}
    odd: dict[str, SbResultAccount | None] = {}
    for item in members:
        account: SbAccount = item.payload
        if account.id not in held:
            odd[item.customer_id] = None
            continue
        echoed = held[account.id]
        name = echoed.user_name
        if name is not None and name.casefold() != account.user_name.casefold():
            odd[item.customer_id] = echoed
    return odd


def own_earlier(item: Item, held: SbResultAccount, ref: str | None) -> bool:
    """Whether the account the service holds under this item's id is this customer's own
    earlier version (a user name change it did not take), not someone else's. The echo says
    so by the customer id the account was written for and its organisation; without those,
    the user name and organisation this state file last confirmed for the customer do."""
    sent: SbAccount = item.payload
    written_for = held.customer_id()
    if written_for is not None:
        return written_for == item.customer_id and held.ref_id in (None, sent.ref_id)
    if not ref:
        return False
    organisation, user_name = parse_ref(ref)
    same_name = (held.user_name or "").casefold() == user_name.casefold()
    return same_name and held.ref_id in (None, organisation)


_ORGANISATION_ID = re.compile(r"^customers\[\d+\]\.id$", re.IGNORECASE)


def names_organisation_id(status: SbResponseStatus) -> bool:
    """An item error on the organisation's own ``Id`` ("Customers[0].Id")."""
    return any(_ORGANISATION_ID.match(e.field_name or "") for e in status.errors)


def item_reason(status: SbResponseStatus | None, fallback: str) -> str:
    """The service's error code and the fields it names; never its message, which may quote
    anyone (the record, another one of the batch, one of last week)."""
    if status is None:
        return fallback
    parts = [status.error_code or "Error"]
    fields = sorted({e.field_name for e in status.errors if e.field_name})
    codes = sorted({e.error_code for e in status.errors if e.error_code} - {status.error_code})
    if fields:
        parts.append("fields " + ", ".join(fields))
    if codes:
        parts.append("codes " + ", ".join(codes))
    return redact(": ".join(parts))


def parse_ref(ref: str) -> tuple[int, str]:
    ref_id, _, user_name = ref.partition("\t")
    return int(ref_id), user_name
