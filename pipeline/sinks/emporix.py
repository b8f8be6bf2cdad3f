"""The Emporix target: ``PUT`` each customer, then ``PUT`` its one address with a stable id.

A record is confirmed only when both writes went through. The hash has a customer half and an
address half, so a record whose address alone changed costs one address write. Per record:

* ``409 conflict_resource`` (the email belongs to another customer): the holder is looked up
  and the record dead-lettered with its id, never retried;
* ``409`` version conflict: the current ``metadata.version`` is read and the write repeated;
* ``400``: dead-lettered with the fields Emporix named; an id Emporix cannot take never leaves;
* ``401`` "expired": the shared token is renewed once and the call repeated;
* ``429``/``5xx``/timeouts: retried by the HTTP client, honouring ``Retry-After``.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

import anyio
import msgspec

from pipeline.config import EmporixSettings
from pipeline.errors import AuthError, PipelineError, TransientHTTPError
from pipeline.http import Response
from pipeline.records import Ack, Customer, Item
from pipeline.sinks.base import HttpTarget, client_credentials, confirmed, dead, redact
from pipeline.transform.emporix import (
    EmxMetadata,
    EmxPayload,
    address_id,
    address_part_changed,
    customer_part_changed,
    had_address,
    map_customer,
    valid_customer_number,
)

__all__ = ["EmporixTarget"]

EXPIRED = b"access_token_expired"
# Fields of a customer read that a write does not take back.
_READ_ONLY = (
    "id", "customerNumber", "addresses", "accounts", "defaultAddress", "businessModel",
    "metadataCreatedAt", "lastLogin", "email", "b2b",
)  # fmt: skip
VERSION_RETRIES = 6
_ACCEPT = frozenset({400, 401, 404, 409})


class _Detail(msgspec.Struct):
    field: str | None = None
    message: str | None = None


class _ErrorMessage(msgspec.Struct):
    status: int | None = None
    type: str | None = None
    message: str | None = None
    details: list[_Detail] = []


class _Version(msgspec.Struct):
    metadata: EmxMetadata | None = None


class _Found(msgspec.Struct):
    id: str | None = None
    customerNumber: str | None = None


_error = msgspec.json.Decoder(_ErrorMessage)
_version = msgspec.json.Decoder(_Version)
_found = msgspec.json.Decoder(list[_Found])
_encoder = msgspec.json.Encoder()


class _Refused(Exception):
    """Emporix refused this record for good; the message is the dead-letter reason."""


def _problem(response: Response) -> _ErrorMessage:
    try:
        return _error.decode(response.body)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return _ErrorMessage(status=response.status)


def _refusal(what: str, response: Response) -> _Refused:
    problem = _problem(response)
    fields = sorted({d.field for d in problem.details if d.field})
    parts = [f"{what} refused with {response.status}"]
    if problem.type:
        parts.append(problem.type)
    if fields:
        parts.append("fields " + ", ".join(fields))
    # Emporix messages quote emails ("Duplicate account 'x@y'"): redact before keeping.
    if problem.message:
        parts.append(problem.message)
    return _Refused(redact(": ".join(parts)))


class EmporixTarget(HttpTarget):
    """Upserts customers and their addresses into one Emporix tenant."""

    name = "emporix"

    def __init__(self, settings: EmporixSettings) -> None:
        self.settings = settings
        base = settings.url.rstrip("/")
        self._customers = f"{base}/customer/{settings.tenant}/customers"
        super().__init__(settings, {"Accept": "application/json"})
        self.tokens = client_credentials(
            self,
            token_url=settings.token_url or f"{base}/oauth/token",
            client_id_env=settings.client_id_env,
            client_secret_env=settings.client_secret_env,
            scope=settings.scope,
        )

    async def prepare(self, customers: Sequence[Customer]) -> list[Item]:
        items = []
        for customer in customers:
            payload = map_customer(customer, self.settings)
            items.append(Item(customer.customer_id, payload.hash(), payload))
        return items

    # Calls -----------------------------------------------------------------------------

    async def _call(
        self, method: str, url: str, body: bytes | None = None, params: dict[str, str] | None = None
    ) -> Response:
        """One API call with the shared token; an expired token is renewed once."""
        for renewed in (False, True):
            token = await self.tokens.token()
            headers = {"Authorization": f"Bearer {token}"}
            if body is not None:
                headers["Content-Type"] = "application/json"
            response = await self._http.request(
                method, url, params=params, body=body, headers=headers, accept=_ACCEPT
            )
            if response.status != 401:
                return response
            if EXPIRED in response.body and not renewed:
                self.tokens.invalidate(token)
                continue
            break
        raise AuthError(method, url.split("?", 1)[0], 401, "access token refused")

    async def _email_owner(self, email: str) -> str | None:
        response = await self._call(
            "GET", self._customers, params={"q": f"contactEmail:{email}", "pageSize": "2"}
        )
        if response.status != 200:
            return None
        try:
            found = _found.decode(response.body)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return None
        return next((f.customerNumber or f.id for f in found if f.customerNumber or f.id), None)

    async def _current_version(self, url: str) -> int | None:
        response = await self._call("GET", url)
        if response.status != 200:
            return None
        try:
            metadata = _version.decode(response.body).metadata
        except (msgspec.ValidationError, msgspec.DecodeError):
            return None
        return metadata.version if metadata is not None else None

    async def _put_customer(self, payload: EmxPayload) -> None:
        url = f"{self._customers}/{quote(payload.customer_number, safe='')}"
        params = {"sendPasswordResetNotifications": "false"}
        body = payload.customer
        for _ in range(VERSION_RETRIES):
            response = await self._call("PUT", url, _encoder.encode(body), params)
            if response.status in (200, 201, 204):
                return
            problem = _problem(response)
            duplicate = (problem.message or "").startswith("Duplicate account")
            if response.status == 409 and problem.type == "conflict_resource" and duplicate:
                owner = await self._email_owner(payload.customer.contactEmail)
                holder = f"customer {owner}" if owner else "another customer"
                raise _Refused(f"duplicate email: already held by {holder} in Emporix")
            if response.status != 409 or problem.type != "optimistic_lock":
                raise _refusal("customer", response)
            # A version conflict: someone wrote between our read and our write. Re-read.
            version = await self._current_version(url)
            metadata = EmxMetadata(
                mixins=body.metadata.mixins if body.metadata else {}, version=version
            )
            body = msgspec.structs.replace(body, metadata=metadata)
        raise _Refused("customer: version conflict persisted after re-reads")

    def _address_url(self, payload: EmxPayload) -> str:
        number = payload.customer_number
        return f"{self._customers}/{quote(number, safe='')}/addresses/{quote(address_id(number))}"

    async def _put_address(self, payload: EmxPayload) -> bool:
        """Upsert the address; False when the customer does not exist in Emporix."""
        assert payload.address is not None
        url = self._address_url(payload)
        body = payload.address
        for _ in range(VERSION_RETRIES):
            response = await self._call("PUT", url, _encoder.encode(body))
            if response.status in (200, 201, 204):
                return True
            if response.status == 404:
                return False  # a PUT upserts the address: only the customer can be missing
            if response.status != 409 or _problem(response).type != "optimistic_lock":
                raise _refusal("address", response)
            version = await self._current_version(url)
            body = msgspec.structs.replace(body, metadata=EmxMetadata(version=version))
        raise _Refused("address: version conflict persisted after re-reads")

    async def _delete_address(self, payload: EmxPayload) -> None:
        response = await self._call("DELETE", self._address_url(payload))
        if response.status not in (200, 202, 204, 404):
            raise _refusal("address delete", response)

    # Writing ---------------------------------------------------------------------------

    async def _write_one(self, item: Item) -> Ack:
        payload: EmxPayload = item.payload
        if not valid_customer_number(item.customer_id):
            reason = "customer_id cannot be an Emporix customer number (1-66 of A-Z a-z 0-9 _ -)"
            return dead(self.name, item, reason)
        try:
            if customer_part_changed(item.previous, item.hash):
                await self._put_customer(payload)
            if payload.address is None:
                if had_address(item.previous):
                    await self._delete_address(payload)
            elif address_part_changed(item.previous, item.hash) and not await self._put_address(
                payload
            ):
                await self._put_customer(payload)
                if not await self._put_address(payload):
                    raise _Refused("address refused with 404: customer not found")
        except _Refused as refused:
            return dead(self.name, item, str(refused))
        except TransientHTTPError as exc:
            return dead(self.name, item, f"request failed: {exc}")
        return confirmed(self.name, item)

    async def _deactivate_one(self, customer_id: str) -> bool:
        """Read the customer and write it back with ``active`` false (a PUT replaces all)."""
        url = f"{self._customers}/{quote(customer_id, safe='')}"
        for _ in range(VERSION_RETRIES):
            read = await self._call("GET", url, params={"expand": "mixin:*"})
            if read.status == 404:
                return True  # gone already: nothing left to deactivate
            if read.status != 200:
                return False
            try:
                body = msgspec.json.decode(read.body)
            except msgspec.DecodeError:
                return False
            if not isinstance(body, dict):
                return False
            metadata = body.get("metadata") or {}
            for key in _READ_ONLY:
                body.pop(key, None)
            body["active"] = False
            body["metadata"] = {
                "version": metadata.get("version"),
                "mixins": metadata.get("mixins") or {},
            }
            params = {"sendPasswordResetNotifications": "false"}
            response = await self._call("PUT", url, _encoder.encode(body), params)
            if response.status in (200, 201, 204):
                return True
            if response.status != 409 or _problem(response).type != "optimistic_lock":
                return False
        return False

    async def deactivate(self, customer_ids: Sequence[str]) -> list[str]:
        """Set ``active`` false on each customer gone from the source."""
        done: list[str] = []

        async def one(customer_id: str) -> None:
            try:
                if await self._deactivate_one(customer_id):
                    done.append(customer_id)
            except TransientHTTPError:
                pass  # tried again after the next complete pass

        try:
            async with anyio.create_task_group() as tg:
                for customer_id in customer_ids:
                    tg.start_soon(one, customer_id)
        except* PipelineError as group:
            raise group.exceptions[0] from None
        return done

    async def write(self, items: Sequence[Item]) -> list[Ack]:
        """Write every item concurrently (``max_in_flight`` bounds the requests in flight).

        Raises:
            PipelineError: a failure of the target as a whole (credentials refused).
        """
        acks: list[Ack] = []

        async def one(item: Item) -> None:
            acks.append(await self._write_one(item))

        try:
            async with anyio.create_task_group() as tg:
                for item in items:
                    tg.start_soon(one, item)
        except* PipelineError as group:
            raise group.exceptions[0] from None
        return acks
