"""The sync-batch target: ``POST /sync/customers/batch`` with a ``responseStatus`` per item.

Accounts are grouped into one organisation item per business unit. A confirmed item confirms
its accounts; a permanent item error dead-letters them (or, when the error names no account of
a several-account item, each account is sent once more alone to find the culprit); a transient
item error retries just that item. A 400 whose field errors name accounts dead-letters those and
sends the rest again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec

from pipeline.config import secret
from pipeline.errors import PipelineError, TransientHTTPError
from pipeline.records import Ack, Customer, Item
from pipeline.targets.acks import confirmed, dead
from pipeline.targets.base import HttpTarget, TargetContext
from pipeline.targets.syncbatch.answers import (
    ACCOUNT_REF,
    Conflict,
    echoed_accounts,
    item_reason,
    names_organisation_id,
    other_organisation,
    own_earlier,
    parse_ref,
    slot_of,
)
from pipeline.targets.syncbatch.ids import IdPolicy
from pipeline.targets.syncbatch.payload import (
    SbAccount,
    SbCustomer,
    SbRequest,
    SbResponseStatus,
    SbResult,
    map_account,
    profile_url,
    read_error,
    read_results,
)
from pipeline.targets.syncbatch.settings import SYNCBATCH_PATH, SyncBatchSettings
from pipeline.transform.hashing import payload_hash

__all__ = ["TRANSIENT_ITEM_CODES", "SyncBatchTarget"]

TRANSIENT_ITEM_CODES = frozenset(
    {"TimeoutException", "ServiceUnavailable", "TooManyRequests", "DeadlockException"}
)
_encoder = msgspec.json.Encoder()


class SyncBatchTarget(HttpTarget):
    """Writes accounts, grouped by organisation, to the sync-batch endpoint."""

    def __init__(self, settings: SyncBatchSettings, context: TargetContext) -> None:
        self.settings = settings
        self._store = context.store
        self._url = settings.url.rstrip("/") + SYNCBATCH_PATH
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        token = secret(settings.token_env, key=context.key("token_env"))
        super().__init__(settings, context, headers, token=token)
        self._ids = IdPolicy(settings, context.store)

    # Mapping ---------------------------------------------------------------------------

    async def prepare(self, customers: Sequence[Customer]) -> list[Item]:
        """Map and hash; new ids are committed before use, and a customer that can get no id
        is refused with the reason."""
        ids = await self._ids.assign(customers)
        items = []
        for customer in customers:
            cid = customer.customer_id
            reason = ids.refused.get(cid)
            if reason is not None:
                items.append(Item(cid, b"", None, refused=reason))
                continue
            organisation = ids.organisations[customer.business_unit]
            account = map_account(customer, ids.accounts[cid], organisation, self.settings)
            digest = payload_hash(_encoder.encode(account))
            # Deactivation later needs the organisation and the user name without the source.
            ref = f"{account.ref_id}\t{account.user_name}"
            items.append(Item(cid, digest, account, ref=ref, customer=customer))
        return items

    # Writing ---------------------------------------------------------------------------

    def _build(self, items: Sequence[Item], alone: set[str]) -> tuple[bytes, list[list[Item]]]:
        groups: dict[object, list[Item]] = {}
        for item in items:
            account: SbAccount = item.payload
            key: object = item.customer_id if item.customer_id in alone else account.ref_id
            groups.setdefault(key, []).append(item)
        customers = []
        slots = []
        for index, members in enumerate(groups.values()):
            accounts = []
            for position, item in enumerate(members):
                account = item.payload
                account.index = position
                accounts.append(account)
            first = accounts[0]
            customers.append(
                SbCustomer(
                    id=first.ref_id,
                    index=index,
                    name=first.company,
                    type=self.settings.customer_type,
                    accounts=accounts,
                )
            )
            slots.append(members)
        return _encoder.encode(SbRequest(customers=customers)), slots

    @staticmethod
    def _named_accounts(
        status: SbResponseStatus | None,
        slots: list[list[Item]],
        index: int | None,
        *,
        ids_only: bool = False,
    ) -> list[Item]:
        """The accounts the field errors name (only by their ``Id`` field, with ``ids_only``)."""
        if status is None:
            return []
        named = []
        for error in status.errors:
            match = ACCOUNT_REF.search(error.field_name or "")
            if match is None or (ids_only and match.group(3) is None):
                continue
            slot = int(match.group(1)) if match.group(1) is not None else index
            position = int(match.group(2))
            if slot is not None and slot < len(slots) and position < len(slots[slot]):
                named.append(slots[slot][position])
        return list({id(i): i for i in named}.values())

    def _ack(self, item: Item, reason: str | None = None) -> Ack:
        if reason is not None:
            return dead(self.name, item, reason)
        return confirmed(self.name, item)

    async def write(self, items: Sequence[Item]) -> list[Ack]:
        """Send ``items`` and return one ack each.

        Raises:
            AuthError: 401/403, which stops this target for the pass.
        """
        acks: list[Ack] = []
        pending = list(items)
        alone: set[str] = set()
        stalled = 0  # rounds that answered nothing for good: only these count against max_attempts
        while pending:
            answered = len(acks)
            body, slots = self._build(pending, alone)
            try:
                response = await self.call("POST", self._url, body=body, accept=frozenset({400}))
            except PipelineError as exc:
                acks.extend(self.failed(pending, "request failed", exc))
                break
            # -- a 400 names the accounts it refuses; the rest goes again at once
            retry: list[Item] = []
            if response.status == 400:
                status = self._decode_error(response.body)
                named = self._named_accounts(status, slots, None)
                reason = item_reason(status, "rejected with 400")
                if not named:
                    named = pending
                acks.extend(self._ack(i, reason) for i in named)
                refused = {id(i) for i in named}
                retry = [i for i in pending if id(i) not in refused]
                pending = retry
                continue
            # -- a 200 answers per item: an ack for each, keep what must go again
            conflicts: list[Conflict] = []
            foreign: list[Item] = []
            try:
                results = read_results(response.body)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                # Unreadable: all again (upserts are idempotent), and say why if it lasts.
                why = str(exc) if isinstance(exc, msgspec.ValidationError) else "malformed JSON"
                lasting = f"answer unreadable: {why}"
                retry = [item for slot in slots for item in slot]
            else:
                lasting = "transient item errors persisted after retries"
                retry = self._sort_answers(
                    results, slots, alone, acks, conflicts=conflicts, foreign=foreign
                )
            if conflicts:
                acks.extend(await self._conflicted(conflicts))
            if foreign:
                units = await self._ids.organisation_conflicted(
                    {i.payload.company: i.payload.ref_id for i in foreign}
                )
                acks.extend(self._ack(i, units[i.payload.company]) for i in foreign)
            if retry:
                if len(acks) == answered:
                    stalled += 1
                    if stalled >= self.settings.retry.max_attempts:
                        acks.extend(self._ack(i, lasting) for i in retry)
                        break
                await self._pause(max(stalled, 1))
            pending = retry
        return acks

    async def _conflicted(self, conflicts: list[Conflict]) -> list[Ack]:
        """Dead-letter accounts whose id the service showed holding another user. When that
        is the customer's own earlier account (see :func:`own_earlier`; when the service only
        refused the id: any account this state file confirmed for the customer), the service
        did not take a change of the user name: a refusal like any other. Else the id is
        someone else's: an id conflict."""
        refs = await self._store.refs(self.name, [c.item.customer_id for c in conflicts])
        own: list[Ack] = []
        foreign: dict[str, int] = {}
        for conflict in conflicts:
            item = conflict.item
            ref = refs.get(item.customer_id)
            if conflict.held is None and ref:
                own.append(self._ack(item, conflict.reason))
            elif conflict.held is not None and own_earlier(item, conflict.held, ref):
                reason = (
                    f"the service kept this customer's earlier user name under account id "
                    f"{item.payload.id} and did not take the new one"
                )
                own.append(self._ack(item, reason))
            else:
                foreign[item.customer_id] = item.payload.id
        reasons = await self._ids.conflicted(foreign) if foreign else {}
        others = [c.item for c in conflicts if c.item.customer_id in foreign]
        return own + [self._ack(i, reasons[i.customer_id]) for i in others]

    def _decode_error(self, body: bytes) -> SbResponseStatus | None:
        try:
            return read_error(body)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return None

    def _sort_answers(
        self,
        results: list[SbResult],
        slots: list[list[Item]],
        alone: set[str],
        acks: list[Ack],
        *,
        conflicts: list[Conflict],
        foreign: list[Item],
    ) -> list[Item]:
        """Read the per-item results; return what must be sent again. An account whose id the
        service shows holding another user goes to ``conflicts``; the accounts of an item whose
        organisation id holds another organisation go to ``foreign``; neither is confirmed."""
        ids = [members[0].payload.ref_id for members in slots]
        answered = [slot_of(result, ids) for result in results]
        twice = {i for i, n in Counter(answered).items() if n > 1}  # contradictory: resent
        seen: set[int] = set()
        retry: list[Item] = []
        for result, index in zip(results, answered, strict=True):
            if index is None or index in twice:
                continue
            seen.add(index)
            members = slots[index]
            status = result.response_status
            if status is None or not status.failed:
                if other_organisation(result, members):
                    foreign.extend(members)
                    continue
                odd = echoed_accounts(result, members)
                for item in members:
                    if item.customer_id not in odd:
                        acks.append(self._ack(item))
                    elif (held := odd[item.customer_id]) is not None:
                        conflicts.append(Conflict(item, held))
                    else:
                        reason = f"the answer does not hold account id {item.payload.id}"
                        acks.append(self._ack(item, reason))
            elif status.error_code in TRANSIENT_ITEM_CODES:
                retry.extend(members)
            elif names_organisation_id(status):
                foreign.extend(members)  # the service refused the organisation's id
            elif clashed := self._named_accounts(status, slots, index, ids_only=True):
                # The service refused an account's id: it holds someone else there.
                refused = item_reason(status, "id refused")
                conflicts.extend(Conflict(i, None, refused) for i in clashed)
                retry.extend(i for i in members if i not in clashed)
            else:
                named = self._named_accounts(status, slots, index)
                if len(members) == 1 or named:
                    culprits = named or members
                    reason = item_reason(status, "item refused")
                    acks.extend(self._ack(i, reason) for i in culprits)
                    retry.extend(i for i in members if i not in culprits)
                else:
                    alone.update(i.customer_id for i in members)
                    retry.extend(members)
        retry.extend(item for index, slot in enumerate(slots) if index not in seen for item in slot)
        return retry

    # Deactivation --------------------------------------------------------------------

    async def deactivate(self, customer_ids: Sequence[str]) -> list[str]:
        """Lock the accounts (``lockedDate`` now, no roles) of customers gone from the source."""
        refs = await self._store.refs(self.name, customer_ids)
        # A confirmation keeps "<organisation id>\t<user name>" (see prepare).
        known = {cid: parse_ref(ref) for cid, ref in refs.items() if ref}
        accounts = await self._ids.accounts(sorted(known))
        names = await self._ids.organisation_names(sorted({r[0] for r in known.values()}))
        locked = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        items = []
        # An id that proved to be someone else's was forgotten: nothing of ours is there to lock.
        done = [cid for cid in known if cid not in accounts]
        for cid, (ref_id, user_name) in sorted(known.items()):
            if cid not in accounts:
                continue
            account = SbAccount(
                id=accounts[cid],
                index=0,
                ref_id=ref_id,
                ref_id_str=str(ref_id),
                user_name=user_name,
                email=user_name,
                primary_email=user_name,
                first_name="",
                last_name="",
                display_name="",
                full_name="",
                company=names.get(ref_id, ""),
                profile_url=profile_url(self.settings.profile_url, cid),
                roles=[],
                permissions=[],
                locked_date=locked,
                meta={"customerId": cid, "deactivated": "true"},
            )
            items.append(Item(cid, b"", account))
        for start in range(0, len(items), self.batch_size):
            acks = await self.write(items[start : start + self.batch_size])
            done.extend(a.customer_id for a in acks if a.kind != "dead")
        return done

    async def _pause(self, attempt: int) -> None:
        items = TransientHTTPError("POST", self._url, reason="transient item errors")
        await self._http.pause_for(items, attempt)
