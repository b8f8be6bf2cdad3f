"""Tests of the Emporix emulator over real loopback HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import msgspec
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from pipeline.emulators.emporix import (
    EMPORIX_COUNTS,
    EMPORIX_FAULTS,
    EMPORIX_STORE,
    EmporixEmulatorConfig,
    EmporixSeed,
    EmporixStore,
    create_emporix_app,
)
from pipeline.emulators.faults import MALFORMED_BODY, FaultPlan

BASE = "/customer/demo/customers"
CLIENT = {"client_id": "demo-emporix-client", "client_secret": "demo-emporix-secret"}
INVALID = {
    "fault": {
        "faultstring": "Invalid access token",
        "detail": {"errorcode": "oauth.v2.InvalidAccessToken"},
    }
}
EXPIRED = {
    "fault": {
        "faultstring": "Access Token expired",
        "detail": {"errorcode": "keymanagement.service.access_token_expired"},
    }
}
FORBIDDEN = {"type": "Forbidden", "status": 403, "message": "User not authorized."}
VERSION_CONFLICT = {"status": 409, "type": "optimistic_lock", "message": "Version mismatch"}

Client = TestClient[Any, Any]


class Reply(msgspec.Struct, frozen=True):
    status: int
    body: Any
    headers: Mapping[str, str]


@asynccontextmanager
async def _client(store: EmporixStore | None = None, **config: Any) -> AsyncIterator[Client]:
    app = create_emporix_app(EmporixEmulatorConfig(**config), store)
    client: Client = TestClient(TestServer(app))
    async with client:
        yield client


async def _grant(client: Client, **form: str) -> Reply:
    data = {"grant_type": "client_credentials", **CLIENT, **form}
    async with client.post("/oauth/token", data=data) as response:
        return Reply(response.status, await response.json(), response.headers)


async def _token(client: Client, **form: str) -> str:
    reply = await _grant(client, **form)
    assert reply.status == 200, reply.body
    token: str = reply.body["access_token"]
    return token


async def _call(
    client: Client,
    method: str,
    path: str,
    token: str | None,
    body: Any = None,
    *,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    data = None if body is None else body if isinstance(body, bytes) else orjson.dumps(body)
    if data is not None:
        sent.setdefault("Content-Type", "application/json")
    async with client.request(method, path, data=data, params=params, headers=sent) as response:
        raw = await response.read()
        return Reply(response.status, orjson.loads(raw) if raw else None, response.headers)


async def _admin(client: Client, path: str) -> Any:
    async with client.get(path) as response:
        assert response.status == 200
        return await response.json()


def _customer(email: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"firstName": "Ada", "lastName": "Lovelace", **extra}
    if email is not None:
        body["contactEmail"] = email
    return body


def _address(**extra: Any) -> dict[str, Any]:
    return {"contactName": "Ada Lovelace", "street": "Main St", "country": "DE", **extra}


NO_MAIL = {"sendPasswordResetNotifications": "false"}

# -- tokens ---------------------------------------------------------------------


async def test_token_success_has_spec_fields() -> None:
    async with _client() as client:
        reply = await _grant(client)
        stats = await _admin(client, "/_admin/stats")
        assert client.app is not None
        store = client.app[EMPORIX_STORE]
    assert reply.status == 200
    body = reply.body
    assert body["token_type"] == "Bearer"
    assert isinstance(body["access_token"], str) and len(body["access_token"]) >= 20
    assert (body["expires_in"], body["session_idle_time"]) == (14399, 120)
    assert (body["refresh_token"], body["refresh_token_expires_in"]) == ("", 0)
    assert body["scope"] == "customer.customer_read customer.customer_manage tenant=demo"
    assert store.token_calls == 1 and stats["token_calls"] == 1


async def test_token_bad_secret_answers_401_invalid_client() -> None:
    async with _client() as client:
        reply = await _grant(client, client_secret="wrong-secret")
        unknown = await _grant(client, client_id="someone-else")
        assert client.app is not None
        calls = client.app[EMPORIX_STORE].token_calls
    assert (reply.status, reply.body["error"]) == (401, "invalid_client")
    assert "wrong-secret" not in orjson.dumps(reply.body).decode()
    assert (unknown.status, unknown.body["error"]) == (401, "invalid_client")
    assert calls == 2


async def test_token_bad_grant_answers_400_unsupported_grant_type() -> None:
    async with _client() as client:
        reply = await _grant(client, grant_type="password")
    assert (reply.status, reply.body["error"]) == (400, "unsupported_grant_type")


async def test_token_scope_filter_limits_the_token() -> None:
    async with _client() as client:
        reply = await _grant(client, scope="customer.customer_read tenant=demo")
        token = reply.body["access_token"]
        read = await _call(client, "GET", BASE, token)
        write = await _call(client, "PUT", f"{BASE}/c1", token, _customer(), params=NO_MAIL)
        bad = await _grant(client, scope="customer.customer_read customer.import_manage")
    assert reply.body["scope"] == "customer.customer_read tenant=demo"
    assert read.status == 200
    assert (write.status, write.body) == (403, FORBIDDEN)
    assert (bad.status, bad.body["error"]) == (400, "invalid_scope")


async def test_token_expires_after_lifetime() -> None:
    async with _client(token_lifetime=0.2) as client:
        reply = await _grant(client)
        token = reply.body["access_token"]
        fresh = await _call(client, "GET", BASE, token)
        await asyncio.sleep(0.3)
        stale = await _call(client, "GET", BASE, token)
        renewed = await _call(client, "GET", BASE, await _token(client))
    assert reply.body["expires_in"] == 1
    assert fresh.status == 200
    assert (stale.status, stale.body) == (401, EXPIRED)
    assert renewed.status == 200


async def test_token_revoke_after_requests_expires_at_nth_request() -> None:
    async with _client(revoke_after_requests=3) as client:
        token = await _token(client)
        statuses = [(await _call(client, "GET", BASE, token)).status for _ in range(2)]
        third = await _call(client, "GET", BASE, token)
        fourth = await _call(client, "GET", BASE, token)
        new_token = await _token(client)
        later = [(await _call(client, "GET", BASE, new_token)).status for _ in range(3)]
    assert statuses == [200, 200]
    assert (third.status, third.body) == (401, EXPIRED)
    assert (fourth.status, fourth.body) == (401, EXPIRED)
    assert later == [200, 200, 200]


async def test_auth_missing_or_unknown_token_answers_invalid_body() -> None:
    async with _client() as client:
        missing = await _call(client, "GET", BASE, None)
        unknown = await _call(client, "GET", BASE, "not-a-token")
        basic = await _call(client, "GET", BASE, None, headers={"Authorization": "Basic abc"})
    assert [(r.status, r.body) for r in (missing, unknown, basic)] == [(401, INVALID)] * 3


async def test_auth_read_only_client_gets_403_on_writes() -> None:
    async with _client(scopes=("customer.customer_read",)) as client:
        token = await _token(client)
        put = await _call(client, "PUT", f"{BASE}/c1", token, _customer(), params=NO_MAIL)
        delete = await _call(client, "DELETE", f"{BASE}/c1", token)
        get = await _call(client, "GET", f"{BASE}/c1", token)
    assert (put.status, put.body) == (403, FORBIDDEN)
    assert (delete.status, delete.body) == (403, FORBIDDEN)
    assert get.status == 404


async def test_auth_legacy_scopes_split_create_and_update() -> None:
    scopes = ("customer.customer_read", "customer.customer_create")
    async with _client(scopes=scopes) as client:
        token = await _token(client)
        create = await _call(client, "PUT", f"{BASE}/c1", token, _customer(), params=NO_MAIL)
        update = await _call(client, "PUT", f"{BASE}/c1", token, _customer(), params=NO_MAIL)
    assert create.status == 201
    assert (update.status, update.body) == (403, FORBIDDEN)


async def test_tenant_invalid_400_and_other_tenant_403() -> None:
    async with _client() as client:
        token = await _token(client)
        replies = [
            await _call(client, "GET", f"/customer/{tenant}/customers", token)
            for tenant in ("Demo", "de", "1demo", "a" * 17)
        ]
        other = await _call(client, "GET", "/customer/other/customers", token)
    expected = {
        "type": "bad_request",
        "status": 400,
        "message": "The tenant information provided with the request is not valid.",
    }
    assert [(r.status, r.body) for r in replies] == [(400, expected)] * 4
    assert (other.status, other.body) == (403, FORBIDDEN)


# -- customers --------------------------------------------------------------------


async def test_customer_put_creates_then_updates_with_version() -> None:
    async with _client() as client:
        token = await _token(client)
        created = await _call(client, "PUT", f"{BASE}/c1", token, _customer(), params=NO_MAIL)
        first = await _call(client, "GET", f"{BASE}/c1", token)
        updated = await _call(client, "PUT", f"{BASE}/c1", token, _customer(), params=NO_MAIL)
        second = await _call(client, "GET", f"{BASE}/c1", token)
        assert client.app is not None
        store = client.app[EMPORIX_STORE]
    assert (created.status, created.body) == (201, {"id": "c1"})
    assert (updated.status, updated.body) == (204, None)
    assert first.body["metadata"]["version"] == 1
    assert second.body["metadata"]["version"] == 2
    assert (second.body["id"], second.body["customerNumber"]) == ("c1", "c1")
    assert second.body["preferredCurrency"] == "USD"
    assert "mixins" not in second.body
    assert store.customer_writes == {"c1": 2}


async def test_customer_put_clears_omitted_fields_but_keeps_email() -> None:
    async with _client() as client:
        token = await _token(client)
        first = _customer("ada@example.com", company="Analytical", password="s3cret")
        await _call(client, "PUT", f"{BASE}/c1", token, first, params=NO_MAIL)
        await _call(client, "PUT", f"{BASE}/c1", token, {"lastName": "L."}, params=NO_MAIL)
        reply = await _call(client, "GET", f"{BASE}/c1", token, params={"expand": "mixin:*"})
    assert reply.body["lastName"] == "L."
    assert "firstName" not in reply.body and "company" not in reply.body
    assert "password" not in reply.body
    assert reply.body["contactEmail"] == "ada@example.com"
    assert reply.body["mixins"] == {}


async def test_customer_put_bad_id_answers_400_with_field_id() -> None:
    async with _client() as client:
        token = await _token(client)
        replies = [
            await _call(client, "PUT", f"{BASE}/{number}", token, _customer(), params=NO_MAIL)
            for number in ("bad.id", "x" * 67)
        ]
        long_ok = await _call(client, "PUT", f"{BASE}/{'x' * 66}", token, _customer())
    for reply in replies:
        assert reply.status == 400
        assert reply.body["type"] == "bad_request"
        assert [d["field"] for d in reply.body["details"]] == ["id"]
    assert long_ok.status == 201


async def test_customer_invalid_body_answers_400() -> None:
    async with _client() as client:
        token = await _token(client)
        malformed = await _call(client, "PUT", f"{BASE}/c1", token, b"{nope")
        array = await _call(client, "PUT", f"{BASE}/c1", token, [1])
        email = await _call(client, "PUT", f"{BASE}/c1", token, _customer("no-at-sign.example"))
        kinds = await _call(client, "PUT", f"{BASE}/c1", token, {"active": "yes", "type": "X"})
    assert (malformed.status, array.status) == (400, 400)
    assert email.status == 400
    assert [d["field"] for d in email.body["details"]] == ["contactEmail"]
    assert "no-at-sign" not in orjson.dumps(email.body).decode()
    assert {d["field"] for d in kinds.body["details"]} == {"active", "type"}


async def test_customer_duplicate_email_answers_409_conflict_resource() -> None:
    store = EmporixStore()
    store.seed_customer("holder", {"contactEmail": "Taken@Example.com", "firstName": "H"})
    async with _client(store) as client:
        token = await _token(client)
        clash = await _call(client, "PUT", f"{BASE}/c2", token, _customer("taken@example.COM"))
        post = await _call(client, "POST", BASE, token, _customer("TAKEN@example.com"))
        own = await _call(client, "PUT", f"{BASE}/holder", token, _customer("taken@example.com"))
    message = "Duplicate account 'taken@example.COM' for tenant 'demo'."
    assert (clash.status, clash.body) == (
        409,
        {"status": 409, "type": "conflict_resource", "message": message},
    )
    assert (post.status, post.body["type"]) == (409, "conflict_resource")
    assert own.status == 204
    assert set(store.customers) == {"holder"}


async def test_customer_stale_version_answers_409_optimistic_lock() -> None:
    async with _client() as client:
        token = await _token(client)
        path = f"{BASE}/c1"
        await _call(client, "PUT", path, token, _customer(), params=NO_MAIL)
        await _call(client, "PUT", path, token, _customer(), params=NO_MAIL)
        stale = await _call(client, "PUT", path, token, _customer(metadata={"version": 1}))
        fresh = await _call(client, "PUT", path, token, _customer(metadata={"version": 2}))
        current = await _call(client, "GET", path, token)
    assert (stale.status, stale.body) == (409, VERSION_CONFLICT)
    assert fresh.status == 204
    assert current.body["metadata"]["version"] == 3


async def test_customer_version_conflict_rate_bumps_stored_version() -> None:
    async with _client(version_conflict_rate=1.0) as client:
        token = await _token(client)
        path = f"{BASE}/c1"
        created = await _call(client, "PUT", path, token, _customer(), params=NO_MAIL)
        conflict = await _call(client, "PUT", path, token, _customer(), params=NO_MAIL)
        current = await _call(client, "GET", path, token)
        stats = await _admin(client, "/_admin/stats")
        assert client.app is not None
        writes = client.app[EMPORIX_STORE].customer_writes
    assert created.status == 201
    assert (conflict.status, conflict.body) == (409, VERSION_CONFLICT)
    assert current.body["metadata"]["version"] == 2
    assert writes == {"c1": 1}
    assert stats["version_conflicts"] == 1


async def test_customer_notification_sent_unless_param_false() -> None:
    async with _client() as client:
        token = await _token(client)
        await _call(client, "PUT", f"{BASE}/c1", token, _customer("a@example.com"))
        await _call(client, "PUT", f"{BASE}/c1", token, _customer("a@example.com"))
        await _call(client, "PUT", f"{BASE}/c2", token, _customer("b@example.com"), params=NO_MAIL)
        await _call(
            client, "PUT", f"{BASE}/c3", token, _customer("c@example.com"),
            params={"sendPasswordResetNotifications": "FALSE"},
        )  # fmt: skip
        await _call(client, "PUT", f"{BASE}/c4", token, _customer())
        posted = await _call(client, "POST", BASE, token, _customer("d@example.com", id="c5"))
        await _call(client, "POST", BASE, token, _customer("e@example.com"), params=NO_MAIL)
        bad = await _call(
            client, "PUT", f"{BASE}/c6", token, _customer(),
            params={"sendPasswordResetNotifications": "maybe"},
        )  # fmt: skip
        sent = await _admin(client, "/_admin/notifications")
    assert posted.status == 201
    assert sent == [
        {"customerNumber": "c1", "kind": "password_reset"},
        {"customerNumber": "c5", "kind": "password_reset"},
    ]
    assert (bad.status, bad.body["details"][0]["field"]) == (400, "sendPasswordResetNotifications")


async def test_customer_post_generates_or_uses_id_and_refuses_existing() -> None:
    async with _client() as client:
        token = await _token(client)
        generated = await _call(client, "POST", BASE, token, _customer(), params=NO_MAIL)
        custom = await _call(client, "POST", BASE, token, _customer(id="mine"), params=NO_MAIL)
        again = await _call(client, "POST", BASE, token, _customer(id="mine"), params=NO_MAIL)
        read = await _call(client, "GET", f"{BASE}/{generated.body['id']}", token)
    assert generated.status == 201 and generated.body["id"].isdigit()
    assert (custom.status, custom.body) == (201, {"id": "mine"})
    assert (again.status, again.body["type"]) == (409, "conflict_resource")
    assert read.status == 200


async def test_customer_get_missing_answers_documented_404() -> None:
    async with _client() as client:
        reply = await _call(client, "GET", f"{BASE}/ghost", await _token(client))
    assert (reply.status, reply.body) == (
        404,
        {
            "status": 404,
            "type": "application/json",
            "message": "Customer not Found",
            "details": [{"message": "Couldn't find a customer with customerNumber 'ghost'"}],
        },
    )


async def test_customer_list_filters_by_email_any_case_with_count() -> None:
    store = EmporixStore()
    for number, email in [("c1", "Alice@Example.com"), ("c2", "bob@example.com"), ("c3", None)]:
        store.seed_customer(number, {"firstName": number, "contactEmail": email})
    async with _client(store) as client:
        token = await _token(client)
        found = await _call(
            client, "GET", BASE, token, params={"q": "contactEmail:ALICE@example.COM"}
        )
        both = await _call(
            client, "GET", BASE, token, params={"q": "id:c2 contactEmail:BOB@example.com"},
            headers={"X-Total-Count": "true"},
        )  # fmt: skip
        none = await _call(client, "GET", BASE, token, params={"q": "id:c1 firstName:c2"})
        page = await _call(
            client,
            "GET",
            BASE,
            token,
            params={"pageNumber": "2", "pageSize": "2", "sort": "id:desc"},
        )
        bad = await _call(client, "GET", BASE, token, params={"q": "no colon"})
    assert [c["id"] for c in found.body] == ["c1"]
    assert found.headers["Count"] == "1" and "X-Total-Count" not in found.headers
    assert [c["id"] for c in both.body] == ["c2"]
    assert both.headers["X-Total-Count"] == "1"
    assert (none.body, none.headers["Count"]) == ([], "0")
    assert [c["id"] for c in page.body] == ["c1"] and page.headers["Count"] == "3"
    assert (bad.status, bad.body["details"][0]["field"]) == (400, "q")


async def test_customer_delete_202_then_tombstone_409() -> None:
    async with _client() as client:
        token = await _token(client)
        path = f"{BASE}/c1"
        await _call(client, "PUT", path, token, _customer("a@example.com"), params=NO_MAIL)
        await _call(client, "PUT", f"{path}/addresses/a1", token, _address())
        deleted = await _call(client, "DELETE", path, token)
        gone = await _call(client, "GET", path, token)
        reuse = await _call(client, "PUT", path, token, _customer(), params=NO_MAIL)
        again = await _call(client, "DELETE", path, token)
        freed = await _call(client, "PUT", f"{BASE}/c2", token, _customer("a@example.com"))
        assert client.app is not None
        store = client.app[EMPORIX_STORE]
    assert (deleted.status, deleted.body) == (202, None)
    assert gone.status == 404
    assert (reuse.status, reuse.body["type"]) == (409, "conflict_resource")
    assert again.status == 404
    assert freed.status == 201
    assert "c1" not in store.addresses and "c1" in store.tombstones


# -- addresses --------------------------------------------------------------------


async def test_address_put_creates_then_updates() -> None:
    store = EmporixStore()
    store.seed_customer("c1", {"firstName": "Ada"})
    async with _client(store) as client:
        token = await _token(client)
        path = f"{BASE}/c1/addresses/c1-default"
        created = await _call(client, "PUT", path, token, _address(tags=["BILLING"]))
        updated = await _call(client, "PUT", path, token, {"city": "Berlin"})
        read = await _call(client, "GET", path, token)
        listed = await _call(client, "GET", f"{BASE}/c1/addresses", token)
        stale = await _call(client, "PUT", path, token, _address(metadata={"version": 1}))
    assert (created.status, created.body) == (201, {"id": "c1-default"})
    assert (updated.status, updated.body) == (204, None)
    assert read.body["contactName"] == "Ada Lovelace"  # kept: required on the resource
    assert read.body["city"] == "Berlin" and "street" not in read.body
    assert read.body["tags"] == [] and read.body["metadata"]["version"] == 2
    assert [a["id"] for a in listed.body] == ["c1-default"]
    assert (stale.status, stale.body) == (409, VERSION_CONFLICT)
    assert store.address_writes == {("c1", "c1-default"): 2}


async def test_address_create_validates_contact_name_and_country() -> None:
    store = EmporixStore()
    store.seed_customer("c1", {})
    async with _client(store) as client:
        token = await _token(client)
        path = f"{BASE}/c1/addresses/a1"
        nameless = await _call(client, "PUT", path, token, {"country": "DE"})
        countries = [
            await _call(client, "PUT", path, token, _address(country=country))
            for country in ("DEU", "D", "1A")
        ]
        ok = await _call(client, "PUT", path, token, _address(country="FR"))
    assert nameless.status == 400
    assert [d["field"] for d in nameless.body["details"]] == ["contactName"]
    for reply in countries:
        assert reply.status == 400
        assert [d["field"] for d in reply.body["details"]] == ["country"]
    assert ok.status == 201


async def test_address_missing_customer_answers_404() -> None:
    async with _client() as client:
        token = await _token(client)
        put = await _call(client, "PUT", f"{BASE}/ghost/addresses/a1", token, _address())
        listed = await _call(client, "GET", f"{BASE}/ghost/addresses", token)
    for reply in (put, listed):
        assert reply.status == 404
        assert reply.body["type"] == "resource_not_found"


async def test_address_is_default_is_exclusive_and_shown_on_customer() -> None:
    store = EmporixStore()
    store.seed_customer("c1", {})
    async with _client(store) as client:
        token = await _token(client)
        path = f"{BASE}/c1/addresses"
        await _call(client, "PUT", f"{path}/a1", token, _address(isDefault=True))
        await _call(client, "PUT", f"{path}/a2", token, _address(isDefault=True, city="Bonn"))
        customer = await _call(client, "GET", f"{BASE}/c1", token)
        expanded = await _call(client, "GET", f"{BASE}/c1", token, params={"expand": "addresses"})
    assert customer.body["defaultAddress"]["id"] == "a2"
    assert "addresses" not in customer.body
    flags = {a["id"]: a["isDefault"] for a in expanded.body["addresses"]}
    assert flags == {"a1": False, "a2": True}


async def test_address_delete_204_then_404() -> None:
    store = EmporixStore()
    store.seed_customer("c1", {})
    async with _client(store) as client:
        token = await _token(client)
        path = f"{BASE}/c1/addresses/a1"
        await _call(client, "PUT", path, token, _address())
        deleted = await _call(client, "DELETE", path, token)
        again = await _call(client, "DELETE", path, token)
        read = await _call(client, "GET", path, token)
    assert (deleted.status, deleted.body) == (204, None)
    assert again.status == 404
    assert (read.status, read.body) == (
        404,
        {
            "status": 404,
            "type": "resource_not_found",
            "message": "Address a1 of customer c1 not found.",
        },
    )


async def test_address_tags_add_and_remove() -> None:
    store = EmporixStore()
    store.seed_customer("c1", {})
    async with _client(store) as client:
        token = await _token(client)
        path = f"{BASE}/c1/addresses/a1"
        await _call(client, "PUT", path, token, _address(tags=["BILLING"]))
        added = await _call(
            client, "POST", f"{path}/tags", token, params={"tags": "SHIPPING,BILLING"}
        )
        removed = await _call(client, "DELETE", f"{path}/tags", token, params={"tags": "BILLING"})
        missing = await _call(client, "POST", f"{path}/tags", token)
        read = await _call(client, "GET", path, token)
    assert (added.status, removed.status) == (204, 204)
    assert missing.status == 400
    assert read.body["tags"] == ["SHIPPING"]
    assert read.body["metadata"]["version"] == 3


async def test_address_post_generates_id_and_refuses_existing() -> None:
    store = EmporixStore()
    store.seed_customer("c1", {})
    async with _client(store) as client:
        token = await _token(client)
        path = f"{BASE}/c1/addresses"
        generated = await _call(client, "POST", path, token, _address())
        given = await _call(client, "POST", path, token, _address(id="home"))
        again = await _call(client, "POST", path, token, _address(id="home"))
    assert generated.status == 201 and len(generated.body["id"]) == 10
    assert (given.status, given.body) == (201, {"id": "home"})
    assert (again.status, again.body["type"]) == (409, "conflict_resource")
    assert set(store.addresses["c1"]) == {generated.body["id"], "home"}


# -- faults and admin -------------------------------------------------------------


async def test_faults_throttle_answers_429_with_retry_after_after_auth() -> None:
    async with _client(faults=FaultPlan(throttle_rate=1.0, retry_after=2)) as client:
        token = await _token(client)  # the token endpoint is never throttled
        anonymous = await _call(client, "GET", BASE, None)
        throttled = await _call(client, "GET", BASE, token)
        stats = await _admin(client, "/_admin/stats")
    assert anonymous.status == 401
    assert throttled.status == 429 and throttled.headers["Retry-After"] == "2"
    assert throttled.body["status"] == 429 and throttled.body["type"] == "too_many_requests"
    assert stats["injected"] == {"429": 1}


async def test_faults_error_answers_5xx_error_message_and_writes_nothing() -> None:
    async with _client(faults=FaultPlan(fail_requests=(1,), error_statuses=(503,))) as client:
        token = await _token(client)
        failed = await _call(client, "PUT", f"{BASE}/c1", token, _customer(), params=NO_MAIL)
        retried = await _call(client, "PUT", f"{BASE}/c1", token, _customer(), params=NO_MAIL)
        assert client.app is not None
        injected = client.app[EMPORIX_FAULTS].injected
    assert failed.status == 500
    assert failed.body["type"] == "internal_server_error" and failed.body["status"] == 500
    assert retried.status == 201
    assert injected == {"500": 1}


async def test_faults_reset_loses_the_answer_not_the_write() -> None:
    async with _client(faults=FaultPlan(reset_rate=1.0)) as client:
        token = await _token(client)  # the token endpoint never gets faults
        async with client.put(
            f"{BASE}/c1",
            json=_customer(),
            params=NO_MAIL,
            headers={"Authorization": f"Bearer {token}"},
        ) as response:
            assert response.status == 201
            with pytest.raises(aiohttp.ClientPayloadError):
                await response.read()
        # A 204 has no body to cut: the connection closes before the headers (and
        # aiohttp may re-send the idempotent PUT once by itself: one more write).
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await _call(client, "PUT", f"{BASE}/c1", token, _customer(), params=NO_MAIL)
        snapshot = await _admin(client, "/_admin/store")
        stats = await _admin(client, "/_admin/stats")
    assert [c["customerNumber"] for c in snapshot] == ["c1"]
    assert snapshot[0]["metadata"]["version"] == stats["customer_writes"] >= 2
    assert stats["injected"] == {"reset": stats["customer_writes"]}


async def test_faults_truncated_and_malformed_reads() -> None:
    plan = FaultPlan(seed=2, truncate_rate=0.5, malformed_rate=0.5)
    async with _client() as seeding:
        token = await _token(seeding)
        await _call(seeding, "PUT", f"{BASE}/c1", token, _customer(), params=NO_MAIL)
        assert seeding.app is not None
        store = seeding.app[EMPORIX_STORE]
    async with _client(store, faults=plan) as client:
        token = await _token(client)
        bodies = []
        for path in (f"{BASE}/c1", BASE, f"{BASE}/c1/addresses", f"{BASE}/c1") * 2:
            async with client.get(path, headers={"Authorization": f"Bearer {token}"}) as resp:
                assert (resp.status, resp.content_type) == (200, "application/json")
                bodies.append(await resp.read())
        missing = await _call(client, "GET", f"{BASE}/nope", token)
        stats = await _admin(client, "/_admin/stats")
    assert missing.status == 404  # an error answer is never spoiled
    malformed = [body for body in bodies if body == MALFORMED_BODY]
    truncated = [body for body in bodies if body != MALFORMED_BODY]
    assert malformed and truncated
    for body in truncated:
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(body)
    assert stats["injected"] == {"malformed": len(malformed), "truncated": len(truncated)}


async def test_admin_store_notifications_and_stats() -> None:
    async with _client() as client:
        token = await _token(client)
        await _call(client, "PUT", f"{BASE}/b", token, _customer("b@example.com"))
        await _call(client, "PUT", f"{BASE}/a", token, _customer(), params=NO_MAIL)
        await _call(client, "PUT", f"{BASE}/a/addresses/z", token, _address())
        await _call(client, "PUT", f"{BASE}/a/addresses/y", token, _address())
        await _call(client, "GET", BASE, None)
        snapshot = await _admin(client, "/_admin/store")
        sent = await _admin(client, "/_admin/notifications")
        stats = await _admin(client, "/_admin/stats")
        assert client.app is not None
        counts = client.app[EMPORIX_COUNTS]
    assert [c["customerNumber"] for c in snapshot] == ["a", "b"]
    assert [a["id"] for a in snapshot[0]["addresses"]] == ["y", "z"]
    assert snapshot[1]["addresses"] == []
    assert sent == [{"customerNumber": "b", "kind": "password_reset"}]
    assert stats == {
        "requests": 5,
        "token_calls": 1,
        "customer_writes": 2,
        "address_writes": 2,
        "version_conflicts": 0,
        "injected": {},
    }
    assert counts["tokens_issued"] == 1


def test_config_rejects_bad_values_and_hides_secret() -> None:
    for bad in (
        {"tenant": "Demo"},
        {"tenant": "ab"},
        {"token_lifetime": 0},
        {"revoke_after_requests": 0},
        {"version_conflict_rate": 1.5},
    ):
        with pytest.raises(ValueError):
            EmporixEmulatorConfig(**bad)
    assert "demo-emporix-secret" not in repr(EmporixEmulatorConfig())


def test_store_seed_and_snapshot_are_sorted() -> None:
    store = EmporixStore()
    store.seed_customer("z", {"contactEmail": "Z@example.com", "metadata": {"version": 7}})
    store.seed_customer("a", {})
    snapshot = store.snapshot()
    assert [c["id"] for c in snapshot] == ["a", "z"]
    assert snapshot[1]["metadata"]["version"] == 7 and snapshot[0]["metadata"]["version"] == 1
    assert store.email_owner("z@EXAMPLE.com") == "z"
    assert store.customer_writes == {}


# -- variants: merge patch, seeded customers, address PUT that does not create -----

MERGE = {"Content-Type": "application/merge-patch+json"}
SEED = EmporixSeed(
    number="13869000",
    contactEmail="ada@example.com",
    firstName="Ada",
    lastName="Lovelace",
    fields={
        "preferredLanguage": "de_AT",
        "b2b": {"legalEntity": {"id": "LE-1"}, "note": "keep"},
        "mixins": {"loyalty": {"tier": "gold"}},
        "metadata": {"mixins": {"loyalty": "https://x.example/loyalty.json"}},
    },
)


async def test_customer_merge_patch_merges_and_null_removes() -> None:
    async with _client(customers=(SEED,)) as client:
        token = await _token(client)
        patch = {
            "lastName": "King",
            "company": None,
            "b2b": {"note": None},
            "mixins": {"man": {"role": "buyer"}},
            "metadata": {"mixins": {"man": "https://x.example/man.json"}},
        }
        put = await _call(
            client, "PUT", f"{BASE}/13869000", token, patch, params=NO_MAIL, headers=MERGE
        )
        reply = await _call(client, "GET", f"{BASE}/13869000", token, params={"expand": "mixin:*"})
    assert put.status == 204
    body = reply.body
    assert (body["firstName"], body["lastName"], body["preferredLanguage"]) == (
        "Ada",
        "King",
        "de_AT",
    )
    assert body["b2b"] == {"legalEntity": {"id": "LE-1"}}
    assert body["mixins"] == {"loyalty": {"tier": "gold"}, "man": {"role": "buyer"}}
    assert set(body["metadata"]["mixins"]) == {"loyalty", "man"}
    assert body["metadata"]["version"] == 2


async def test_customer_json_put_still_replaces_a_seeded_customer() -> None:
    async with _client(customers=(SEED,)) as client:
        token = await _token(client)
        body = _customer("ada@example.com")
        await _call(client, "PUT", f"{BASE}/13869000", token, body, params=NO_MAIL)
        reply = await _call(client, "GET", f"{BASE}/13869000", token, params={"expand": "mixin:*"})
    assert reply.body["preferredLanguage"] == "en_US"
    assert "b2b" not in reply.body and reply.body["mixins"] == {}


async def test_customer_merge_patch_checks_a_sent_version_and_creates_when_absent() -> None:
    async with _client(customers=(SEED,)) as client:
        token = await _token(client)
        stale = {"active": False, "metadata": {"version": 7}}
        conflict = await _call(
            client, "PUT", f"{BASE}/13869000", token, stale, params=NO_MAIL, headers=MERGE
        )
        new = _customer("bob@example.com", title=None)
        created = await _call(
            client, "PUT", f"{BASE}/c9", token, new, params=NO_MAIL, headers=MERGE
        )
    assert (conflict.status, conflict.body) == (409, VERSION_CONFLICT)
    assert created.status == 201


async def test_address_put_variant_answers_address_not_found_and_post_adds_it() -> None:
    async with _client(address_put_creates=False) as client:
        token = await _token(client)
        await _call(client, "PUT", f"{BASE}/c1", token, _customer("a@b.cd"), params=NO_MAIL)
        missing = await _call(client, "PUT", f"{BASE}/c1/addresses/c1-default", token, _address())
        posted = await _call(
            client, "POST", f"{BASE}/c1/addresses", token, _address(id="c1-default")
        )
        updated = await _call(
            client, "PUT", f"{BASE}/c1/addresses/c1-default", token, _address(city="Linz")
        )
        no_customer = await _call(
            client, "PUT", f"{BASE}/c2/addresses/c2-default", token, _address()
        )
    assert missing.status == 404
    assert missing.body["message"] == "Address c1-default of customer c1 not found."
    assert (posted.status, updated.status) == (201, 204)
    assert no_customer.body["message"] == "Customer c2 not found."
