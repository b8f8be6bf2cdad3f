"""Whole passes against every plausible MAN server (issue 10).

MANPINT002 leaves the endpoint, the page-size cap, the end of data, the envelope and the
field names to be determined. Each case here plays one variant on the MAN emulator (the
emulator does not import the client) and runs the whole pipeline to sync-batch: every valid
record must be written exactly once and every invalid one dead-lettered with its reason, or
the pass must stop with a message that names the cause.
"""

from __future__ import annotations

from typing import Any

import pytest
from rich.console import Console

from pipeline.admin import dlq_replay
from pipeline.emulators import Dataset, ManEmulatorConfig
from pipeline.emulators.man import MAN_LOG
from tests.conftest import MAN_TOKEN, Env
from tests.kit.oracles import dead_letters, expected_account, stored_accounts
from tests.kit.passes import run_pass

# The emulator's own countries, written apart from the client's table (pycountry).
ALPHA3 = {"DEU": "DE", "AUT": "AT", "POL": "PL", "NLD": "NL", "FRA": "FR", "ITA": "IT", "CZE": "CZ"}

N = 250
"""Records per case: two and a half pages of 100, so every end condition is met mid-page."""


def man(**variant: Any) -> ManEmulatorConfig:
    return ManEmulatorConfig(token=MAN_TOKEN, **variant)


# variant name -> (the server, the client's [source] keys a user must set for it,
#                  defect kinds the variant turns valid)
VARIANTS: dict[str, tuple[ManEmulatorConfig, dict[str, Any], frozenset[str]]] = {
    "limit capped at 50, answered short": (
        man(limit_mode="clamp", max_limit=50),
        {},
        frozenset(),
    ),
    "limit capped at 50, no total": (
        man(limit_mode="clamp", max_limit=50, total_path=""),
        {},
        frozenset(),
    ),
    "limit ignored (always 10)": (man(limit_mode="ignore"), {}, frozenset()),
    "limit ignored, bare array": (man(limit_mode="ignore", envelope="array"), {}, frozenset()),
    "404 past the end": (man(past_end="404", total_path=""), {}, frozenset()),
    "400 past the end": (man(past_end="400", total_path=""), {}, frozenset()),
    "416 past the end": (man(past_end="416", total_path=""), {}, frozenset()),
    "empty body past the end": (man(past_end="empty_body", total_path=""), {}, frozenset()),
    "null list past the end": (man(past_end="null", total_path=""), {}, frozenset()),
    "404 past the end, with total": (man(past_end="404"), {}, frozenset()),
    "paging parameters named size and from": (
        man(limit_param="size", offset_param="from"),
        {"limit_param": "size", "offset_param": "from"},
        frozenset(),
    ),
    "last page again past the end (offset clamped)": (
        man(past_end="last_page", total_path=""),
        {},
        frozenset(),
    ),
    "last page again past the end, with total": (man(past_end="last_page"), {}, frozenset()),
    "total 20 too small": (man(total_delta=-20), {}, frozenset()),
    "total 100 too large": (man(total_delta=100), {}, frozenset()),
    "nested envelope": (
        man(data_path="result.data", total_path="result.total"),
        {"data_path": "result.data", "total_path": "result.total"},
        frozenset(),
    ),
    "flags as 1/0": (man(flags="int"), {}, frozenset()),
    "flags as strings": (man(flags="string"), {}, frozenset()),
    "customerId and renamed address fields": (
        man(
            field_names={"customer_id": "customerId", "firstName": "first_name"},
            address_field_names={"zipCode": "postalCode"},
        ),
        {
            "fields": {"customer_id": "customerId", "firstName": "first_name"},
            "address_fields": {"zipCode": "postalCode"},
        },
        frozenset(),
    ),
    "addresses as a list, decoys after the default one": (
        man(field_names={"address": "addresses"}, address_list=True, address_decoys=2),
        {"fields": {"address": "addresses"}},
        frozenset(),
    ),
    "iso2Code null, country name kept": (
        man(iso2_null=True),
        {},
        frozenset({"iso2_three_letters"}),
    ),
    "page numbers from 1, pageSize": (
        man(paging="page", page_param="page", limit_param="pageSize", first_page=1),
        {"paging": "page", "limit_param": "pageSize", "first_page": 1},
        frozenset(),
    ),
    "page numbers from 0, capped at 30": (
        man(paging="page", first_page=0, limit_mode="clamp", max_limit=30),
        {"paging": "page", "first_page": 0},
        frozenset(),
    ),
}


def source_keys(keys: dict[str, Any]) -> dict[str, Any]:
    return {f"source__{k}": v for k, v in keys.items()}


@pytest.mark.parametrize("name", list(VARIANTS))
async def test_every_variant_delivers_every_valid_record_once(env: Env, name: str) -> None:
    server, keys, turned_valid = VARIANTS[name]
    dataset = Dataset(N, seed=21)
    await env.start(dataset, man=server)

    report, _ = await run_pass(env, **source_keys(keys))

    assert report.error is None, report.error
    # A total larger than what is served is said, and no deactivation follows.
    too_large = server.total_delta > 0 and bool(server.total_path)
    assert report.complete is not too_large
    assert report.source.shortfall == (server.total_delta if too_large else 0)
    invalid = {c for c, kind in dataset.defects.items() if kind not in turned_valid}
    valid = [r for r in dataset.records() if r["customer_id"] not in invalid]
    stored = stored_accounts(env)
    assert set(stored) == {r["customer_id"] for r in valid}
    for raw in valid:  # the right values, the default address and not a decoy
        account = stored[raw["customer_id"]]
        expected = expected_account(raw)
        if raw["customer_id"] in dataset.defects:  # a three-letter code, completed from the name
            expected["country"] = ALPHA3[expected["country"]]
        for key, value in expected.items():
            assert account[key] == value, (raw["customer_id"], key)
    assert all(n == 1 for n in env.store.writes.values())  # nothing written twice
    assert set(await dead_letters(env, "syncbatch")) == invalid
    assert report.targets["syncbatch"].created == len(valid)
    assert report.source.checkpoint == N


async def test_a_capped_limit_is_followed_at_the_servers_page_size(env: Env) -> None:
    await env.start(Dataset(N, seed=21), man=man(limit_mode="clamp", max_limit=50))
    report, _ = await run_pass(env, source__overlap=0)
    assert report.source.page_size == 50
    assert report.source.pages == 5


async def test_an_ignored_offset_aborts_naming_the_cause(env: Env) -> None:
    await env.start(Dataset(N, seed=21), man=man(honour_offset=False))

    report, _ = await run_pass(env)

    assert report.status == "aborted"
    assert report.complete is False
    assert report.error is not None
    # Its first page, then the same records at 90, 180 and 270: the third repeat stops it.
    assert "no new record at offset 270: does it honour `offset`?" in report.error
    # Only the first page was taken (the one an offset-blind server serves right).
    assert report.source.records == 100
    assert report.source.checkpoint <= 100
    assert len(stored_accounts(env)) <= 100


async def test_a_page_number_server_read_by_offset_points_at_the_setting(env: Env) -> None:
    await env.start(Dataset(N, seed=21), man=man(paging="page"))
    report, _ = await run_pass(env)
    assert report.status == "aborted"
    assert report.error is not None
    assert 'source.paging = "page"' in report.error


async def test_an_ignored_page_number_aborts_naming_the_parameter(env: Env) -> None:
    await env.start(Dataset(N, seed=21), man=man(paging="page", honour_offset=False))
    report, _ = await run_pass(env, source__paging="page", source__first_page=1)
    assert report.status == "aborted"
    assert report.error is not None
    assert "no new record at page 4: does it honour `page`?" in report.error


async def test_a_404_before_the_end_is_still_a_failure(env: Env) -> None:
    await env.start(Dataset(N, seed=21), man=man(past_end="404", alias="/elsewhere"))
    report, _ = await run_pass(env)  # the configured path answers 404 on its first page
    assert report.status == "aborted"
    assert report.error is not None
    assert "answered 404" in report.error
    assert "(offset 0)" in report.error


@pytest.mark.parametrize("pages", [(0, 100), (100, 200), (0, N)])
async def test_pages_whose_every_record_is_invalid_are_dead_lettered(
    env: Env, pages: tuple[int, int]
) -> None:
    dataset = Dataset(N, seed=21, defects=False)
    await env.start(dataset, man=man(no_email=pages))

    report, _ = await run_pass(env)

    start, end = pages
    broken = {dataset.customer_id(i) for i in range(start, end)}
    letters = await dead_letters(env, "syncbatch")
    assert set(letters) == broken
    assert set(letters.values()) == {"email is missing"}
    assert set(stored_accounts(env)) == {dataset.customer_id(i) for i in range(N)} - broken
    assert report.status == "dead_letters"
    assert report.source.checkpoint == N

    # The documented recovery right after: the records are read again, still refused.
    console = Console(record=True, width=200)
    code, replayed = await dlq_replay(env.settings(), console)
    assert replayed is not None
    assert code == 3
    assert replayed.targets["syncbatch"].dead_lettered == len(broken)
    assert replayed.targets["syncbatch"].created == 0
    assert f"{len(broken):,} still refused" in console.export_text()
    assert set(await dead_letters(env, "syncbatch")) == broken


async def test_a_source_that_serves_everything_twice_is_written_once(env: Env) -> None:
    dataset = Dataset(N, seed=21)
    await env.start(dataset, man=man(repeat_all=True))

    report, _ = await run_pass(env)

    assert report.error is None
    assert set(stored_accounts(env)) == set(dataset.ids()) - set(dataset.defects)
    assert all(n == 1 for n in env.store.writes.values())
    assert report.source.checkpoint >= N
    # Its total counts every copy: half of it are not customers, so no deactivation follows.
    assert report.source.shortfall == N
    assert report.complete is False


async def test_an_address_with_every_field_null_is_no_address(env: Env) -> None:
    dataset = Dataset(N, seed=21, defects=False)
    await env.start(dataset, man=man(null_addresses=(0, 100)))
    report, _ = await run_pass(env)
    assert report.status == "ok"
    stored = stored_accounts(env)
    assert len(stored) == N
    assert all("country" not in stored[dataset.customer_id(i)] for i in range(100))


async def test_unknown_paging_parameter_names_abort_instead_of_reading_ten(env: Env) -> None:
    # The server ignores limit/offset it does not know: it serves its first 10 every time.
    await env.start(Dataset(N, seed=21), man=man(limit_param="size", offset_param="from"))
    report, _ = await run_pass(env)
    assert report.status == "aborted"
    assert report.error is not None
    assert "does it honour `offset`?" in report.error
    assert report.source.records == 10


async def test_a_renamed_id_not_configured_is_dead_lettered_not_a_crash(env: Env) -> None:
    dataset = Dataset(N, seed=21, defects=False)
    await env.start(dataset, man=man(field_names={"customer_id": "customerId"}))
    report, _ = await run_pass(env)
    assert report.status == "dead_letters"
    assert report.source.checkpoint == N
    letters = await dead_letters(env, "syncbatch")
    assert len(letters) == N
    assert set(letters.values()) == {"customer_id is missing"}
    assert stored_accounts(env) == {}


@pytest.mark.parametrize("page_size", [20, 100])
async def test_records_past_a_total_that_is_too_small_are_read(env: Env, page_size: int) -> None:
    dataset = Dataset(N, seed=21)
    await env.start(dataset, man=man(total_delta=-20, max_limit=page_size))
    report, _ = await run_pass(env, source__page_size=page_size)
    assert report.error is None
    assert report.complete is True
    assert set(stored_accounts(env)) == set(dataset.ids()) - set(dataset.defects)


async def test_an_empty_page_with_records_after_it_stops_the_pass(env: Env) -> None:
    await env.start(Dataset(N, seed=21), man=man(empty_at=(90, 100)))
    report, _ = await run_pass(env)
    assert report.status == "aborted"
    assert report.complete is False
    assert report.error is not None
    assert "answered no records (offset 90), but records follow at offset 180" in report.error
    assert report.source.checkpoint <= 100


@pytest.mark.parametrize("total", ["total", ""])
async def test_a_server_that_stops_honouring_the_offset_part_way_ends(env: Env, total: str) -> None:
    await env.start(Dataset(N, seed=21), man=man(ignore_offset_from=90, total_path=total))
    report, _ = await run_pass(env)  # within the deadline: it does not read forever
    assert report.source.records < N
    if total:  # the total tells the read fell short: no deactivation
        assert report.complete is False
        assert report.source.shortfall == N - 190
    assert env.man_app is not None
    assert len(env.man_app[MAN_LOG]) < 30


@pytest.mark.parametrize("status", ["404", "416"])
@pytest.mark.parametrize(
    "keys", [{"paging": "page", "first_page": 1}, {"overlap": 0}], ids=["page", "offset"]
)
async def test_an_error_right_after_a_full_last_page_is_the_end(
    env: Env, status: str, keys: dict[str, Any]
) -> None:
    paging = {"paging": "page", "first_page": 1} if "paging" in keys else {}
    dataset = Dataset(200, seed=21)
    await env.start(dataset, man=man(past_end=status, total_path="", **paging))
    report, _ = await run_pass(env, **source_keys(keys))
    assert report.error is None
    assert report.complete is True
    assert set(stored_accounts(env)) == set(dataset.ids()) - set(dataset.defects)


async def test_pages_numbered_from_0_read_as_from_1_stop_the_pass(env: Env) -> None:
    await env.start(Dataset(N, seed=21), man=man(paging="page", first_page=0, total_path=""))
    report, _ = await run_pass(env, source__paging="page", source__first_page=1)
    assert report.status == "aborted"
    assert report.error is not None
    assert "numbers its pages from 0, so set source.first_page = 0" in report.error
    assert stored_accounts(env) == {}


async def test_a_source_that_repeats_records_is_never_complete(env: Env) -> None:
    # Larger than the pages the read remembers: the repeats reach the transform.
    dataset = Dataset(1_000, seed=21)
    await env.start(dataset, man=man(repeat_all=True, total_path=""))
    report, _ = await run_pass(env, targets__syncbatch__deactivate_missing=True)
    assert report.error is None
    assert set(stored_accounts(env)) == set(dataset.ids()) - set(dataset.defects)
    assert report.source.duplicates > 0
    assert report.complete is False  # records read twice: the order moved, no deactivation
    assert report.deactivation_held is not None
    assert "were read twice: the source's order moved" in report.deactivation_held
