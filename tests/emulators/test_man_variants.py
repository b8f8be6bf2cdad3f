"""Tests of the MAN emulator's API variants: paging, past the end, envelope, record shape."""

from __future__ import annotations

import copy
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer

from pipeline.config_load import settings_from_mapping
from pipeline.emulators.man import MAN_LOG, ManEmulatorConfig, ManRequest, create_man_app
from pipeline.emulators.man.dataset import Dataset
from pipeline.emulators.man.paging import PageAsk, read_paging
from pipeline.emulators.man.shape import envelope_body, set_path, shape_record
from pipeline.sources.emulated import source_variant_keys
from pipeline.stack import config_toml, describe, load_plan

BEARER = {"Authorization": "Bearer demo-man-token"}
URLS = {
    "source": "http://127.0.0.1:1",
    "syncbatch": "http://127.0.0.1:2",
    "emporix": "http://127.0.0.1:3",
    "norce": "http://127.0.0.1:4",
}


@asynccontextmanager
async def _client(
    dataset: Dataset | None = None, /, **config: Any
) -> AsyncIterator[TestClient[Any, Any]]:
    dataset = Dataset(25, defects=False) if dataset is None else dataset
    app = create_man_app(dataset, ManEmulatorConfig(**config))
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    async with client:
        yield client


async def _get(client: TestClient[Any, Any], url: str) -> tuple[int, Any]:
    async with client.get(url, headers=BEARER) as response:
        return response.status, await response.json()


def _ids(records: list[dict[str, Any]], key: str = "customer_id") -> list[str]:
    return [record[key] for record in records]


def _range(start: int, end: int) -> list[str]:
    return [f"C{i:07d}" for i in range(start, end)]


def _log(client: TestClient[Any, Any]) -> list[ManRequest]:
    assert client.app is not None
    log: list[ManRequest] = client.app[MAN_LOG]
    return log


# -- limit_mode -----------------------------------------------------------------------


async def test_man_limit_clamp_serves_the_cap() -> None:
    async with _client(max_limit=8, limit_mode="clamp") as client:
        status, body = await _get(client, "/customer-users?offset=3&limit=500")
        assert status == 200
        assert _ids(body["data"]) == _range(3, 11)
        assert (body["limit"], body["offset"], body["total"]) == (8, 3, 25)
        assert (await _get(client, "/customer-users?limit=abc"))[0] == 400
        assert _log(client) == [
            ManRequest("GET", "/customer-users", 3, 8, 200),
            ManRequest("GET", "/customer-users", 0, None, 400),
        ]


async def test_man_limit_ignore_always_serves_ten() -> None:
    async with _client(max_limit=8, limit_mode="ignore") as client:
        for query in ("limit=500", "limit=abc", "limit=3", ""):
            status, body = await _get(client, f"/customer-users?offset=2&{query}")
            assert status == 200, query
            assert _ids(body["data"]) == _range(2, 12)
            assert body["limit"] == 10
        assert {entry.limit for entry in _log(client)} == {10}


# -- honour_offset --------------------------------------------------------------------


async def test_man_offset_ignored_answers_the_first_page() -> None:
    async with _client(honour_offset=False) as client:
        for query in ("offset=20&limit=5", "offset=junk&limit=5"):
            status, body = await _get(client, f"/customer-users?{query}")
            assert status == 200
            assert _ids(body["data"]) == _range(0, 5)
            assert (body["offset"], body["total"]) == (0, 25)
        assert [entry.offset for entry in _log(client)] == [0, 0]


# -- paging modes and parameter names -------------------------------------------------


async def test_man_page_mode_one_based() -> None:
    async with _client(paging="page", limit_param="size") as client:
        status, body = await _get(client, "/customer-users?page=1&size=5")
        assert (status, _ids(body["data"])) == (200, _range(0, 5))
        assert set(body) == {"data", "limit", "page", "total"}
        assert (body["limit"], body["page"], body["total"]) == (5, 1, 25)
        _, body = await _get(client, "/customer-users?page=3&size=5")
        assert _ids(body["data"]) == _range(10, 15)
        _, body = await _get(client, "/customer-users?page=3&size=10")
        assert _ids(body["data"]) == _range(20, 25)
        _, body = await _get(client, "/customer-users?page=4&size=10")
        assert body["data"] == []
        # An offset client is not understood: page 1 at the default size, every time.
        for query in ("limit=5&offset=0", "limit=5&offset=5", "limit=5&offset=10"):
            _, body = await _get(client, f"/customer-users?{query}")
            assert _ids(body["data"]) == _range(0, 10)
        status, body = await _get(client, "/customer-users?page=0&size=5")
        assert (status, body["error"]) == (400, "bad_request")
        assert body["message"] == "page must be at least 1"
        assert _log(client)[:2] == [
            ManRequest("GET", "/customer-users", 0, 5, 200, 1),
            ManRequest("GET", "/customer-users", 10, 5, 200, 3),
        ]
        assert _log(client)[-1] == ManRequest("GET", "/customer-users", None, 5, 400, 0)


async def test_man_page_mode_zero_based_and_renamed_page() -> None:
    async with _client(paging="page", first_page=0, page_param="p") as client:
        _, body = await _get(client, "/customer-users?p=0&limit=10")
        assert _ids(body["data"]) == _range(0, 10)
        _, body = await _get(client, "/customer-users?p=2&limit=10")
        assert _ids(body["data"]) == _range(20, 25)
        _, body = await _get(client, "/customer-users?page=2&limit=10")  # unknown name
        assert _ids(body["data"]) == _range(0, 10)


async def test_man_renamed_offset_params_ignore_the_documented_names() -> None:
    async with _client(offset_param="skip", limit_param="take") as client:
        _, body = await _get(client, "/customer-users?skip=5&take=3")
        assert _ids(body["data"]) == _range(5, 8)
        assert (body["limit"], body["offset"]) == (3, 5)
        _, body = await _get(client, "/customer-users?offset=5&limit=3")
        assert _ids(body["data"]) == _range(0, 10)
        status, body = await _get(client, "/customer-users?take=101")
        assert (status, body["message"]) == (400, "take must not exceed 100")


def test_read_paging_pure() -> None:
    config = ManEmulatorConfig(paging="page", first_page=0, limit_mode="clamp", max_limit=20)
    assert read_paging({"page": "2", "limit": "50"}, config) == PageAsk(40, 20, 2)
    assert read_paging({}, config) == PageAsk(0, 10, 0)
    assert read_paging({"page": "x"}, config) == PageAsk(
        None, 10, error="page must be a non-negative integer"
    )
    offset = ManEmulatorConfig()
    assert read_paging({"offset": "7", "limit": "101"}, offset) == PageAsk(
        7, 101, error="limit must not exceed 100"
    )


# -- past_end -------------------------------------------------------------------------

_PAST_END_ERRORS = {
    "404": "not_found",
    "400": "bad_request",
    "416": "range_not_satisfiable",
}


@pytest.mark.parametrize("past_end", ["404", "400", "416"])
async def test_man_past_end_errors(past_end: str) -> None:
    async with _client(past_end=past_end) as client:
        status, body = await _get(client, "/customer-users?offset=20&limit=10")
        assert (status, _ids(body["data"])) == (200, _range(20, 25))
        status, body = await _get(client, "/customer-users?offset=24&limit=10")
        assert (status, _ids(body["data"])) == (200, _range(24, 25))
        for offset in (25, 40):
            status, body = await _get(client, f"/customer-users?offset={offset}&limit=10")
            assert status == int(past_end)
            assert body == {
                "error": _PAST_END_ERRORS[past_end],
                "message": f"offset {offset} is past the end (25 records)",
            }
        status = int(past_end)
        assert [entry.status for entry in _log(client)] == [200, 200, status, status]


async def test_man_past_end_page_mode_404() -> None:
    async with _client(paging="page", past_end="404") as client:
        status, body = await _get(client, "/customer-users?page=3&limit=10")
        assert (status, _ids(body["data"])) == (200, _range(20, 25))
        status, body = await _get(client, "/customer-users?page=4&limit=10")
        assert (status, body["message"]) == (404, "page 4 is past the end (25 records)")


async def test_man_past_end_empty_body() -> None:
    async with _client(past_end="empty_body") as client:
        for offset in (25, 26):
            async with client.get(f"/customer-users?offset={offset}", headers=BEARER) as response:
                assert response.status == 200
                assert await response.read() == b""
        async with client.get("/customer-users?offset=10", headers=BEARER) as response:
            assert _ids((await response.json())["data"]) == _range(10, 20)


async def test_man_past_end_null_list() -> None:
    async with _client(past_end="null") as client:
        status, body = await _get(client, "/customer-users?offset=25&limit=10")
        assert (status, body) == (200, {"data": None, "limit": 10, "offset": 25, "total": 25})
        _, body = await _get(client, "/customer-users?offset=24&limit=10")
        assert _ids(body["data"]) == ["C0000024"]
    async with _client(past_end="null", envelope="array") as client:
        assert await _get(client, "/customer-users?offset=30") == (200, None)


async def test_man_past_end_on_empty_dataset() -> None:
    async with _client(Dataset(0), past_end="404") as client:
        status, _ = await _get(client, "/customer-users")
        assert status == 404


# -- envelope -------------------------------------------------------------------------


async def test_man_nested_data_and_total() -> None:
    async with _client(data_path="result.data", total_path="result.total") as client:
        _, body = await _get(client, "/customer-users?offset=5&limit=2")
    assert set(body) == {"result"}
    assert set(body["result"]) == {"data", "total"}
    assert (_ids(body["result"]["data"]), body["result"]["total"]) == (_range(5, 7), 25)


async def test_man_no_total_and_meta_total() -> None:
    async with _client(total_path="") as client:
        _, body = await _get(client, "/customer-users?limit=2")
        assert set(body) == {"data", "limit", "offset"}
    async with _client(total_path="meta.total") as client:
        _, body = await _get(client, "/customer-users?limit=2")
        assert (set(body), body["meta"]) == ({"data", "limit", "offset", "meta"}, {"total": 25})


def test_envelope_body_pure() -> None:
    nested = ManEmulatorConfig(data_path="a.b.c", total_path="a.n")
    assert envelope_body([{"x": 1}], total=3, echo={"limit": 1}, shape=nested) == {
        "a": {"b": {"c": [{"x": 1}]}, "n": 3}
    }
    array = ManEmulatorConfig(envelope="array")
    assert envelope_body([], total=3, echo={"limit": 1}, shape=array) == []
    target: dict[str, Any] = {"a": {"keep": 1}}
    set_path(target, "a.b", 2)
    assert target == {"a": {"keep": 1, "b": 2}}


# -- record shape ---------------------------------------------------------------------


def _canonical(index: int) -> dict[str, Any]:
    return Dataset(25, defects=False).record(index)


async def test_man_record_shape_renamed_list_with_decoys() -> None:
    config = {
        "field_names": {"customer_id": "customerId", "address": "addresses"},
        "address_field_names": {"zipCode": "postalCode", "iso2Code": "countryCode"},
        "address_list": True,
        "address_decoys": 2,
        "flags": "int",
    }
    async with _client(**config) as client:
        _, body = await _get(client, "/customer-users?offset=3&limit=1")
    canonical = _canonical(3)
    address = canonical.pop("address")
    address["postalCode"] = address.pop("zipCode")
    address["countryCode"] = address.pop("iso2Code")
    billing, shipping = address["isDefaultBilling"], address["isDefaultShipping"]
    address.update(isDefaultBilling=int(billing), isDefaultShipping=int(shipping))
    decoys = [
        {**address, "address1": f"Lager {n}", "isDefaultBilling": 0, "isDefaultShipping": 0}
        for n in (1, 2)
    ]
    expected = {
        "customerId": canonical.pop("customer_id"),
        **canonical,
        "addresses": [address, *decoys],
    }
    record = body["data"][0]
    assert record == expected
    assert list(record) == [
        "customerId", "salutation", "firstName", "lastName", "email", "businessUnit", "role",
        "addresses",
    ]  # fmt: skip
    assert list(record["addresses"][0])[3] == "postalCode"


@pytest.mark.parametrize(
    ("style", "true", "false"), [("bool", True, False), ("int", 1, 0), ("string", "true", "false")]
)
def test_shape_record_flags(style: str, true: object, false: object) -> None:
    config = ManEmulatorConfig(flags=style)  # type: ignore[arg-type]
    record = _canonical(0)
    record["address"].update(isDefaultBilling=True, isDefaultShipping=False)
    shaped = shape_record(record, 0, config)
    address = shaped["address"]
    assert (address["isDefaultBilling"], address["isDefaultShipping"]) == (true, false)
    assert type(address["isDefaultBilling"]) is type(true)
    quirk = _canonical(1)
    quirk["address"].update(isDefaultBilling="true", isDefaultShipping="false")
    assert shape_record(quirk, 1, config)["address"]["isDefaultBilling"] == "true"


def test_shape_record_default_is_identity() -> None:
    record = _canonical(4)
    assert shape_record(copy.deepcopy(record), 4, ManEmulatorConfig()) == record


def test_shape_record_address_list_null_and_absent() -> None:
    config = ManEmulatorConfig(address_list=True, address_decoys=1)
    null = {**_canonical(0), "address": None}
    assert shape_record(null, 0, config)["address"] == []
    absent = _canonical(1)
    del absent["address"]
    assert "address" not in shape_record(absent, 1, config)
    one = shape_record(_canonical(2), 2, ManEmulatorConfig(address_list=True))
    assert one["address"] == [_canonical(2)["address"]]


def test_shape_record_iso2_null_and_null_addresses() -> None:
    config = ManEmulatorConfig(iso2_null=True, null_addresses=(5, 7))
    kept = shape_record(_canonical(4), 4, config)
    assert kept["address"] == {**_canonical(4)["address"], "iso2Code": None}
    assert kept["address"]["country"] == _canonical(4)["address"]["country"]
    for position in (5, 6):
        nulled = shape_record(_canonical(position), position, config)["address"]
        assert list(nulled) == list(_canonical(0)["address"])
        assert set(nulled.values()) == {None}
    assert shape_record(_canonical(7), 7, config)["address"]["city"] is not None


async def test_man_iso2_null_over_http() -> None:
    async with _client(iso2_null=True) as client:
        _, body = await _get(client, "/customer-users?limit=25")
    addresses = [record["address"] for record in body["data"]]
    assert {address["iso2Code"] for address in addresses} == {None}
    assert [a["country"] for a in addresses] == [
        r["address"]["country"] for r in Dataset(25, defects=False).records()
    ]


async def test_man_null_addresses_and_no_email_by_position() -> None:
    async with _client(null_addresses=(3, 5), no_email=(10, 20)) as client:
        _, body = await _get(client, "/customer-users?limit=25")
    records = body["data"]
    assert [i for i, r in enumerate(records) if "email" not in r] == list(range(10, 20))
    nulled = [i for i, r in enumerate(records) if r["address"]["city"] is None]
    assert nulled == [3, 4]
    assert set(records[3]["address"].values()) == {None} and len(records[3]["address"]) == 10
    assert records[9]["email"] == _canonical(9)["email"]


def test_dataset_country_names_are_english_and_match_iso2() -> None:
    names = {
        "AT": "Austria", "CZ": "Czechia", "DE": "Germany", "FR": "France", "IT": "Italy",
        "NL": "Netherlands", "PL": "Poland",
    }  # fmt: skip
    dataset = Dataset(3000)
    seen: dict[str, str] = {}
    for customer_id, record in zip(dataset.ids(), dataset.records(), strict=True):
        address = record.get("address")
        if not isinstance(address, dict) or customer_id in dataset.defects:
            continue
        seen[str(address["iso2Code"]).upper()] = address["country"]
        assert names[str(address["iso2Code"]).upper()] == address["country"], customer_id
    assert seen == names


# -- repeats --------------------------------------------------------------------------


async def test_man_repeat_all_serves_the_dataset_twice() -> None:
    dataset = Dataset(15, defects=False)
    async with _client(dataset, repeat_all=True) as client:
        served: list[dict[str, Any]] = []
        totals = set()
        offset = 0
        while True:
            _, body = await _get(client, f"/customer-users?offset={offset}&limit=10")
            served.extend(body["data"])
            totals.add(body["total"])
            offset += len(body["data"])
            if len(body["data"]) < 10:
                break
    assert totals == {30}
    assert served == [*dataset.records(), *dataset.records()]
    assert _ids(served) == _range(0, 15) * 2


# -- validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"limit_mode": "drop"}, "limit_mode"),
        ({"paging": "cursor"}, "paging"),
        ({"first_page": 2}, "first_page"),
        ({"limit_param": "offset"}, "distinct"),
        ({"paging": "page", "page_param": "limit"}, "distinct"),
        ({"offset_param": ""}, "distinct"),
        ({"past_end": "410"}, "past_end"),
        ({"data_path": ""}, "data_path"),
        ({"data_path": "a..b"}, "data_path"),
        ({"total_path": "data.total"}, "overlap"),
        ({"total_path": "offset"}, "overlap"),
        ({"data_path": "result", "total_path": "result.total"}, "overlap"),
        ({"field_names": {"id": "customerId"}}, "unknown keys"),
        ({"field_names": {"email": "role"}}, "same name"),
        ({"field_names": {"address": "addresses[0]"}}, "brackets"),
        ({"address_field_names": {"city": "zipCode"}}, "same name"),
        ({"flags": "yes"}, "flags"),
        ({"address_decoys": 1}, "address_list"),
        ({"address_decoys": -1, "address_list": True}, "negative"),
        ({"no_email": (5, 2)}, "no_email"),
        ({"null_addresses": (-1, 2)}, "null_addresses"),
    ],
)
def test_man_config_invalid_variants_raise(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ManEmulatorConfig(**fields)
    with pytest.raises(msgspec.ValidationError, match=message):
        msgspec.convert(fields, ManEmulatorConfig)


def test_man_config_page_mode_allows_limit_named_offset() -> None:
    # In page mode the offset parameter is not read, so its name may be anything.
    assert ManEmulatorConfig(paging="page", offset_param="limit").paging == "page"
    assert ManEmulatorConfig(total_path="page").total_path == "page"


def test_man_config_repr_names_variants_not_secrets() -> None:
    config = ManEmulatorConfig(token="s3cret", past_end="404", field_names={"email": "mail"})
    text = repr(config)
    assert "s3cret" not in text
    assert text.endswith(", past_end='404', field_names={'email': 'mail'})")
    assert "past_end" not in repr(ManEmulatorConfig())


# -- plan file and client configuration -----------------------------------------------

_PLAN = """
[man]
max_limit = 200
paging = "page"
first_page = 0
page_param = "pageNumber"
limit_param = "pageSize"
limit_mode = "clamp"
past_end = "404"
data_path = "result.items"
total_path = "result.count"
flags = "string"
address_list = true
address_decoys = 1
iso2_null = true
null_addresses = [10, 12]
no_email = [20, 30]
repeat_all = true

[man.field_names]
customer_id = "customerId"
address = "addresses"
email = "email"

[man.address_field_names]
zipCode = "postalCode"
"""


def test_plan_with_variants_loads_and_config_names_them(tmp_path: Path) -> None:
    path = tmp_path / "plan.toml"
    path.write_text(_PLAN)
    man = load_plan(str(path))["man"]
    assert (man.paging, man.first_page, man.page_param, man.limit_param) == (
        "page", 0, "pageNumber", "pageSize",
    )  # fmt: skip
    assert (man.limit_mode, man.past_end, man.flags) == ("clamp", "404", "string")
    assert (man.null_addresses, man.no_email) == ((10, 12), (20, 30))
    assert man.field_names == {
        "customer_id": "customerId",
        "address": "addresses",
        "email": "email",
    }

    expected = {
        "paging": "page",
        "first_page": 0,
        "page_param": "pageNumber",
        "limit_param": "pageSize",
        "data_path": "result.items",
        "total_path": "result.count",
        "fields": {"address": "addresses", "customer_id": "customerId"},
        "address_fields": {"zipCode": "postalCode"},
    }
    assert source_variant_keys(man) == expected
    plan = load_plan(str(path))
    source = tomllib.loads(config_toml(describe(URLS, plan=plan).config()))["source"]
    assert source == {
        "url": "http://127.0.0.1:1/customer-users",
        "page_size": 200,
        "max_in_flight": 4,
        "token_env": "MAN_TOKEN",
        **expected,
    }
    settings = settings_from_mapping(
        describe(URLS, plan=plan, env_prefix="PIPELINE_DEMO_").config(), {}
    ).source
    assert (settings.paging, settings.first_page, settings.page_param) == ("page", 0, "pageNumber")
    assert (settings.limit_param, settings.data_path, settings.total_path) == (
        "pageSize", "result.items", "result.count",
    )  # fmt: skip
    assert (settings.fields.customer_id, settings.fields.address) == ("customerId", "addresses")
    assert settings.address_fields.zipCode == "postalCode"


def test_default_plan_emits_no_variant_keys(tmp_path: Path) -> None:
    plan = load_plan(None)
    assert source_variant_keys(plan["man"]) == {}
    source = tomllib.loads(config_toml(describe(URLS, plan=plan).config()))["source"]
    assert set(source) == {"url", "page_size", "max_in_flight", "token_env"}
    path = tmp_path / "plan.toml"
    path.write_text(
        '[man]\nenvelope = "array"\ndata_path = "x.y"\ntotal_path = ""\n'
        'offset_param = "skip"\nlimit_mode = "ignore"\nhonour_offset = false\n'
    )
    assert source_variant_keys(load_plan(str(path))["man"]) == {"offset_param": "skip"}
