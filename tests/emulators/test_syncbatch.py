"""Tests of the sync-batch emulator over real loopback HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from pipeline.emulators.faults import MALFORMED_BODY, FaultPlan
from pipeline.emulators.syncbatch import (
    SYNCBATCH_FAULTS,
    SYNCBATCH_STORE,
    Principal,
    SyncBatchEmulatorConfig,
    SyncBatchStore,
    create_syncbatch_app,
)

URL = "/sync/customers/batch"
TOKEN = "demo-syncbatch-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}

Client = TestClient[Any, Any]


@asynccontextmanager
async def _client(store: SyncBatchStore | None = None, **config: Any) -> AsyncIterator[Client]:
    app = create_syncbatch_app(SyncBatchEmulatorConfig(**config), store)
    client: Client = TestClient(TestServer(app))
    async with client:
        yield client


def _account(account_id: int, customer_id: int, user: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": account_id, "index": 0, "refId": customer_id, "userName": user,
        "email": user, "profileUrl": f"https://shop.example.com/users/{account_id}",
        "roles": ["buyer"], "permissions": [], **extra,
    }  # fmt: skip


def _customer(customer_id: int, *accounts: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": customer_id, "index": 0, "name": f"Org {customer_id}", "country": "DE",
        "type": "External", "accounts": list(accounts), **extra,
    }  # fmt: skip


async def _post(
    client: Client, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    async with client.post(URL, json=body, headers=BEARER if headers is None else headers) as resp:
        return resp.status, await resp.json()


async def _admin(client: Client, path: str) -> Any:
    async with client.get(path) as response:
        assert response.status == 200
        return await response.json()


async def test_syncbatch_auth_ladder() -> None:
    principals = {
        "admin": Principal(("Admin",), ("CanAccess", "CanAdd")),
        "user": Principal(("User",), ("CanAccess", "CanAdd")),
        "half": Principal(("Admin",), ("CanAccess",)),
    }
    body = {"customers": [_customer(1, _account(10, 1, "a@example.com"))]}
    async with _client(principals=principals) as client:
        for headers, status, message in [
            ({}, 401, "Not Authenticated"),
            ({"Authorization": "Bearer nope"}, 401, "Not Authenticated"),
            ({"Authorization": "Bearer user"}, 403, "Invalid Role"),
            ({"Authorization": "Bearer half"}, 403, "Invalid Permission"),
        ]:
            got, reply = await _post(client, body, headers)
            assert (got, reply["responseStatus"]["message"]) == (status, message)
        status, reply = await _post(client, body, {})
        assert reply["responseStatus"]["errorCode"] == "Unauthorized"
        assert (await _post(client, body, {"Authorization": "Bearer admin"}))[0] == 200


async def test_syncbatch_admin_superuser_skips_permissions() -> None:
    principals = {"half": Principal(("Admin",), ())}
    body = {"customers": [_customer(1, _account(10, 1, "a@example.com"))]}
    headers = {"Authorization": "Bearer half"}
    async with _client(principals=principals, admin_is_superuser=True) as client:
        assert (await _post(client, body, headers))[0] == 200


async def test_syncbatch_no_auth_required_when_disabled() -> None:
    async with _client(require_auth=False) as client:
        assert (await _post(client, {"customers": []}, {}))[0] == 200


async def test_syncbatch_validation_names_fields() -> None:
    customers = [
        _customer(1, _account(10, 1, "a@example.com")),
        {"index": 1, "accounts": [_account(11, 2, "")]},
        _customer(3, {"id": 12, "refId": 3}, type="Alien"),
        {"id": 4, "name": "No accounts"},
    ]
    async with _client() as client:
        status, reply = await _post(client, {"customers": customers})
        store = client.app[SYNCBATCH_STORE] if client.app is not None else None
    assert status == 400
    errors = reply["responseStatus"]["errors"]
    fields = {(e["fieldName"], e["errorCode"]) for e in errors}
    assert fields == {
        ("Customers[1].Id", "NotEmpty"),
        ("Customers[1].Name", "NotEmpty"),
        ("Customers[1].Accounts[0].UserName", "NotEmpty"),
        ("Customers[2].Type", "Enum"),
        ("Customers[2].Accounts[0].UserName", "NotEmpty"),
        ("Customers[2].Accounts[0].ProfileUrl", "NotEmpty"),
        ("Customers[2].Accounts[0].Roles", "NotNull"),
        ("Customers[2].Accounts[0].Permissions", "NotNull"),
        ("Customers[3].Accounts", "NotNull"),
    }
    assert reply["responseStatus"]["errorCode"] == errors[0]["errorCode"]
    assert reply["responseStatus"]["message"] == errors[0]["message"]
    assert store is not None and store.customers == {}


async def test_syncbatch_validation_ref_id_and_types() -> None:
    customers = [_customer(1, _account(10, 2, "a@example.com"), _account(11, 1, "b", roles="x"))]
    async with _client() as client:
        status, reply = await _post(client, {"customers": customers})
    assert status == 400
    fields = {(e["fieldName"], e["errorCode"]) for e in reply["responseStatus"]["errors"]}
    assert fields == {
        ("Customers[0].Accounts[0].RefId", "Equal"),
        ("Customers[0].Accounts[1].Roles", "SerializationException"),
    }


async def test_syncbatch_malformed_json_is_serialization_error() -> None:
    async with _client() as client:
        for payload in (b"{not json", b"[1, 2]", b'{"customers": 5}'):
            async with client.post(URL, data=payload, headers=BEARER) as response:
                assert response.status == 400
                reply = await response.json()
            assert reply["responseStatus"]["errorCode"] == "SerializationException"


async def test_syncbatch_binds_any_case() -> None:
    account = {
        "ID": 10, "RefId": 1, "USERNAME": "a@example.com", "ProfileUrl": "https://x/10",
        "Roles": ["buyer"], "permissions": ["CanShop"], "unknownField": 1,
    }  # fmt: skip
    body = {"Customers": [{"Id": 1, "NAME": "Org", "Type": "internal", "Accounts": [account]}]}
    async with _client() as client:
        status, reply = await _post(client, body)
    assert status == 200
    echoed = reply[0]["customer"]
    assert echoed["type"] == "Internal"
    assert echoed["accounts"][0]["userName"] == "a@example.com"
    assert "unknownField" not in echoed["accounts"][0]


async def test_syncbatch_success_echo_in_order() -> None:
    customers = [_customer(i, _account(100 + i, i, f"u{i}@example.com")) for i in (5, 3, 9)]
    async with _client() as client:
        status, reply = await _post(client, {"customers": customers})
        snapshot = await _admin(client, "/_admin/store")
    assert status == 200
    assert [(r["index"], r["customer"]["id"], r["responseStatus"]) for r in reply] == [
        (0, 5, None), (1, 3, None), (2, 9, None),
    ]  # fmt: skip
    assert reply[0]["customer"] == customers[0]
    assert [c["id"] for c in snapshot] == [3, 5, 9]
    assert snapshot[0]["accounts"][0]["userName"] == "u3@example.com"


async def test_syncbatch_upsert_merges_accounts() -> None:
    store = SyncBatchStore()
    async with _client(store) as client:
        first = _customer(1, _account(10, 1, "a@example.com"), _account(11, 1, "b@example.com"))
        assert (await _post(client, {"customers": [first]}))[0] == 200
        second = _customer(1, _account(11, 1, "b2@example.com"), name="Renamed")
        assert (await _post(client, {"customers": [second]}))[0] == 200
        snapshot = await _admin(client, "/_admin/store")
    assert len(snapshot) == 1 and snapshot[0]["name"] == "Renamed"
    assert [(a["id"], a["userName"]) for a in snapshot[0]["accounts"]] == [
        (10, "a@example.com"), (11, "b2@example.com"),
    ]  # fmt: skip
    assert store.writes == {10: 1, 11: 2}
    assert "accounts" not in store.customers[1]


async def test_syncbatch_resend_is_idempotent() -> None:
    body = {"customers": [_customer(1, _account(10, 1, "a@example.com"))]}
    async with _client() as client:
        first = await _post(client, body)
        second = await _post(client, body)
        snapshot = await _admin(client, "/_admin/store")
        stats = await _admin(client, "/_admin/stats")
    assert first == second
    assert len(snapshot) == 1 and len(snapshot[0]["accounts"]) == 1
    assert stats == {"requests": 2, "batches": 2, "injected": {}, "writes": 2}


async def test_syncbatch_user_name_taken_is_item_error() -> None:
    async with _client() as client:
        await _post(client, {"customers": [_customer(1, _account(10, 1, "Taken@Example.com"))]})
        customers = [
            _customer(2, _account(20, 2, "free@example.com"), _account(21, 2, "taken@example.com")),
            _customer(3, _account(30, 3, "other@example.com")),
        ]
        status, reply = await _post(client, {"customers": customers})
        snapshot = await _admin(client, "/_admin/store")
    assert status == 200
    failed = reply[0]["responseStatus"]
    assert failed["errorCode"] == "UserNameAlreadyExists"
    assert "taken" not in failed["message"].lower()
    assert failed["errors"][0]["fieldName"] == "Customers[0].Accounts[1].UserName"
    assert reply[1]["responseStatus"] is None
    assert [c["id"] for c in snapshot] == [1, 3]  # nothing of the failed item stored


async def test_syncbatch_reject_user_names_permanent_item_error() -> None:
    async with _client(reject_user_names=("blocked@example.com",)) as client:
        customers = [
            _customer(1, _account(10, 1, "ok@example.com")),
            _customer(
                2, _account(20, 2, "ok2@example.com"), _account(21, 2, "blocked@example.com")
            ),
        ]
        for _ in range(2):
            status, reply = await _post(client, {"customers": customers})
            assert status == 200
            assert reply[0]["responseStatus"] is None
            error = reply[1]["responseStatus"]
            assert error["errorCode"] == "ValidationException"
            assert "User Name" in error["message"] and "blocked" not in error["message"]
        assert client.app is not None
        store = client.app[SYNCBATCH_STORE]
    assert set(store.customers) == {1}
    assert 20 not in store.accounts


async def test_syncbatch_item_error_rate_transient() -> None:
    customers = [_customer(i, _account(100 + i, i, f"u{i}@example.com")) for i in range(100)]
    async with _client(item_error_rate=0.3, faults=FaultPlan(seed=4)) as client:
        status, reply = await _post(client, {"customers": customers})
        assert client.app is not None
        store = client.app[SYNCBATCH_STORE]
    assert status == 200
    failed = [r["index"] for r in reply if r["responseStatus"] is not None]
    assert 15 <= len(failed) <= 45
    assert {r["responseStatus"]["errorCode"] for r in reply if r["responseStatus"]} == {
        "TimeoutException"
    }
    assert set(store.customers) == set(range(100)) - set(failed)
    assert sum(store.writes.values()) == 100 - len(failed)


async def test_syncbatch_max_batch_answers_400() -> None:
    async with _client(max_batch=3) as client:
        customers = [_customer(i, _account(i, i, f"u{i}@example.com")) for i in range(4)]
        status, reply = await _post(client, {"customers": customers})
        assert (status, reply["responseStatus"]["errorCode"]) == (400, "ArgumentException")
        assert (await _post(client, {"customers": customers[:3]}))[0] == 200


async def test_syncbatch_faults_after_auth_with_service_stack_body() -> None:
    plan = FaultPlan(fail_requests=(1,), throttle_rate=1.0, retry_after=3)
    body = {"customers": [_customer(1, _account(10, 1, "a@example.com"))]}
    async with _client(faults=plan) as client:
        assert (await _post(client, body, {}))[0] == 401
        async with client.post(URL, json=body, headers=BEARER) as response:
            assert response.status == 500
            reply = await response.json()
        assert reply["responseStatus"]["errorCode"] == "InvalidOperationException"
        async with client.post(URL, json=body, headers=BEARER) as response:
            assert (response.status, response.headers["Retry-After"]) == (429, "3")
        stats = await _admin(client, "/_admin/stats")
        assert client.app is not None and client.app[SYNCBATCH_FAULTS].requests == 2
    assert stats == {"requests": 3, "batches": 0, "injected": {"500": 1, "429": 1}, "writes": 0}


async def test_syncbatch_reset_mid_body_after_the_batch_was_stored() -> None:
    body = {"customers": [_customer(1, _account(10, 1, "a@example.com"))]}
    async with _client(faults=FaultPlan(reset_rate=1.0)) as client:
        async with client.post(URL, json=body, headers=BEARER) as response:
            assert response.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                await response.read()
        async with client.post(URL, json=body, headers=BEARER) as response:  # the retry
            with pytest.raises(aiohttp.ClientPayloadError):
                await response.read()
        snapshot = await _admin(client, "/_admin/store")
        stats = await _admin(client, "/_admin/stats")
    assert [c["id"] for c in snapshot] == [1]
    assert [a["userName"] for a in snapshot[0]["accounts"]] == ["a@example.com"]
    assert stats == {"requests": 2, "batches": 2, "injected": {"reset": 2}, "writes": 2}


async def test_syncbatch_truncated_and_malformed_answers_after_storing() -> None:
    plan = FaultPlan(seed=1, truncate_rate=0.5, malformed_rate=0.5)
    async with _client(faults=plan) as client:
        bodies = []
        for i in range(6):
            body = {"customers": [_customer(i, _account(10 + i, i, f"u{i}@example.com"))]}
            async with client.post(URL, json=body, headers=BEARER) as response:
                assert response.status == 200
                bodies.append(await response.read())
        async with client.post(URL, json={"customers": None}, headers=BEARER) as response:
            assert response.status == 400
            assert (await response.json())["responseStatus"]["errorCode"] == "NotNull"
        stats = await _admin(client, "/_admin/stats")
    malformed = sum(body == MALFORMED_BODY for body in bodies)
    assert 0 < malformed < 6
    for raw in bodies:
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(raw)
    assert stats["injected"] == {"malformed": malformed, "truncated": 6 - malformed}
    assert stats["writes"] == 6


async def test_syncbatch_repr_hides_tokens() -> None:
    assert TOKEN not in repr(SyncBatchEmulatorConfig())


async def test_a_pascal_case_host_that_leaves_out_defaults_answers_so() -> None:
    body = {
        "customers": [
            _customer(1, _account(10, 1, "a@example.com")),
            {**_customer(2, _account(20, 2, "b@example.com")), "index": 1},
        ]
    }
    config: dict[str, Any] = {
        "casing": "pascal",
        "exclude_defaults": True,
        "empty_error_code": True,
    }
    async with _client(require_auth=False, **config) as client:
        status, answer = await _post(client, body, {})
        bad, error = await _post(client, {"customers": [{"id": 3, "index": 0}]}, {})
    assert status == 200
    assert "Index" not in answer[0]  # index 0 left out
    assert answer[1]["Index"] == 1
    assert answer[0]["ResponseStatus"] == {"ErrorCode": ""}
    assert answer[0]["Customer"]["Id"] == 1
    assert bad == 400
    assert error["ResponseStatus"]["Errors"][0]["FieldName"].startswith("Customers[0]")


@pytest.mark.parametrize("clash", ["overwrite", "keep", "refuse"])
async def test_an_id_holding_another_user_is_overwritten_kept_or_refused(clash: str) -> None:
    store = SyncBatchStore()
    async with _client(store, id_clash=clash) as client:
        await _post(client, {"customers": [_customer(1, _account(5, 1, "alice@x.io"))]})
        status, body = await _post(
            client,
            {"customers": [_customer(1, _account(6, 1, "carl@x.io"), _account(5, 1, "bob@x.io"))]},
        )
    assert status == 200
    (result,) = body
    echoed = [a["userName"] for a in result["customer"]["accounts"]]
    held = {a["id"]: a["userName"] for a in store.accounts.values()}
    if clash == "overwrite":
        assert result["responseStatus"] is None
        assert echoed == ["carl@x.io", "bob@x.io"]
        assert held == {5: "bob@x.io", 6: "carl@x.io"}
    elif clash == "keep":
        assert result["responseStatus"] is None
        assert echoed == ["carl@x.io", "alice@x.io"]  # the answer shows who holds id 5
        assert held == {5: "alice@x.io", 6: "carl@x.io"}
    else:
        error = result["responseStatus"]
        assert error["errorCode"] == "Conflict"
        assert error["errors"][0]["fieldName"] == "Customers[0].Accounts[1].Id"
        assert held == {5: "alice@x.io"}  # the item is not stored at all
