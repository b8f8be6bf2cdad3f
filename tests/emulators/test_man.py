"""Tests of the MAN source emulator over real loopback HTTP."""

from __future__ import annotations

import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import msgspec
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from pipeline.emulators.faults import MALFORMED_BODY, FaultPlan
from pipeline.emulators.man import (
    MAN_DATASET,
    MAN_DRIFT,
    MAN_FAULTS,
    MAN_LOG,
    Drifter,
    DriftPlan,
    ManEmulatorConfig,
    ManRequest,
    create_man_app,
)
from pipeline.emulators.man.dataset import Dataset
from pipeline.emulators.server import serve_app

BEARER = {"Authorization": "Bearer demo-man-token"}


@asynccontextmanager
async def _client(
    dataset: Dataset | None = None, /, **config: Any
) -> AsyncIterator[TestClient[Any, Any]]:
    app = create_man_app(dataset or Dataset(250), ManEmulatorConfig(**config))
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    async with client:
        yield client


async def _get(client: TestClient[Any, Any], url: str, **headers: str) -> tuple[int, Any]:
    async with client.get(url, headers=headers or BEARER) as response:
        return response.status, await response.json()


async def test_man_object_envelope_defaults() -> None:
    async with _client() as client, client.get("/corporate-structure", headers=BEARER) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/json; charset=utf-8"
        body = await response.json()
    assert set(body) == {"data", "limit", "offset", "total"}
    assert (body["limit"], body["offset"], body["total"]) == (10, 0, 250)
    assert [r["customer_id"] for r in body["data"]] == [f"C{i:07d}" for i in range(10)]
    assert body["data"] == Dataset(250).page(0, 10)


async def test_man_array_envelope_on_alias() -> None:
    async with _client(envelope="array", alias="/api/users") as client:
        status, body = await _get(client, "/api/users?offset=245&limit=100")
        assert status == 200
        assert isinstance(body, list)
        assert [r["customer_id"] for r in body] == [f"C{i:07d}" for i in range(245, 250)]
        status, body = await _get(client, "/api/users?offset=250&limit=100")
        assert (status, body) == (200, [])


async def test_man_paging_reads_whole_dataset() -> None:
    dataset = Dataset(250)
    async with _client(dataset) as client:
        seen: list[dict[str, Any]] = []
        offset = 0
        while True:
            status, body = await _get(client, f"/customer-users?offset={offset}&limit=100")
            assert status == 200
            seen.extend(body["data"])
            offset += len(body["data"])
            if len(body["data"]) < 100:
                break
    assert seen == list(dataset.records())


async def test_man_non_ascii_round_trips() -> None:
    dataset = Dataset(50)
    async with (
        _client(dataset) as client,
        client.get("/customer-users?limit=50", headers=BEARER) as response,
    ):
        raw = await response.read()
    assert "Müller".encode() in raw or "ł".encode() in raw or "é".encode() in raw
    assert b"\\u00" not in raw


async def test_man_bad_paging_answers_400() -> None:
    async with _client(max_limit=50) as client:
        for query in ("limit=abc", "offset=-1", "limit=-5", "limit=51", "offset=1.5", "limit="):
            status, body = await _get(client, f"/customer-users?{query}")
            assert status == 400, query
            assert body["error"] == "bad_request" and body["message"]
        status, _ = await _get(client, "/customer-users?limit=50")
        assert status == 200


async def test_man_bearer_missing_or_wrong_answers_401() -> None:
    async with _client() as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "demo-man-token"}):
            async with client.get("/customer-users", headers=headers) as response:
                assert response.status == 401
                body = await response.json()
            assert body["error"] == "unauthorized"
            assert "demo-man-token" not in body["message"]


async def test_man_header_pair_accepted_when_configured() -> None:
    pair = {"client_id": "mule-id", "client_secret": "mule-secret"}
    async with _client(token=None, **pair) as client:
        assert (await _get(client, "/customer-users", **pair))[0] == 200
        wrong = {**pair, "client_secret": "nope"}
        status, body = await _get(client, "/customer-users", **wrong)
        assert (status, body["error"]) == (401, "unauthorized")
        assert (await _get(client, "/customer-users", **BEARER))[0] == 401


async def test_man_bearer_and_pair_both_accepted() -> None:
    pair = {"client_id": "mule-id", "client_secret": "mule-secret"}
    async with _client(**pair) as client:
        assert (await _get(client, "/customer-users", **pair))[0] == 200
        assert (await _get(client, "/customer-users", **BEARER))[0] == 200


async def test_man_no_auth_configured_lets_everyone_in() -> None:
    async with _client(token=None) as client, client.get("/customer-users") as response:
        assert response.status == 200


async def test_man_faults_throttle_and_errors_at_rate() -> None:
    plan = FaultPlan(seed=3, throttle_rate=0.2, error_rate=0.2, retry_after=0.5)
    async with _client(faults=plan) as client:
        statuses: list[int] = []
        for _ in range(300):
            async with client.get("/customer-users?limit=1", headers=BEARER) as response:
                statuses.append(response.status)
                body = await response.json()
                if response.status == 429:
                    assert response.headers["Retry-After"] == "0.5"
                    assert body["error"] == "too_many_requests"
                elif response.status >= 500:
                    assert body["error"] == "server_error"
        stats = (await _get(client, "/_admin/stats"))[1]
    assert 35 <= statuses.count(429) <= 85
    assert 35 <= sum(s >= 500 for s in statuses) <= 85
    assert stats["requests"] == 300
    assert stats["injected"]["429"] == statuses.count(429)


async def test_man_faults_come_after_auth_and_validation() -> None:
    async with _client(faults=FaultPlan(fail_requests=(1, 2))) as client:
        assert (await _get(client, "/customer-users", Authorization="Bearer no"))[0] == 401
        assert (await _get(client, "/customer-users?limit=x"))[0] == 400
        assert (await _get(client, "/customer-users"))[0] == 500
        assert (await _get(client, "/customer-users"))[0] == 500
        assert (await _get(client, "/customer-users"))[0] == 200
        assert client.app is not None and client.app[MAN_FAULTS].requests == 3


async def test_man_request_log_records_answers() -> None:
    async with _client(faults=FaultPlan(fail_requests=(2,))) as client:
        await _get(client, "/customer-users?offset=5&limit=3")
        await _get(client, "/corporate-structure")
        await _get(client, "/customer-users?limit=bad")
        status, log = await _get(client, "/_admin/requests")
        assert client.app is not None
        assert client.app[MAN_LOG] == [
            ManRequest("GET", "/customer-users", 5, 3, 200),
            ManRequest("GET", "/corporate-structure", 0, 10, 500),
            ManRequest("GET", "/customer-users", 0, None, 400),
        ]
    assert status == 200
    assert log[0] == {
        "method": "GET", "path": "/customer-users", "offset": 5, "limit": 3, "status": 200,
    }  # fmt: skip
    assert len(log) == 3


async def test_man_admin_update_visible_in_pages() -> None:
    dataset = Dataset(20)
    async with _client(dataset) as client:
        async with client.post(
            "/_admin/records/C0000004", json={"firstName": "Zoë", "address": {"city": "Łódź"}}
        ) as response:
            assert response.status == 200
            assert (await response.json())["firstName"] == "Zoë"
        _, body = await _get(client, "/customer-users?offset=4&limit=1")
        record = body["data"][0]
        assert (record["firstName"], record["address"]["city"]) == ("Zoë", "Łódź")
        assert client.app is not None and client.app[MAN_DATASET] is dataset
        async with client.post("/_admin/records/C0000099", json={"role": "x"}) as response:
            assert response.status == 404
        async with client.post("/_admin/records/C0000001", data=b"[1]") as response:
            assert response.status == 400


async def test_man_serve_app_real_port() -> None:
    app = create_man_app(Dataset(30), ManEmulatorConfig())
    async with serve_app(app) as base_url:
        assert base_url.startswith("http://127.0.0.1:") and not base_url.endswith(":0")
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{base_url}/customer-users?offset=20&limit=100", headers=BEARER) as resp,
        ):
            assert resp.status == 200
            assert len((await resp.json())["data"]) == 10
    async with aiohttp.ClientSession() as session:
        try:
            async with session.get(f"{base_url}/customer-users"):
                raise AssertionError("server still answering after serve_app exited")
        except aiohttp.ClientConnectionError:
            pass


# -- new fault kinds ------------------------------------------------------------------


async def test_man_429_without_retry_after_and_bursts() -> None:
    plan = FaultPlan(throttle_rate=1.0, send_retry_after=False, burst_every=3, burst_length=1)
    async with _client(faults=plan) as client:
        answers = []
        for _ in range(4):
            async with client.get("/customer-users", headers=BEARER) as response:
                answers.append((response.status, response.headers.get("Retry-After")))
                body = await response.json()
                assert body["error"] in ("too_many_requests", "server_error")
        stats = (await _get(client, "/_admin/stats"))[1]
    assert answers == [(503, None), (429, None), (429, None), (503, None)]
    assert stats["injected"] == {"503": 2, "429": 2}


async def test_man_hang_times_out_the_client() -> None:
    app = create_man_app(
        Dataset(30), ManEmulatorConfig(faults=FaultPlan(hang_rate=1.0, hang_seconds=0.5))
    )
    timeout = aiohttp.ClientTimeout(sock_read=0.1)
    async with serve_app(app) as url, aiohttp.ClientSession(timeout=timeout) as session:
        with pytest.raises(aiohttp.ServerTimeoutError):
            async with session.get(f"{url}/customer-users", headers=BEARER) as response:
                await response.read()
        assert app[MAN_FAULTS].injected == {"hang": 1}


async def test_man_reset_truncated_and_malformed_pages() -> None:
    plan = FaultPlan(seed=4, reset_rate=0.3, truncate_rate=0.3, malformed_rate=0.4)
    app = create_man_app(Dataset(30), ManEmulatorConfig(faults=plan))
    outcomes = []
    async with serve_app(app) as url, aiohttp.ClientSession() as session:
        for _ in range(12):
            try:
                async with session.get(f"{url}/customer-users?limit=5", headers=BEARER) as resp:
                    assert resp.status == 200
                    raw = await resp.read()
            except aiohttp.ClientPayloadError:
                outcomes.append("reset")
                continue
            with pytest.raises(orjson.JSONDecodeError):
                orjson.loads(raw)
            outcomes.append("malformed" if raw == MALFORMED_BODY else "truncated")
        async with session.get(f"{url}/_admin/stats") as response:
            stats = await response.json()
    assert set(outcomes) == {"reset", "truncated", "malformed"}
    assert stats["injected"] == {kind: outcomes.count(kind) for kind in set(outcomes)}
    assert [entry.status for entry in app[MAN_LOG]] == [200] * 12


# -- offset drift ---------------------------------------------------------------------


async def test_man_drift_shifts_pages_between_requests() -> None:
    drift = DriftPlan(seed=1, insert_rate=1.0, delete_rate=1.0, after_requests=2)
    dataset = Dataset(60)
    shadow = Drifter(drift, Dataset(60))  # replays the same drift on a copy
    seen: list[str] = []
    async with _client(dataset, drift=drift) as client:
        offset = 0
        while True:
            status, body = await _get(client, f"/customer-users?offset={offset}&limit=10")
            assert status == 200
            shadow.apply()
            assert body["data"] == shadow.dataset.page(offset, 10)
            assert body["total"] == len(shadow.dataset) == 60
            seen.extend(record["customer_id"] for record in body["data"])
            offset += len(body["data"])
            if len(body["data"]) < 10:
                break
        stats = (await _get(client, "/_admin/stats"))[1]
        assert client.app is not None and client.app[MAN_DRIFT].events == 2 * (len(seen) // 10)
    assert seen[:10] == [f"C{i:07d}" for i in range(10)]  # the first page before any drift
    assert dataset.inserted == shadow.dataset.inserted and len(dataset.inserted) == 6
    assert dataset.deleted == shadow.dataset.deleted
    assert (stats["inserted"], stats["deleted"]) == (6, 6)
    ids = dataset.ids()
    assert ids == sorted(ids)
    # The offsets drifted: a record present all along was skipped, or one came twice.
    stayed = set(Dataset(60).ids()) & set(ids)
    assert stayed - set(seen) or len(seen) != len(set(seen))


async def test_man_drift_limits_and_no_drift_by_default() -> None:
    dataset = Dataset(40)
    drift = DriftPlan(insert_rate=1.0, max_events=3, after_requests=3)
    async with _client(dataset, drift=drift) as client:
        for _ in range(6):
            assert (await _get(client, "/customer-users?limit=5"))[0] == 200
        assert (await _get(client, "/customer-users?limit=x"))[0] == 400  # not counted
    assert len(dataset.inserted) == 3 and dataset.deleted == []
    assert len(dataset) == 43
    untouched = Dataset(40)
    async with _client(untouched) as client:
        for _ in range(3):
            await _get(client, "/customer-users")
    assert untouched.inserted == [] and len(untouched) == 40


@pytest.mark.parametrize(
    "fields",
    [{"insert_rate": 1.5}, {"delete_rate": -0.1}, {"max_events": -1}, {"after_requests": 0}],
)
def test_man_drift_plan_invalid_raises(fields: dict[str, object]) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(fields, DriftPlan)


def test_man_config_decodes_drift_and_faults_from_toml() -> None:
    text = """
max_limit = 50
[faults]
send_retry_after = false
truncate_rate = 0.1
[drift]
seed = 2
insert_rate = 0.5
after_requests = 2
"""
    config = msgspec.convert(tomllib.loads(text), ManEmulatorConfig)
    assert config.drift == DriftPlan(seed=2, insert_rate=0.5, after_requests=2)
    assert config.faults == FaultPlan(send_retry_after=False, truncate_rate=0.1)
    assert "drift=" in repr(config)
