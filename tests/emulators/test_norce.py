"""Tests of the Norce Connect emulator over real loopback HTTP."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import orjson
import pytest

from pipeline.emulators.faults import MALFORMED_BODY, FaultPlan
from pipeline.emulators.norce import (
    CONNECT_ROOT,
    NORCE_STORE,
    TOKEN_PATH,
    NorceEmulatorConfig,
    NorceStore,
    create_norce_app,
)
from pipeline.emulators.server import serve_app

APP_ID = {"ApplicationId": "1234"}
CUSTOMER_MASK = ["Code", "EmailAddress", "FirstName", "LastName", "PhoneNumber", "Companies"]
FORM = {
    "grant_type": "client_credentials",
    "client_id": "demo-norce-client",
    "client_secret": "demo-norce-secret",
    "scope": "stage",
}


def _header(**fields: Any) -> str:
    return orjson.dumps({"AccountId": 42, **fields}).decode()


CUSTOMERS_HEADER = _header(CustomerFieldsThatAreSet=CUSTOMER_MASK)
COMPANIES_HEADER = _header(CompanyFieldsThatAreSet=["Code", "Name", "OrganizationNo"])


def _customer(code: str, **extra: Any) -> dict[str, Any]:
    return {
        "Code": code, "EmailAddress": f"{code.lower()}@example.com", "FirstName": "Ann",
        "LastName": "Lee", "PhoneNumber": "+49 1", **extra,
    }  # fmt: skip


class Norce:
    """A running emulator, a session and a bearer token."""

    def __init__(self, session: aiohttp.ClientSession, url: str, store: NorceStore) -> None:
        self.session = session
        self.url = url
        self.store = store
        self.token = ""

    async def fetch_token(self, **form: str) -> tuple[int, dict[str, str], Any]:
        data = {**FORM, **form}
        async with self.session.post(self.url + TOKEN_PATH, data=data) as response:
            return response.status, dict(response.headers), await response.json()

    def auth(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **APP_ID, **extra}

    async def call(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        body: Any = None,
        data: bytes | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        payload = orjson.dumps(body) if body is not None else data
        async with self.session.request(
            method,
            f"{self.url}{CONNECT_ROOT}/{path}",
            headers=self.auth() if headers is None else headers,
            data=payload,
        ) as response:
            return response.status, dict(response.headers), await response.json()

    async def post_import(
        self, items: Any, header: str = CUSTOMERS_HEADER, kind: str = "ImportCustomers"
    ) -> tuple[int, Any]:
        headers = self.auth(**{"X-StormConnect-Header": header, "Content-Type": "application/json"})
        status, _, reply = await self.call("POST", f"Customer/{kind}", headers=headers, body=items)
        return status, reply

    async def run(
        self, items: Any, header: str = CUSTOMERS_HEADER, kind: str = "ImportCustomers"
    ) -> int:
        status, reply = await self.post_import(items, header, kind)
        assert status == 200, reply
        return int(reply["JobId"])

    async def job(self, job_id: int, path: str = "Job/Get") -> Any:
        status, _, reply = await self.call("GET", f"{path}?id={job_id}")
        assert status == 200, reply
        return reply

    async def log(self, job_id: int) -> list[dict[str, Any]]:
        status, _, reply = await self.call("GET", f"Job/GetLog?id={job_id}")
        assert status == 200, reply
        assert isinstance(reply, list)
        return reply

    async def admin(self, path: str = "store") -> Any:
        async with self.session.get(f"{self.url}/_admin/{path}") as response:
            assert response.status == 200
            return await response.json()

    async def customers(self) -> dict[str, Any]:
        return {c["Code"]: c for c in (await self.admin())["customers"]}


@asynccontextmanager
async def _norce(*, login: bool = True, **config: Any) -> AsyncIterator[Norce]:
    store = NorceStore()
    app = create_norce_app(NorceEmulatorConfig(**config), store)
    async with serve_app(app) as url, aiohttp.ClientSession() as session:
        norce = Norce(session, url, store)
        if login:
            status, _, reply = await norce.fetch_token()
            assert status == 200
            norce.token = reply["access_token"]
        yield norce


# -- token --------------------------------------------------------------------------


async def test_token_issued_with_oauth2_shape() -> None:
    async with _norce(login=False) as norce:
        status, headers, reply = await norce.fetch_token()
        norce.token = reply["access_token"]
        ping = await norce.call("GET", "Job/Ping")
    assert status == 200
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert set(reply) == {"access_token", "expires_in", "token_type", "scope"}
    assert (reply["expires_in"], reply["token_type"], reply["scope"]) == (3600, "Bearer", "stage")
    assert reply["access_token"].count(".") == 2
    assert (ping[0], ping[2]) == (200, {"Message": "pong"})


async def test_token_bad_secret_is_401() -> None:
    async with _norce(login=False) as norce:
        status, _, reply = await norce.fetch_token(client_secret="wrong")
        other = await norce.fetch_token(client_id="someone-else")
        stats = await norce.admin("stats")
    assert (status, reply["error"]) == (401, "invalid_client")
    assert (other[0], other[2]["error"]) == (401, "invalid_client")
    assert "demo-norce-secret" not in orjson.dumps(reply).decode()
    assert stats["token_calls"] == 0


async def test_token_scope_outside_environments_is_400() -> None:
    async with _norce(login=False, environments=("stage", "prod")) as norce:
        bad = await norce.fetch_token(scope="playground")
        mixed = await norce.fetch_token(scope="stage playground")
        both = await norce.fetch_token(scope="stage prod")
    assert (bad[0], bad[2]["error"]) == (400, "invalid_scope")
    assert (mixed[0], mixed[2]["error"]) == (400, "invalid_scope")
    assert (both[0], both[2]["scope"]) == (200, "stage prod")


async def test_token_bucket_empty_is_429_with_retry_after() -> None:
    async with _norce(login=False, token_burst=3) as norce:
        statuses = [(await norce.fetch_token())[0] for _ in range(3)]
        status, headers, reply = await norce.fetch_token()
        stats = await norce.admin("stats")
    assert statuses == [200, 200, 200]
    assert (status, reply["error"]) == (429, "too_many_requests")
    assert headers["Retry-After"] == "20"  # 3 per minute: one token every 20 s
    assert (stats["token_calls"], stats["token_refusals"]) == (3, 1)


async def test_token_bucket_refills_at_rate() -> None:
    async with _norce(login=False, token_burst=1, token_per_minute=600.0) as norce:
        first = (await norce.fetch_token())[0]
        second = (await norce.fetch_token())[0]
        await asyncio.sleep(0.12)  # 10 per second
        third = (await norce.fetch_token())[0]
    assert (first, second, third) == (200, 429, 200)


async def test_token_expires_after_lifetime() -> None:
    async with _norce(login=False, token_lifetime=0.1) as norce:
        status, _, reply = await norce.fetch_token()
        norce.token = reply["access_token"]
        before = (await norce.call("GET", "Job/Ping"))[0]
        await asyncio.sleep(0.15)
        after = await norce.call("GET", "Job/Ping")
    assert (status, reply["expires_in"]) == (200, 1)
    assert before == 200
    assert (after[0], after[2]) == (
        401,
        {"Message": "Authorization has been denied for this request."},
    )


# -- connect auth -------------------------------------------------------------------


async def test_connect_without_valid_bearer_is_401() -> None:
    async with _norce() as norce:
        missing = await norce.call("GET", "Job/Ping", headers=APP_ID)
        wrong = await norce.call("GET", "Job/Ping", headers={"Authorization": "Bearer x", **APP_ID})
        basic = await norce.call(
            "GET", "Job/Ping", headers={"Authorization": "Basic eDp5", **APP_ID}
        )
    for status, _, reply in (missing, wrong, basic):
        assert status == 401
        assert reply == {"Message": "Authorization has been denied for this request."}


async def test_connect_application_id_required_and_checked() -> None:
    async with _norce() as norce:
        bearer = {"Authorization": f"Bearer {norce.token}"}
        missing = await norce.call("GET", "Job/Ping", headers=bearer)
        wrong = await norce.call("GET", "Job/Ping", headers={**bearer, "ApplicationId": "99"})
        dashed = await norce.call("GET", "Job/Ping", headers={**bearer, "application-id": "1234"})
        lower = await norce.call("GET", "Job/Ping", headers={**bearer, "applicationid": "1234"})
    assert (missing[0], wrong[0], dashed[0], lower[0]) == (403, 403, 200, 200)
    assert "Message" in missing[2] and "Message" in wrong[2]


async def test_connect_application_id_optional_when_not_required() -> None:
    async with _norce(require_application_id=False) as norce:
        status, _, _ = await norce.call(
            "GET", "Job/Ping", headers={"Authorization": f"Bearer {norce.token}"}
        )
    assert status == 200


async def test_import_wrong_account_id_is_403() -> None:
    async with _norce() as norce:
        header = orjson.dumps({"AccountId": 7, "CustomerFieldsThatAreSet": ["Code"]}).decode()
        status, reply = await norce.post_import([_customer("C1")], header)
        missing = await norce.post_import([], '{"CustomerFieldsThatAreSet":["Code"]}')
    assert status == 403 and "Message" in reply
    assert missing[0] == 400
    assert norce.store.jobs == {}


# -- header and body ----------------------------------------------------------------


async def test_header_enum_names_and_ints_accepted() -> None:
    # 2 Code, 3 EmailAddress, 6 FirstName, 8 LastName; names in any case.
    async with _norce() as norce:
        ints = _header(CustomerFieldsThatAreSet=[2, 3, 6, 8])
        names = _header(CustomerFieldsThatAreSet=["code", "EMAILADDRESS", "FirstName", "LastName"])
        first = await norce.run([_customer("C1")], ints)
        second = await norce.run([_customer("C2")], names)
        stored = await norce.customers()
        jobs = [await norce.job(first), await norce.job(second)]
    assert [j["StatusId"] for j in jobs] == [2, 2]
    assert set(stored["C1"]) == {"Id", "Code", "EmailAddress", "FirstName", "LastName"}
    assert set(stored["C2"]) == set(stored["C1"])


async def test_header_missing_is_400() -> None:
    async with _norce() as norce:
        status, _, reply = await norce.call(
            "POST", "Customer/ImportCustomers", headers=norce.auth(), body=[_customer("C1")]
        )
        broken = await norce.post_import([_customer("C1")], "{not json")
        no_mask = await norce.post_import([_customer("C1")], _header())
        companies = await norce.post_import(
            [], _header(CustomerFieldsThatAreSet=["Code"]), "ImportCompanies"
        )
    assert status == 400 and "X-StormConnect-Header" in reply["Message"]
    assert broken[0] == 400
    assert (no_mask[0], companies[0]) == (400, 400)
    assert "CustomerFieldsThatAreSet" in no_mask[1]["Message"]
    assert "CompanyFieldsThatAreSet" in companies[1]["Message"]


async def test_header_bad_enum_is_400() -> None:
    async with _norce() as norce:
        name = await norce.post_import([], _header(CustomerFieldsThatAreSet=["Code", "Nickname"]))
        number = await norce.post_import([], _header(CustomerFieldsThatAreSet=[2, 22]))
        account = await norce.post_import(
            [], _header(CustomerFieldsThatAreSet=["Accounts"], AccountFieldsThatAreSet=["Password"])
        )
        not_list = await norce.post_import([], _header(CustomerFieldsThatAreSet="Code"))
    assert [r[0] for r in (name, number, account, not_list)] == [400, 400, 400, 400]
    assert "Nickname" in name[1]["Message"] and "22" in number[1]["Message"]


async def test_header_company_fields_need_companies_in_customer_fields() -> None:
    async with _norce() as norce:
        header = _header(CustomerFieldsThatAreSet=["Code"], CompanyFieldsThatAreSet=["Code"])
        status, reply = await norce.post_import([], header)
        ok = _header(
            CustomerFieldsThatAreSet=["Code", "Companies"], CompanyFieldsThatAreSet=["Code"]
        )
        accepted = (await norce.post_import([], ok))[0]
    assert status == 400 and "Companies" in reply["Message"]
    assert accepted == 200


async def test_body_not_array_is_400() -> None:
    async with _norce() as norce:
        obj = await norce.post_import(_customer("C1"))
        headers = norce.auth(**{"X-StormConnect-Header": CUSTOMERS_HEADER})
        garbage = await norce.call("POST", "Customer/ImportCustomers", headers=headers, data=b"[{")
    assert (obj[0], garbage[0]) == (400, 400)
    assert "array" in obj[1]["Message"]
    assert norce.store.import_calls == {}


async def test_import_over_max_items_is_413() -> None:
    async with _norce(max_items=3) as norce:
        over = await norce.post_import([_customer(f"C{i}") for i in range(4)])
        at_limit = await norce.post_import([_customer(f"C{i}") for i in range(3)])
    assert over[0] == 413 and "3" in over[1]["Message"]
    assert at_limit[0] == 200


async def test_import_accepted_job_response_shape() -> None:
    async with _norce() as norce:
        status, reply = await norce.post_import([_customer("C1"), _customer("C2")])
        stats = await norce.admin("stats")
    assert status == 200
    assert reply["StatusCode"] == "Accepted" and reply["JobId"] == "1"
    assert isinstance(reply["Description"], str)
    assert reply["ValidationSummary"] == {
        "NrOfItemsInTotal": 2, "NrOfValidationFailures": 0, "Messages": [],
    }  # fmt: skip
    assert stats == {
        "token_calls": 1, "token_refusals": 0, "import_calls": {"ImportCustomers": 1},
        "jobs": 1, "injected": {},
    }  # fmt: skip


# -- jobs -----------------------------------------------------------------------------


async def test_job_progresses_queued_running_finished() -> None:
    async with _norce(queue_delay=0.2, job_delay=0.2) as norce:
        job_id = await norce.run([_customer("C1")])
        queued, queued_log = await norce.job(job_id), await norce.log(job_id)
        queued_store = await norce.customers()
        await asyncio.sleep(0.3)
        running, running_log = await norce.job(job_id), await norce.log(job_id)
        running_store = await norce.customers()
        await asyncio.sleep(0.2)
        done, done_log = await norce.job(job_id), await norce.log(job_id)
        done_store = await norce.customers()
    assert (queued["StatusId"], queued["IsFinished"], queued["Start"]) == (6, False, None)
    assert (queued_log, queued_store) == ([], {})
    assert (running["StatusId"], running["IsFinished"], running["Stop"]) == (1, False, None)
    assert [line["Message"] for line in running_log] == ["Starting import."]
    assert running_store == {}
    assert (done["StatusId"], done["IsFinished"]) == (2, True)
    assert (done["JobId"], done["Totals"], done["Fail"]) == (job_id, 1, 0)
    assert done["Insert"] >= 1 and done["Updates"] == 0
    assert re.fullmatch(r"00:00:00\.\d{3}", done["RunTime"])
    assert 0.15 <= int(done["RunTime"][-3:]) / 1000 <= 0.25
    assert done["Start"] < done["Stop"] == done["LastUpdated"]
    assert [(line["SeverityId"], line["Message"]) for line in done_log] == [
        (1, "Starting import."), (1, "Import finished."),
    ]  # fmt: skip
    assert set(done_log[0]) == {"SeverityId", "Message", "TimeStamp", "ImportedRow"}
    assert set(done_store) == {"C1"}


async def test_job_without_delays_is_done_when_answered() -> None:
    async with _norce() as norce:
        await norce.run([_customer("C1")])
        stored = set(norce.store.customers)
    assert stored == {"C1"}


async def test_job_get_alias_and_unknown_id() -> None:
    async with _norce() as norce:
        job_id = await norce.run([_customer("C1")])
        plain = await norce.job(job_id)
        alias = await norce.job(job_id, "api/Job/Get")
        unknown = await norce.call("GET", "Job/Get?id=999")
        unknown_log = await norce.call("GET", "Job/GetLog?id=999")
        not_int = await norce.call("GET", "Job/Get?id=abc")
    assert alias == plain
    assert (unknown[0], unknown_log[0], not_int[0]) == (404, 404, 400)
    assert "Message" in unknown[2]


# -- upsert rules -----------------------------------------------------------------------


async def test_upsert_update_by_code_writes_only_masked_fields() -> None:
    async with _norce() as norce:
        await norce.run([_customer("C1")])
        first = (await norce.customers())["C1"]
        header = _header(CustomerFieldsThatAreSet=["Code", "PhoneNumber"])
        job_id = await norce.run(
            [{"Code": "C1", "PhoneNumber": "+49 2", "FirstName": "Bob"}], header
        )
        second = (await norce.customers())["C1"]
        job = await norce.job(job_id)
    assert second["PhoneNumber"] == "+49 2"
    assert second["FirstName"] == "Ann"  # not in the mask: untouched
    assert second["Id"] == first["Id"]
    assert (job["StatusId"], job["Insert"], job["Updates"] >= 1) == (2, 0, True)
    assert norce.store.customer_writes == {"C1": 2}


async def test_upsert_matches_by_email_then_id() -> None:
    async with _norce() as norce:
        await norce.run([_customer("C1")])
        stored_id = norce.store.customers["C1"]["Id"]
        header = _header(CustomerFieldsThatAreSet=["EmailAddress", "LastName"])
        await norce.run([{"EmailAddress": "C1@EXAMPLE.com", "LastName": "Byemail"}], header)
        await norce.run([{"Id": stored_id, "LastName": "Byid"}], header)
        stored = await norce.customers()
    assert list(stored) == ["C1"] and stored["C1"]["LastName"] == "Byid"


async def test_upsert_insert_requires_fields() -> None:
    async with _norce() as norce:
        items = [{"Code": "C1", "EmailAddress": "a@example.com"}, _customer("C2")]
        job_id = await norce.run(items)
        job, log = await norce.job(job_id), await norce.log(job_id)
    errors = [line for line in log if line["SeverityId"] == 3]
    assert (job["StatusId"], job["Fail"]) == (3, 1)
    assert [line["Message"] for line in errors] == [
        "Customer 'C1': FirstName, LastName are required to create a customer."
    ]
    assert set(norce.store.customers) == {"C2"}


async def test_upsert_unknown_company_is_item_error_with_row() -> None:
    async with _norce(companies=("U1",)) as norce:
        bad = _customer("C0000001", Companies=[{"Code": "Ghost Unit", "IsPrimary": True}])
        good = _customer("C0000002", Companies=[{"Code": "U1", "IsPrimary": True}])
        job_id = await norce.run([bad, good])
        job, log = await norce.job(job_id), await norce.log(job_id)
        stored = await norce.customers()
    assert (job["StatusId"], job["Totals"], job["Fail"]) == (3, 2, 1)
    assert [line["SeverityId"] for line in log] == [1, 3, 1]
    error = log[1]
    assert error["Message"] == "Customer 'C0000001': company 'Ghost Unit' does not exist."
    assert orjson.loads(error["ImportedRow"]) == bad
    assert "@" not in error["Message"]
    assert set(stored) == {"C0000002"}
    assert stored["C0000002"]["Companies"] == [{"Code": "U1", "IsPrimary": True}]
    assert norce.store.customer_writes == {"C0000002": 1}


async def test_upsert_company_list_delta_merges_else_replaces() -> None:
    async with _norce(companies=("U1", "U2", "U3")) as norce:
        await norce.run([_customer("C1", Companies=[{"Code": "U1", "IsPrimary": True}])])
        await norce.run([_customer("C1", Companies=[{"Code": "U2"}], IsCompanyListDelta=True)])
        merged = (await norce.customers())["C1"]["Companies"]
        await norce.run(
            [
                _customer(
                    "C1",
                    Companies=[
                        {"Code": "U3", "IsPrimary": True},
                        {"Code": "U2", "IsPrimary": True},
                    ],
                )
            ]
        )
        replaced = (await norce.customers())["C1"]["Companies"]
    assert merged == [{"Code": "U1", "IsPrimary": True}, {"Code": "U2", "IsPrimary": False}]
    # IsCompanyListDelta false: U1 dropped; only the first IsPrimary honoured.
    assert replaced == [{"Code": "U3", "IsPrimary": True}, {"Code": "U2", "IsPrimary": False}]


async def test_upsert_duplicate_email_is_item_error_unless_search_only_by_code() -> None:
    async with _norce() as norce:
        await norce.run([_customer("C1")])
        clash = _customer("C2", EmailAddress="c1@example.com")
        job_id = await norce.run([clash])
        log = await norce.log(job_id)
        header = _header(CustomerFieldsThatAreSet=[*CUSTOMER_MASK, "SearchOnlyByCode"])
        allowed = await norce.job(await norce.run([clash], header))
        stored = await norce.customers()
    assert log[1]["SeverityId"] == 3
    assert log[1]["Message"] == "Customer 'C2': EmailAddress is already used by customer 'C1'."
    assert allowed["StatusId"] == 2
    assert stored["C2"]["EmailAddress"] == stored["C1"]["EmailAddress"]


async def test_upsert_country_code_longer_than_two_is_item_error() -> None:
    async with _norce() as norce:
        header = _header(CustomerFieldsThatAreSet=[*CUSTOMER_MASK, "DeliveryAddresses"])
        item = _customer("C1", DeliveryAddresses=[{"City": "Berlin", "CountryCode": "DEU"}])
        log = await norce.log(await norce.run([item], header))
    assert log[1]["Message"] == (
        "Customer 'C1': DeliveryAddresses[0].CountryCode must be at most 2 characters."
    )
    assert norce.store.customers == {}


async def test_upsert_unknown_role_is_warning_and_skipped() -> None:
    async with _norce() as norce:
        header = _header(
            CustomerFieldsThatAreSet=[*CUSTOMER_MASK, "Accounts"],
            AccountFieldsThatAreSet=["Status", "Roles", "PasswordCreateOnly"],
        )
        account = {
            "LoginName": "c1@example.com", "Password": "s3cret", "Status": 1,
            "Roles": [{"Code": "buyer"}, {"Code": "wizard"}],
        }  # fmt: skip
        job_id = await norce.run([_customer("C1", Accounts=[account])], header)
        job, log = await norce.job(job_id), await norce.log(job_id)
        stored = (await norce.customers())["C1"]
    assert job["StatusId"] == 2
    assert [line["SeverityId"] for line in log] == [1, 2, 1]
    assert log[1]["Message"] == "Customer 'C1': role 'wizard' does not exist; the role was skipped."
    assert "s3cret" not in log[1]["ImportedRow"]
    assert stored["Accounts"] == [
        {"LoginName": "c1@example.com", "HasPassword": True, "Status": 1,
         "Roles": [{"Code": "buyer", "IsActive": True}]},
    ]  # fmt: skip


async def test_upsert_account_create_only_fields_kept_on_update() -> None:
    async with _norce() as norce:
        header = _header(
            CustomerFieldsThatAreSet=["Code", "Accounts"],
            AccountFieldsThatAreSet=["StatusCreateOnly", "RolesCreateOnly"],
        )
        account = {"LoginName": "u1", "Status": 1, "Roles": [{"Code": "buyer"}]}
        await norce.run([_customer("C1")])
        await norce.run([{"Code": "C1", "Accounts": [account]}], header)
        changed = {"LoginName": "u1", "Status": 2, "Roles": [{"Code": "admin"}]}
        await norce.run([{"Code": "C1", "Accounts": [changed]}], header)
        stored = (await norce.customers())["C1"]["Accounts"]
    assert stored == [
        {"LoginName": "u1", "Status": 1, "Roles": [{"Code": "buyer", "IsActive": True}]}
    ]


async def test_upsert_flags_replaced_unless_preserve_flags() -> None:
    async with _norce() as norce:
        plain = _header(CustomerFieldsThatAreSet=["Code", "Flags"])
        preserve = _header(CustomerFieldsThatAreSet=["Code", "Flags", "PreserveFlags"])
        await norce.run([_customer("C1")])
        await norce.run([{"Code": "C1", "Flags": [{"Code": "F1"}, {"Code": "F2"}]}], plain)
        await norce.run([{"Code": "C1", "Flags": [{"Code": "F3"}]}], preserve)
        kept = [f["Code"] for f in (await norce.customers())["C1"]["Flags"]]
        await norce.run([{"Code": "C1", "Flags": [{"Code": "F4"}]}], plain)
        replaced = [f["Code"] for f in (await norce.customers())["C1"]["Flags"]]
    assert (kept, replaced) == (["F1", "F2", "F3"], ["F4"])


async def test_companies_import_creates_company_for_later_customers() -> None:
    async with _norce() as norce:
        early = await norce.run([_customer("C1", Companies=[{"Code": "U1", "IsPrimary": True}])])
        company = {"Code": "U1", "Name": "Unit One", "OrganizationNo": "556000-0001"}
        missing_name = {"Code": "U2", "OrganizationNo": "556000-0002"}
        company_job = await norce.run([company, missing_name], COMPANIES_HEADER, "ImportCompanies")
        late = await norce.run([_customer("C1", Companies=[{"Code": "U1", "IsPrimary": True}])])
        company_log = await norce.log(company_job)
        early_log = await norce.log(early)
        snapshot = await norce.admin()
        stats = await norce.admin("stats")
    assert (early, late) == (1, 3)  # JobIds count both import kinds
    assert early_log[1]["Message"] == "Customer 'C1': company 'U1' does not exist."
    assert company_log[1]["Message"] == "Company 'U2': Name is required to create a company."
    assert [c["Code"] for c in snapshot["companies"]] == ["U1"]
    assert snapshot["companies"][0]["Name"] == "Unit One"
    assert snapshot["customers"][0]["Companies"] == [{"Code": "U1", "IsPrimary": True}]
    assert stats["import_calls"] == {"ImportCustomers": 2, "ImportCompanies": 1}


async def test_companies_import_customers_list_links_and_unlinks() -> None:
    async with _norce(companies=("U1",)) as norce:
        await norce.run([_customer("C1", Companies=[{"Code": "U1"}]), _customer("C2")])
        header = _header(CompanyFieldsThatAreSet=["Code", "Customers"])
        await norce.run([{"Code": "U1", "Customers": [{"Code": "C2"}]}], header, "ImportCompanies")
        stored = await norce.customers()
        ghost = await norce.log(
            await norce.run(
                [{"Code": "U1", "Customers": [{"Code": "C9"}]}], header, "ImportCompanies"
            )
        )
    assert stored["C1"]["Companies"] == []
    assert stored["C2"]["Companies"] == [{"Code": "U1", "IsPrimary": False}]
    assert ghost[1]["Message"] == "Company 'U1': customer 'C9' does not exist."


# -- faults ---------------------------------------------------------------------------


async def test_fault_fail_jobs_end_failed_without_item_lines() -> None:
    async with _norce(fail_jobs=(1,)) as norce:
        failed = await norce.run([_customer("C1"), _customer("C2")])
        job, log = await norce.job(failed), await norce.log(failed)
        second = await norce.job(await norce.run([_customer("C3")]))
        stored = await norce.customers()
    assert (job["StatusId"], job["IsFinished"], job["Fail"], job["Insert"]) == (3, True, 2, 0)
    assert [line["ImportedRow"] for line in log] == [None, None, None]
    assert [line["SeverityId"] for line in log] == [1, 3, 1]
    assert second["StatusId"] == 2
    assert set(stored) == {"C3"}


async def test_fault_failed_job_rate_fails_every_job() -> None:
    async with _norce(failed_job_rate=1.0) as norce:
        jobs = [await norce.job(await norce.run([_customer(f"C{i}")])) for i in range(3)]
    assert [j["StatusId"] for j in jobs] == [3, 3, 3]
    assert norce.store.customers == {}


async def test_fault_stuck_jobs_never_finish() -> None:
    async with _norce(stuck_jobs=(1,), job_delay=0.05) as norce:
        stuck = await norce.run([_customer("C1")])
        other = await norce.run([_customer("C2")])
        await asyncio.sleep(0.1)
        stuck_job, other_job = await norce.job(stuck), await norce.job(other)
        stuck_log = await norce.log(stuck)
    assert (stuck_job["StatusId"], stuck_job["IsFinished"]) == (1, False)  # runs forever
    assert [line["Message"] for line in stuck_log] == ["Starting import."]
    assert other_job["StatusId"] == 2
    assert set(norce.store.customers) == {"C2"}


async def test_fault_import_throttled_with_retry_after() -> None:
    plan = FaultPlan(throttle_rate=1.0, retry_after=2)
    async with _norce(faults=plan) as norce:
        status, headers, reply = await norce.call(
            "POST",
            "Customer/ImportCustomers",
            headers=norce.auth(**{"X-StormConnect-Header": CUSTOMERS_HEADER}),
            body=[_customer("C1")],
        )
        unauthorized = await norce.call("GET", "Job/Ping", headers=APP_ID)
        stats = await norce.admin("stats")
    assert (status, headers["Retry-After"], reply) == (429, "2", {"Message": "Too many requests"})
    assert unauthorized[0] == 401  # auth before faults; token endpoint never faulted
    assert stats["injected"] == {"429": 1} and stats["jobs"] == 0 and stats["token_calls"] == 1


async def test_fault_server_error_has_message_body() -> None:
    async with _norce(faults=FaultPlan(fail_requests=(1,))) as norce:
        status, _, reply = await norce.call("GET", "Job/Ping")
        again = await norce.call("GET", "Job/Ping")
    assert status == 500 and set(reply) == {"Message"}
    assert again[0] == 200


async def test_fault_reset_import_still_creates_the_job() -> None:
    async with _norce(faults=FaultPlan(reset_rate=1.0)) as norce:  # token never faulted
        headers = norce.auth(**{"X-StormConnect-Header": CUSTOMERS_HEADER})
        url = f"{norce.url}{CONNECT_ROOT}/Customer/ImportCustomers"
        async with norce.session.post(url, headers=headers, json=[_customer("C1")]) as response:
            assert response.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                await response.read()
        stats = await norce.admin("stats")
        stored = await norce.customers()
    assert stats["jobs"] == 1 and stats["injected"] == {"reset": 1}
    assert set(stored) == {"C1"}


async def test_fault_malformed_and_truncated_job_answers() -> None:
    plan = FaultPlan(seed=3, truncate_rate=0.5, malformed_rate=0.5)
    async with _norce(faults=plan) as norce:
        bodies = []
        headers = norce.auth(**{"X-StormConnect-Header": CUSTOMERS_HEADER})
        url = f"{norce.url}{CONNECT_ROOT}/Customer/ImportCustomers"
        async with norce.session.post(url, headers=headers, json=[_customer("C1")]) as response:
            bodies.append((response.status, await response.read()))
        for path in ("Job/Get?id=1", "Job/GetLog?id=1", "Job/Get?id=9", "Job/Ping"):
            url = f"{norce.url}{CONNECT_ROOT}/{path}"
            async with norce.session.get(url, headers=norce.auth()) as response:
                bodies.append((response.status, await response.read()))
        stats = await norce.admin("stats")
    assert [status for status, _ in bodies] == [200, 200, 200, 404, 200]
    assert orjson.loads(bodies[3][1]) == {"Message": "Job 9 was not found."}  # errors stay
    spoiled = [raw for status, raw in bodies if status == 200]
    malformed = sum(raw == MALFORMED_BODY for raw in spoiled)
    assert 0 < malformed < 4
    for raw in spoiled:
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(raw)
    assert stats["injected"] == {"malformed": malformed, "truncated": 4 - malformed}
    assert stats["jobs"] == 1


async def test_store_shared_across_apps() -> None:
    store = NorceStore()
    store.add_company("U1")
    app = create_norce_app(store=store)
    assert app[NORCE_STORE] is store
    assert store.snapshot() == {"customers": [], "companies": [{"Id": 1, "Code": "U1"}]}


def test_config_repr_hides_secret_and_validates() -> None:
    assert "demo-norce-secret" not in repr(NorceEmulatorConfig())
    with pytest.raises(ValueError, match="failed_job_rate"):
        NorceEmulatorConfig(failed_job_rate=2.0)
    with pytest.raises(ValueError, match="token_burst"):
        NorceEmulatorConfig(token_burst=0)


# -- behaviour variants (issue 11) ------------------------------------------------------


async def test_variant_failed_items_succeed_ends_status_2_with_fail() -> None:
    async with _norce(companies=("U1",), failed_items_succeed=True) as norce:
        bad = _customer("C1", Companies=[{"Code": "Ghost", "IsPrimary": True}])
        job_id = await norce.run([bad, _customer("C2")])
        job, log = await norce.job(job_id), await norce.log(job_id)
    assert (job["StatusId"], job["Fail"]) == (2, 1)
    assert [line["SeverityId"] for line in log] == [1, 3, 1]


async def test_variant_alphabetical_truncated_rows_and_api_only_paths() -> None:
    config: dict[str, Any] = {"row_order": "alphabetical", "row_max_chars": 30}
    async with _norce(companies=("U1",), job_paths="api", **config) as norce:
        bad = _customer("C1", Companies=[{"Code": "Ghost", "IsPrimary": True}])
        job_id = await norce.run([bad])
        plain = []
        for path in ("Job/Get", "Job/GetLog"):
            url = f"{norce.url}{CONNECT_ROOT}/{path}?id={job_id}"
            async with norce.session.get(url, headers=norce.auth()) as response:
                plain.append(response.status)
        status, _, log = await norce.call("GET", f"api/Job/GetLog?id={job_id}")
    assert (plain, status) == ([404, 404], 200)
    assert log[1]["ImportedRow"] == orjson.dumps(dict(sorted(bad.items()))).decode()[:30]


async def test_variant_application_key_and_company_fields_required() -> None:
    async with _norce(require_application_key=True, require_company_fields=True) as norce:
        header = _header(CustomerFieldsThatAreSet=["Code", "Companies"])
        status, _ = await norce.post_import([_customer("C1")], header)
        job_id = await norce.run(
            [{"Code": "U9", "Name": "U9", "OrganizationNo": "U9"}],
            COMPANIES_HEADER,
            "ImportCompanies",
        )
        job, log = await norce.job(job_id), await norce.log(job_id)
    assert status == 400
    assert job["Fail"] == 1
    assert log[1]["Message"] == "Company 'U9': ApplicationKey is required."
