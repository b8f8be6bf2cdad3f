"""The sync-batch target against its emulator on loopback (and one narrow aioresponses case)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from aiohttp import web

from pipeline.emulators import FaultPlan, SyncBatchStore, create_syncbatch_app, serve_app
from pipeline.emulators.syncbatch import Principal, SyncBatchEmulatorConfig
from pipeline.errors import AuthError
from pipeline.records import Ack, Customer
from pipeline.state.store import StateStore
from pipeline.targets.base import TargetContext
from pipeline.targets.syncbatch.client import SyncBatchTarget
from pipeline.targets.syncbatch.settings import SyncBatchSettings
from tests.conftest import SB_TOKEN, sb_config
from tests.kit.feeds import SB_IDS
from tests.kit.records import customers

FAST_RETRY = {"initial_seconds": 0.001, "max_seconds": 0.02, "max_attempts": 8}


def settings(url: str, **overrides: Any) -> SyncBatchSettings:
    data: dict[str, Any] = {
        "url": url,
        "token_env": "SYNCBATCH_TOKEN",
        "profile_url": "https://shop.example.com/users/{customer_id}",
        **SB_IDS,
        "batch_size": 100,
        "retry": FAST_RETRY,
    }
    data.update(overrides)
    return msgspec.convert(data, SyncBatchSettings)


async def write_all(
    url: str, tmp_path: Path, records: list[Customer], **overrides: Any
) -> list[Ack]:
    async with (
        StateStore(tmp_path / "s.sqlite3") as store,
        SyncBatchTarget(settings(url, **overrides), TargetContext("syncbatch", store)) as target,
    ):
        items = await target.prepare(records)
        with anyio.fail_after(30):
            return await target.write(items)


async def test_write_confirms_every_account_and_groups_by_business_unit(tmp_path: Path) -> None:
    store = SyncBatchStore()
    records = customers(60, seed=4)
    async with serve_app(create_syncbatch_app(sb_config(), store)) as url:
        acks = await write_all(url, tmp_path, records)
    assert sorted(a.customer_id for a in acks) == sorted(c.customer_id for c in records)
    assert {a.kind for a in acks} == {"created"}
    assert len(store.customers) == len({c.business_unit for c in records})
    assert len(store.accounts) == 60


async def test_permanent_item_error_dead_letters_only_the_named_account(tmp_path: Path) -> None:
    store = SyncBatchStore()
    records = customers(40, seed=4)
    victim = records[7]
    config = sb_config(reject_user_names=(victim.email,))
    async with serve_app(create_syncbatch_app(config, store)) as url:
        acks = await write_all(url, tmp_path, records)
    dead = [a for a in acks if a.kind == "dead"]
    assert [a.customer_id for a in dead] == [victim.customer_id]
    assert dead[0].reason is not None and "ValidationException" in dead[0].reason
    assert victim.email not in dead[0].reason
    assert len(store.accounts) == 39


async def test_user_name_taken_by_another_account_is_dead_lettered(tmp_path: Path) -> None:
    store = SyncBatchStore()
    records = customers(10, seed=4)
    taken = records[3]
    store.upsert(
        {
            "id": 999,
            "index": 0,
            "name": "other",
            "accounts": [{"id": 999, "refId": 999, "userName": taken.email}],
        }
    )
    async with serve_app(create_syncbatch_app(sb_config(), store)) as url:
        acks = await write_all(url, tmp_path, records)
    dead = {a.customer_id: a.reason for a in acks if a.kind == "dead"}
    assert list(dead) == [taken.customer_id]
    assert "UserNameAlreadyExists" in (dead[taken.customer_id] or "")
    assert taken.email not in (dead[taken.customer_id] or "")


async def test_transient_item_errors_are_retried_alone_until_confirmed(tmp_path: Path) -> None:
    store = SyncBatchStore()
    records = customers(200, seed=4)
    config = sb_config(item_error_rate=0.3, faults=FaultPlan(seed=5))
    async with serve_app(create_syncbatch_app(config, store)) as url:
        acks = await write_all(url, tmp_path, records, batch_size=200)
    assert {a.kind for a in acks} == {"created"}
    assert len(acks) == 200
    assert set(store.writes.values()) == {1}


async def test_request_level_400_dead_letters_the_named_accounts(tmp_path: Path) -> None:
    store = SyncBatchStore()
    records = customers(5, seed=4)
    async with serve_app(create_syncbatch_app(sb_config(), store)) as url:
        acks = await write_all(url, tmp_path, records, profile_url="")
    assert [a.kind for a in acks] == ["dead"] * 5
    assert all("ProfileUrl" in (a.reason or "") for a in acks)
    assert store.accounts == {}


async def test_5xx_that_never_ends_dead_letters_with_the_status(tmp_path: Path) -> None:
    config = sb_config(faults=FaultPlan(error_rate=1.0, error_statuses=(502,)))
    async with serve_app(create_syncbatch_app(config)) as url:
        acks = await write_all(
            url, tmp_path, customers(3, seed=4), retry={**FAST_RETRY, "max_attempts": 3}
        )
    assert [a.kind for a in acks] == ["dead"] * 3
    assert all("answered 502" in (a.reason or "") for a in acks)


@pytest.mark.parametrize(
    ("principal", "status"),
    [
        (None, 401),
        (Principal(("User",), ("CanAccess", "CanAdd")), 403),
        (Principal(("Admin",), ("CanAccess",)), 403),
    ],
)
async def test_auth_failures_raise_auth_error(
    tmp_path: Path, principal: Principal | None, status: int
) -> None:
    principals = {} if principal is None else {SB_TOKEN: principal}
    config = SyncBatchEmulatorConfig(principals=principals)
    async with serve_app(create_syncbatch_app(config)) as url:
        with pytest.raises(AuthError) as caught:
            await write_all(url, tmp_path, customers(2, seed=4))
    assert caught.value.status == status
    assert SB_TOKEN not in str(caught.value)


async def test_item_error_without_field_isolates_accounts_to_find_the_culprit(
    tmp_path: Path,
) -> None:
    first_unit = customers(50, seed=4)[0].business_unit
    records = [c for c in customers(50, seed=4) if c.business_unit == first_unit][:3]
    assert len(records) == 3
    refused = {"errorCode": "ArgumentException", "message": "bad"}
    answers = [
        [{"index": 0, "responseStatus": refused}],
        [
            {"index": 0, "responseStatus": None},
            {"index": 1, "responseStatus": refused},
            {"index": 2, "responseStatus": None},
        ],
    ]
    bodies: list[Any] = []

    async def scripted(request: web.Request) -> web.Response:
        bodies.append(await request.json())
        return web.json_response(answers[len(bodies) - 1])

    app = web.Application()
    app.router.add_post("/sync/customers/batch", scripted)
    async with serve_app(app) as url:
        acks = await write_all(url, tmp_path, records)
    assert [len(b["customers"]) for b in bodies] == [1, 3]
    kinds = {a.customer_id: a.kind for a in acks}
    assert kinds == {
        records[0].customer_id: "created",
        records[1].customer_id: "dead",
        records[2].customer_id: "created",
    }


SERVICESTACK_HOSTS: dict[str, dict[str, Any]] = {
    "PascalCase": {"casing": "pascal"},
    "index 0 left out": {"exclude_defaults": True},
    'errorCode ""': {"empty_error_code": True},
    "all three": {"casing": "pascal", "exclude_defaults": True, "empty_error_code": True},
}


@pytest.mark.parametrize("host", list(SERVICESTACK_HOSTS))
async def test_answers_are_read_as_servicestack_writes_them(tmp_path: Path, host: str) -> None:
    store = SyncBatchStore()
    records = customers(60, seed=4)
    victim = records[7]
    config = sb_config(reject_user_names=(victim.email,), **SERVICESTACK_HOSTS[host])
    async with serve_app(create_syncbatch_app(config, store)) as url:
        acks = await write_all(url, tmp_path, records)
    kinds = {a.customer_id: a.kind for a in acks}
    assert kinds.pop(victim.customer_id) == "dead"
    assert set(kinds.values()) == {"created"}
    assert len(kinds) == 59
    assert set(store.writes.values()) == {1}  # nothing sent twice
    dead = next(a for a in acks if a.kind == "dead")
    assert dead.reason is not None and dead.reason.startswith("ValidationException")


async def test_a_pascal_case_400_keeps_its_field_errors(tmp_path: Path) -> None:
    store = SyncBatchStore()
    records = customers(5, seed=4)
    async with serve_app(create_syncbatch_app(sb_config(casing="pascal"), store)) as url:
        acks = await write_all(url, tmp_path, records, profile_url="")
    assert [a.kind for a in acks] == ["dead"] * 5
    assert all("fields" in (a.reason or "") and "ProfileUrl" in (a.reason or "") for a in acks)


async def test_results_are_matched_by_the_organisation_id_they_echo(tmp_path: Path) -> None:
    records = customers(80, seed=4)
    units = sorted({c.business_unit for c in records})
    assert len(units) >= 3
    refused = {"ErrorCode": "ArgumentException", "Message": "bad"}
    bodies: list[Any] = []

    async def scripted(request: web.Request) -> web.Response:
        body = await request.json()
        bodies.append(body)
        sent = body["customers"]
        # Reversed, no index at all, PascalCase; the last organisation sent is refused.
        answers = [
            {"Customer": {"Id": c["id"]}, "ResponseStatus": refused if i == len(sent) - 1 else None}
            for i, c in enumerate(sent)
        ][::-1]
        return web.json_response(answers)

    app = web.Application()
    app.router.add_post("/sync/customers/batch", scripted)
    async with serve_app(app) as url:
        acks = await write_all(url, tmp_path, records)
    last_unit = bodies[0]["customers"][-1]["name"]
    for ack in acks:
        unit = next(c.business_unit for c in records if c.customer_id == ack.customer_id)
        assert ack.kind == ("dead" if unit == last_unit else "created"), unit


async def scripted_answers(
    tmp_path: Path, answer: Any, records: list[Customer]
) -> tuple[list[Ack], list[Any]]:
    """``answer(sent customers, request number)`` gives the 200 body of each request."""
    bodies: list[Any] = []

    async def handler(request: web.Request) -> web.Response:
        body = await request.json()
        bodies.append(body)
        return web.json_response(answer(body["customers"], len(bodies)))

    app = web.Application()
    app.router.add_post("/sync/customers/batch", handler)
    async with serve_app(app) as url:
        acks = await write_all(url, tmp_path, records)
    return acks, bodies


async def test_an_account_left_out_of_a_successful_echo_is_not_confirmed(tmp_path: Path) -> None:
    records = customers(30, seed=4)

    def answer(sent: list[Any], _: int) -> list[Any]:
        # Every organisation echoed with its first account only.
        return [
            {"customer": {**c, "accounts": c["accounts"][:1]}, "index": i}
            for i, c in enumerate(sent)
        ]

    acks, bodies = await scripted_answers(tmp_path, answer, records)
    first = {c["accounts"][0]["meta"]["customerId"] for c in bodies[0]["customers"]}
    for ack in acks:
        if ack.customer_id in first:
            assert ack.kind == "created"
        else:
            assert ack.kind == "dead"
            assert (ack.reason or "").startswith("the answer does not hold account id ")
    assert len(first) < len(acks)


async def test_an_item_answered_twice_is_sent_again_not_read_either_way(tmp_path: Path) -> None:
    records = customers(30, seed=4)
    failed = {"errorCode": "InvalidOperationException", "message": "no"}

    def answer(sent: list[Any], number: int) -> list[Any]:
        results = [{"customer": c, "index": i} for i, c in enumerate(sent)]
        if number == 1:  # item 0 answered twice, success then failure
            results.append({"customer": sent[0], "index": 0, "responseStatus": failed})
        return results

    acks, bodies = await scripted_answers(tmp_path, answer, records)
    assert [a.kind for a in acks] == ["created"] * len(records)
    assert len(bodies) == 2
    assert [c["id"] for c in bodies[1]["customers"]] == [bodies[0]["customers"][0]["id"]]


async def test_field_errors_without_an_error_code_are_a_failure(tmp_path: Path) -> None:
    records = customers(5, seed=4)
    status = {
        "errorCode": None,
        "errors": [{"errorCode": "NotEmpty", "fieldName": "Customers[0].Accounts[0].UserName"}],
    }

    def answer(sent: list[Any], _: int) -> list[Any]:
        return [{"customer": c, "index": i, "responseStatus": status} for i, c in enumerate(sent)]

    acks, _ = await scripted_answers(tmp_path, answer, records)
    assert "created" not in {a.kind for a in acks}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'[{"index": 0, "customer": {"id": ', "answer unreadable: malformed JSON"),
        (b'{"this is": not json', "answer unreadable: Expected `array`, got `object`"),
        (b'[{"index": "first"}]', "answer unreadable: Expected `int | null`, got `str`"),
    ],
)
async def test_an_answer_that_stays_unreadable_is_named_as_such(
    tmp_path: Path, body: bytes, reason: str
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_post("/sync/customers/batch", handler)
    async with serve_app(app) as url:
        acks = await write_all(url, tmp_path, customers(5, seed=4))
    assert {a.kind for a in acks} == {"dead"}
    assert all((a.reason or "").startswith(reason) for a in acks), acks[0].reason
