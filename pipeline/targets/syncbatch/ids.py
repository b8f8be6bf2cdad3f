"""Sync-batch ids: the integer ``id`` of each account and organisation, by the configured rule
or from the configured range, never counted from a default.

The service upserts by ``id``: an id that another feed (or a lost state file) already gave to
someone else overwrites that customer. So an account's id is the number in its customer id
(``account_ids = "customer_id"``: the same in every state file), or one allocated once from a
range this feed alone uses (``account_ids = "range"``). An organisation's id is named per
business unit (``organisation_ids``) or allocated from ``organisation_id_range``.

When the service's answer shows that an id holds another user, the account is dead-lettered
(see the target) and, for a range, no further id is allocated from it: the range is shared
with someone, and the next id would overwrite their customer. The halt is kept in the state
file until the range is changed.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.records import Customer
from pipeline.state.store import StateStore
from pipeline.targets.syncbatch.settings import MAX_ID, SyncBatchSettings

__all__ = ["Assigned", "IdPolicy", "account_number"]

ACCOUNT = "account"
ORGANISATION = "organisation"
DISPROVED = "account-disproved"
"""Customer id -> an account id the service showed holding another user (rule mode)."""


def account_number(customer_id: str, prefix: str, offset: int) -> int | str:
    """The account id the rule gives ``customer_id``, or why it gives none (pure).

    The customer id must be the prefix and a whole decimal number, nothing else: "C0001234"
    with prefix "C" is 1234; "C12-34" is refused rather than read as 1234, which another
    customer id may give too.

    >>> account_number("C0001234", "C", 0), account_number("C0001234", "C", 10_000_000)
    (1234, 10001234)
    >>> account_number("X12", "C", 0)
    "customer_id does not start with customer_id_prefix 'C'"
    """
    if not customer_id.startswith(prefix):
        return f"customer_id does not start with customer_id_prefix {prefix!r}"
    digits = customer_id[len(prefix) :]
    if not (digits.isascii() and digits.isdigit()):
        where = f" after the prefix {prefix!r}" if prefix else ""
        return f'customer_id is no whole number{where}, as account_ids = "customer_id" needs'
    significant = digits.lstrip("0") or "0"
    if len(significant) > 10:
        return f"the account id customer_id gives is not within 1..{MAX_ID}"
    number = int(significant) + offset
    if not 1 <= number <= MAX_ID:
        return f"the account id customer_id gives, {number}, is not within 1..{MAX_ID}"
    return number


def _span(span: tuple[int, int]) -> str:
    return f"[{span[0]}, {span[1]}]"


class Assigned:
    """The ids of one batch of customers: accounts and organisations, and the customers that
    get none, with the reason."""

    __slots__ = ("accounts", "organisations", "refused")

    def __init__(self) -> None:
        self.accounts: dict[str, int] = {}
        self.organisations: dict[str, int] = {}
        """Business unit -> organisation id."""
        self.refused: dict[str, str] = {}


class IdPolicy:
    """Gives accounts and organisations their ids, and records what the service disproves."""

    def __init__(self, settings: SyncBatchSettings, store: StateStore) -> None:
        self.settings = settings
        self._store = store
        self._organisations: dict[str, int] = dict(settings.organisation_ids)
        self._units = {number: unit for unit, number in settings.organisation_ids.items()}
        self._halted: dict[str, bool] = {}
        self._disproved: bool | None = None  # any account id found someone else's?

    # Assigning ---------------------------------------------------------------------------

    async def assign(self, customers: Sequence[Customer]) -> Assigned:
        """The ids of ``customers``; new ones are committed to the state before any is used."""
        out = Assigned()
        await self._assign_organisations(customers, out)
        wanting = [c.customer_id for c in customers if c.customer_id not in out.refused]
        if self.settings.account_ids == "customer_id":
            await self._derive(wanting, out)
        else:
            await self._allocate(wanting, out)
        return out

    async def _derive(self, customer_ids: list[str], out: Assigned) -> None:
        settings = self.settings
        wanted: dict[str, int] = {}
        for customer_id in customer_ids:
            number = account_number(
                customer_id, settings.customer_id_prefix, settings.account_id_offset
            )
            if isinstance(number, str):
                out.refused[customer_id] = number
            else:
                wanted[customer_id] = number
        # An id the service showed holding another user stays refused to that customer, and
        # free for the customer whose id it may be.
        if self._disproved is None:
            self._disproved = await self._store.count_ids(DISPROVED) > 0
        if self._disproved and wanted:
            for customer_id, number in (await self._store.ids(DISPROVED, list(wanted))).items():
                if wanted.get(customer_id) == number:
                    del wanted[customer_id]
                    out.refused[customer_id] = _conflict(number, _RULE_ADVICE, earlier=True)
        # Recorded, so that two customer ids giving one number ("C0012", "C12") are caught.
        clashes = await self._store.claim_ids(ACCOUNT, wanted)
        for customer_id, holder in clashes.items():
            out.refused[customer_id] = (
                f"account id {wanted.pop(customer_id)} is customer {holder}'s already: both "
                "customer ids give the same number"
            )
        out.accounts.update(wanted)

    async def _allocate(self, customer_ids: list[str], out: Assigned) -> None:
        span = self.settings.account_id_range
        assert span is not None  # the settings require it with account_ids = "range"
        first, last = span
        held = await self._store.ids(ACCOUNT, customer_ids)
        kept = {cid: number for cid, number in held.items() if first <= number <= last}
        out.accounts.update(kept)
        new = [cid for cid in customer_ids if cid not in kept]
        if not new:
            return
        if await self._range_halted(ACCOUNT, span):
            out.refused.update(dict.fromkeys(new, _halted("account_id_range", span)))
            return
        allocated = await self._store.allocate_ids(ACCOUNT, new, span)
        out.accounts.update(allocated)
        used_up = f"account_id_range {_span(span)} is used up: widen it, or name another"
        out.refused.update({cid: used_up for cid in new if cid not in allocated})

    async def _assign_organisations(self, customers: Sequence[Customer], out: Assigned) -> None:
        units = list(dict.fromkeys(c.business_unit for c in customers))
        missing = [u for u in units if u not in self._organisations]
        span = self.settings.organisation_id_range
        reasons: dict[str, str] = {}
        if missing and span is None:
            for unit in missing:
                reasons[unit] = (
                    f"business unit {unit!r} has no organisation id: name it in "
                    "targets.syncbatch.organisation_ids, or set organisation_id_range"
                )
        elif missing and span is not None:
            held = await self._store.ids(ORGANISATION, missing)
            for unit, number in held.items():
                if span[0] <= number <= span[1]:
                    self._organisations[unit] = number
            new = [u for u in missing if u not in self._organisations]
            if new and await self._range_halted(ORGANISATION, span):
                reasons.update(dict.fromkeys(new, _halted("organisation_id_range", span)))
            elif new:
                self._organisations.update(await self._store.allocate_ids(ORGANISATION, new, span))
                for unit in new:
                    if unit not in self._organisations:
                        reasons[unit] = f"organisation_id_range {_span(span)} is used up"
        for customer in customers:
            unit = customer.business_unit
            if unit in reasons:
                out.refused[customer.customer_id] = reasons[unit]
            else:
                out.organisations[unit] = self._organisations[unit]

    async def _range_halted(self, kind: str, span: tuple[int, int]) -> bool:
        if kind not in self._halted:
            self._halted[kind] = await self._store.meta(f"halted:{kind}") == _span(span)
        return self._halted[kind]

    async def _halt(self, kind: str, span: tuple[int, int]) -> None:
        await self._store.set_meta(f"halted:{kind}", _span(span))
        self._halted[kind] = True

    # Looking up ------------------------------------------------------------------------------

    async def accounts(self, customer_ids: Sequence[str]) -> dict[str, int]:
        """The account ids recorded for customers confirmed earlier."""
        return await self._store.ids(ACCOUNT, customer_ids)

    async def organisation_names(self, numbers: Sequence[int]) -> dict[int, str]:
        """The business unit of each organisation id."""
        names = {n: self._units[n] for n in numbers if n in self._units}
        rest = [n for n in numbers if n not in names]
        if rest:
            names.update(await self._store.keys(ORGANISATION, rest))
        return names

    # What the service disproves -------------------------------------------------------------

    async def conflicted(self, accounts: dict[str, int]) -> dict[str, str]:
        """Record that these customers' account ids hold other users in the service; returns
        the dead-letter reason of each. The ids are forgotten: never used for them again."""
        await self._store.forget_ids(ACCOUNT, list(accounts))
        if self.settings.account_ids == "customer_id":
            # The number stays refused to that customer (another customer id may be its owner).
            await self._store.note_ids(DISPROVED, accounts)
            self._disproved = True
            advice = _RULE_ADVICE
        else:
            span = self.settings.account_id_range
            assert span is not None
            await self._halt(ACCOUNT, span)
            advice = f"no more ids are taken from account_id_range {_span(span)}: " + _OWN_RANGE
        return {cid: _conflict(number, advice) for cid, number in accounts.items()}

    async def organisation_conflicted(self, units: dict[str, int]) -> dict[str, str]:
        """Record that these business units' organisation ids hold other organisations in the
        service; returns the dead-letter reason for the accounts of each unit."""
        reasons: dict[str, str] = {}
        span = self.settings.organisation_id_range
        allocated = [u for u in units if u not in self.settings.organisation_ids]
        if allocated and span is not None:
            await self._store.forget_ids(ORGANISATION, allocated)
            await self._halt(ORGANISATION, span)
            for unit in allocated:
                self._organisations.pop(unit, None)
        for unit, number in units.items():
            if unit in self.settings.organisation_ids:
                advice = "organisation_ids names it for this business unit: name a free id"
            else:
                advice = (
                    f"no more ids are taken from organisation_id_range {_span(span or (0, 0))}: "
                )
                advice += _OWN_RANGE
            reasons[unit] = (
                f"id conflict: the service holds another organisation under organisation id "
                f"{number}; {advice}"
            )
        return reasons


_RULE_ADVICE = "does another feed take ids from the same numbers? set account_id_offset"
_OWN_RANGE = "name a range this feed alone uses"


def _conflict(number: int, advice: str, *, earlier: bool = False) -> str:
    when = " (seen on an earlier pass)" if earlier else ""
    return f"id conflict: the service holds another user under account id {number}{when}; {advice}"


def _halted(key: str, span: tuple[int, int]) -> str:
    return (
        f"no id is taken from {key} {_span(span)} any more: an id of it held someone else in "
        f"the service; {_OWN_RANGE}"
    )
