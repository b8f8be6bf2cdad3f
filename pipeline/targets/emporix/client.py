"""The Emporix target: ``PUT`` each customer, then ``PUT`` its one address with a stable id.

The customer ``PUT`` is a JSON merge patch (``application/merge-patch+json``): only the fields
the pipeline owns change, so ``preferredLanguage``, ``b2b``, ``restriction`` and other mixins
are never wiped. A record is confirmed only when both writes went through. The hash has a
customer half and an address half, so a record whose address alone changed costs one address
write. Per record:

* ``409 conflict_resource`` (the email belongs to another customer): the holder is looked up;
  with ``adopt_existing`` that customer is adopted (its number becomes the confirmation's
  ``ref`` and is written from then on), otherwise the record is dead-lettered with its id;
* ``404`` "Address ... not found" on the address ``PUT``: the address is added by ``POST``;
* ``409`` version conflict: the current ``metadata.version`` is read and the write repeated;
* ``400``: dead-lettered with the fields Emporix named; an id Emporix cannot take never leaves;
* ``401`` "expired": the shared token is renewed once and the call repeated;
* ``429``/``5xx``/timeouts: retried by the HTTP client, honouring ``Retry-After``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any, TypeVar
from urllib.parse import quote

import anyio
import msgspec

from pipeline.errors import HTTPStatusError, PipelineError, UnsupportedError
from pipeline.http import Response
from pipeline.records import Ack, Customer, Item
from pipeline.targets.acks import confirmed, dead
from pipeline.targets.base import HttpTarget, TargetContext
from pipeline.targets.emporix.answers import (
    Refused,
    error_of,
    found_decoder,
    refusal,
    version_decoder,
)
from pipeline.targets.emporix.payload import (
    EmxMetadata,
    EmxPayload,
    address_id,
    address_part_changed,
    customer_part_changed,
    had_address,
    map_customer,
    merge_patch,
    valid_customer_number,
)
from pipeline.targets.emporix.settings import (
    EMPORIX_CUSTOMERS_PATH,
    EMPORIX_TOKEN_PATH,
    EmporixSettings,
)

__all__ = ["EmporixTarget"]

EXPIRED = b"access_token_expired"
MERGE_PATCH = "application/merge-patch+json"
VERSION_RETRIES = 6
_ACCEPT = frozenset({400, 401, 404, 409})


_encoder = msgspec.json.Encoder()
T = TypeVar("T")


class EmporixTarget(HttpTarget):
    """Upserts customers and their addresses into one Emporix tenant."""

    def __init__(self, settings: EmporixSettings, context: TargetContext) -> None:
        self.settings = settings
        self._store = context.store  # adopted customers' numbers (confirmed.ref)
        base = settings.url.rstrip("/")
        self._customers = base + EMPORIX_CUSTOMERS_PATH.format(tenant=settings.tenant)
        super().__init__(settings, context, {"Accept": "application/json"})
        self.client_credentials(
            token_url=settings.token_url or base + EMPORIX_TOKEN_PATH,
            client_id_env=settings.client_id_env,
            client_secret_env=settings.client_secret_env,
            scope=settings.scope,
        )

    async def prepare(self, customers: Sequence[Customer]) -> list[Item]:
        refs: dict[str, str | None] = {}
        if self.settings.adopt_existing:
            refs = await self._store.refs(self.name, [c.customer_id for c in customers])
        items = []
        for customer in customers:
            payload = map_customer(customer, self.settings)
            ref = refs.get(customer.customer_id)
            items.append(
                Item(
                    customer.customer_id,
                    payload.hash(),
                    payload,
                    ref=ref,
                    customer=customer,
                )
            )
        return items

    # Calls -----------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        url: str,
        body: bytes | None = None,
        params: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Response:
        """One API call (an expired token is renewed once, see :meth:`expired`)."""
        headers = {"Content-Type": content_type} if body is not None else {}
        try:
            return await self.call(
                method, url, params=params, body=body, headers=headers, accept=_ACCEPT
            )
        except HTTPStatusError as exc:
            if exc.status == 415 and content_type == MERGE_PATCH:
                # Never fall back to a replacing PUT: it would wipe fields we do not own.
                raise UnsupportedError(
                    exc.method,
                    exc.url,
                    415,
                    "this tenant refuses application/merge-patch+json updates; "
                    "a replacing PUT would wipe fields the pipeline does not own",
                ) from exc
            raise

    def expired(self, response: Response) -> bool:
        """Emporix says ``access_token_expired``; any other 401 is a refusal."""
        return EXPIRED in response.body

    async def _email_owner(self, email: str) -> str | None:
        response = await self._call(
            "GET", self._customers, params={"q": f"contactEmail:{email}", "pageSize": "2"}
        )
        if response.status != 200:
            return None
        try:
            found = found_decoder.decode(response.body)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return None
        return next((f.customerNumber or f.id for f in found if f.customerNumber or f.id), None)

    async def _current_version(self, url: str) -> int | None:
        response = await self._call("GET", url)
        if response.status != 200:
            return None
        try:
            metadata = version_decoder.decode(response.body).metadata
        except (msgspec.ValidationError, msgspec.DecodeError):
            return None
        return metadata.version if metadata is not None else None

    def _customer_url(self, number: str) -> str:
        return f"{self._customers}/{quote(number, safe='')}"

    async def _patch(self, number: str, patch: dict[str, Any]) -> Response:
        """Merge ``patch`` into the customer (created when absent)."""
        params = {"sendPasswordResetNotifications": "false"}
        url = self._customer_url(number)
        return await self._call("PUT", url, _encoder.encode(patch), params, MERGE_PATCH)

    async def _put_customer(self, payload: EmxPayload, number: str) -> str:
        """Write the customer under ``number``; the number written (an adopted one, maybe)."""
        patch = merge_patch(payload.customer)
        adopted = False
        for _ in range(VERSION_RETRIES):
            response = await self._patch(number, patch)
            if response.status in (200, 201, 204):
                return number
            problem = error_of(response)
            duplicate = (problem.message or "").startswith("Duplicate account")
            if response.status == 409 and problem.type == "conflict_resource" and duplicate:
                owner = await self._email_owner(payload.customer.contactEmail)
                if owner is not None and owner != number and not adopted:
                    if self.settings.adopt_existing:
                        number, adopted = owner, True
                        continue
                    raise Refused(
                        f"duplicate email: already held by customer {owner} in Emporix; "
                        "set targets.emporix.adopt_existing = true to adopt that customer"
                    )
                raise Refused("duplicate email: already held by another customer in Emporix")
            if response.status != 409 or problem.type != "optimistic_lock":
                raise refusal("customer", response)
            # A version conflict: someone wrote between our read and our write. Re-read.
            version = await self._current_version(self._customer_url(number))
            patch["metadata"] = {**(patch.get("metadata") or {}), "version": version}
        raise Refused("customer: version conflict persisted after re-reads")

    def _address_url(self, number: str, customer_id: str) -> str:
        base = f"{self._customer_url(number)}/addresses"
        return f"{base}/{quote(address_id(customer_id))}"

    async def _put_address(self, payload: EmxPayload, number: str) -> bool:
        """Upsert the address; False when the customer does not exist in Emporix."""
        assert payload.address is not None
        url = self._address_url(number, payload.customer_number)
        body = payload.address
        for _ in range(VERSION_RETRIES):
            response = await self._call("PUT", url, _encoder.encode(body))
            if response.status in (200, 201, 204):
                return True
            if response.status == 404:
                if not (error_of(response).message or "").startswith("Address"):
                    return False  # the customer is missing
                # "Address ... not found": this PUT does not create; add it under our id.
                if await self._post_address(payload, number):
                    return True
                continue
            if response.status != 409 or error_of(response).type != "optimistic_lock":
                raise refusal("address", response)
            version = await self._current_version(url)
            body = msgspec.structs.replace(body, metadata=EmxMetadata(version=version))
        raise Refused("address: version conflict persisted after re-reads")

    async def _post_address(self, payload: EmxPayload, number: str) -> bool:
        """Add the address with its stable id; False when it exists already (added meanwhile)."""
        body: dict[str, Any] = msgspec.to_builtins(payload.address)
        body["id"] = address_id(payload.customer_number)
        url = f"{self._customer_url(number)}/addresses"
        response = await self._call("POST", url, _encoder.encode(body))
        if response.status in (200, 201, 204):
            return True
        if response.status == 409 and error_of(response).type == "conflict_resource":
            return False
        raise refusal("address", response)

    async def _delete_address(self, payload: EmxPayload, number: str) -> None:
        response = await self._call("DELETE", self._address_url(number, payload.customer_number))
        if response.status not in (200, 202, 204, 404):
            raise refusal("address delete", response)

    # Writing ---------------------------------------------------------------------------

    async def _write_one(self, item: Item) -> Ack:
        payload: EmxPayload = item.payload
        if not valid_customer_number(item.customer_id):
            reason = "customer_id cannot be an Emporix customer number (1-66 of A-Z a-z 0-9 _ -)"
            return dead(self.name, item, reason)
        number = item.ref or item.customer_id
        try:
            if customer_part_changed(item.previous, item.hash):
                number = await self._put_customer(payload, number)
            if payload.address is None:
                if had_address(item.previous):
                    await self._delete_address(payload, number)
            elif address_part_changed(item.previous, item.hash) and not await self._put_address(
                payload, number
            ):
                number = await self._put_customer(payload, number)
                if not await self._put_address(payload, number):
                    raise Refused("address refused with 404: customer not found")
        except Refused as refused:
            return dead(self.name, item, str(refused))
        except PipelineError as exc:
            return self.failed([item], "request failed", exc)[0]
        item.ref = number if number != item.customer_id else None
        return confirmed(self.name, item)

    async def _deactivate_one(self, number: str) -> bool:
        """Merge ``active: false`` into the customer; every other field stays as it is."""
        url = self._customer_url(number)
        for _ in range(VERSION_RETRIES):
            read = await self._call("GET", url)
            if read.status == 404:
                return True  # gone already: nothing left to deactivate
            if read.status != 200:
                return False
            try:
                metadata = version_decoder.decode(read.body).metadata
            except (msgspec.ValidationError, msgspec.DecodeError):
                return False
            # The version read makes the patch fail, not recreate, if the customer went away.
            version = metadata.version if metadata is not None else None
            patch = {"active": False, "metadata": {"version": version}}
            response = await self._patch(number, patch)
            if response.status in (200, 201, 204):
                return True
            if response.status != 409 or error_of(response).type != "optimistic_lock":
                return False
        return False

    async def deactivate(self, customer_ids: Sequence[str]) -> list[str]:
        """Set ``active`` false on each customer gone from the source."""
        done: list[str] = []
        refs = await self._store.refs(self.name, customer_ids)

        async def one(customer_id: str) -> None:
            try:
                if await self._deactivate_one(refs.get(customer_id) or customer_id):
                    done.append(customer_id)
            except PipelineError as exc:
                self.failed((), "deactivation failed", exc)  # raises on what stops the target
                # else tried again after the next complete pass

        await _at_once(one, customer_ids)
        return done

    async def write(self, items: Sequence[Item]) -> list[Ack]:
        """Write every item concurrently (``max_in_flight`` bounds the requests in flight).

        Raises:
            PipelineError: a failure of the target as a whole (credentials refused).
        """
        acks: list[Ack] = []

        async def one(item: Item) -> None:
            acks.append(await self._write_one(item))

        await _at_once(one, items)
        return acks


async def _at_once(call: Callable[[T], Coroutine[Any, Any, None]], values: Iterable[T]) -> None:
    """``call`` on every value at once (the client bounds the requests in flight); the first
    error raised is raised alone (it stops the target, see :meth:`HttpTarget.failed`)."""
    try:
        async with anyio.create_task_group() as tg:
            for value in values:
                tg.start_soon(call, value)
    except* PipelineError as group:
        raise group.exceptions[0] from None
