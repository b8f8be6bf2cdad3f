"""Sync-batch ids never overwrite another customer (issue 11, item 1).

The service upserts by ``id``. Two feeds with their own state files write into one service
here, through the whole pipeline, against the emulator's three answers to an id that holds
another user: it overwrites that user ("overwrite", upsert by id), it keeps the user and
echoes it ("keep"), or it refuses the item ("refuse"). Every customer of both feeds must end
in the service with its own data, and what cannot be told apart must be dead-lettered with a
reason, never counted as created.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import msgspec
import pytest

from pipeline.emulators import Dataset, ManEmulatorConfig, create_man_app, serve_app
from pipeline.records import Customer
from pipeline.report import PassReport
from pipeline.state.store import StateStore
from pipeline.targets.syncbatch.ids import IdPolicy, account_number
from pipeline.targets.syncbatch.settings import MAX_ID, SyncBatchSettings
from tests.conftest import MAN_TOKEN, Env, sb_config
from tests.kit.oracles import expected_account
from tests.kit.passes import run_pass

N = 120
ORGS_A = {"organisation_id_range": [1, 99]}
ORGS_B = {"organisation_id_range": [100, 199]}
RULE_A = {
    "account_ids": "customer_id",
    "customer_id_prefix": "C",
    "account_id_offset": 1_000_000,
    **ORGS_A,
}
RULE_B = {**RULE_A, "account_id_offset": 2_000_000, **ORGS_B}
RANGE_A = {"account_ids": "range", "account_id_range": [1, 999], **ORGS_A}
RANGE_B = {"account_ids": "range", "account_id_range": [1000, 1999], **ORGS_B}


def overrides(ids: dict[str, Any]) -> dict[str, Any]:
    """The test settings' sync-batch id keys replaced by ``ids``."""
    keys: dict[str, Any] = {
        "account_id_range": None,
        "customer_id_prefix": "",
        "account_id_offset": 0,
        "organisation_ids": {},
        "organisation_id_range": None,
    }
    return {f"targets__syncbatch__{key}": value for key, value in {**keys, **ids}.items()}


def customer(customer_id: str, unit: str = "Retail") -> Customer:
    return Customer(
        customer_id=customer_id,
        salutation="",
        first_name="F",
        last_name="L",
        email=f"{customer_id.lower()}@example.com",
        business_unit=unit,
        role="Buyer",
        address=None,
    )


def feed_b(size: int) -> Dataset:
    """Another master's customers: the same customer ids as feed A's, other people."""
    dataset = Dataset(size, seed=22, defects=False)
    for customer_id in dataset.ids():
        email = dataset.record(dataset.index_of(customer_id))["email"]
        dataset.update(customer_id, {"email": "b-" + email})
    return dataset


class Feeds:
    """Feed A and feed B: two MAN sources, two state files, one sync-batch service."""

    def __init__(self, env: Env, a: Dataset, b: Dataset, b_url: str) -> None:
        self.env = env
        self.datasets = {"a": a, "b": b}
        self.urls = {"a": f"{env.man_url}/customer-users", "b": f"{b_url}/customer-users"}

    async def run(self, feed: Literal["a", "b"], ids: dict[str, Any]) -> PassReport:
        report, _ = await run_pass(
            self.env,
            source__url=self.urls[feed],
            state__path=str(self.env.tmp_path / f"state-{feed}.sqlite3"),
            **overrides(ids),
        )
        return report

    def held(self) -> dict[str, dict[str, Any]]:
        """The service's accounts by user name."""
        return {a["userName"]: a for a in self.env.store.accounts.values()}

    def assert_present(self, feed: Literal["a", "b"]) -> None:
        """Every customer of ``feed`` is in the service, with its own data."""
        held = self.held()
        for raw in self.datasets[feed].records():
            expected = expected_account(raw)
            account = held.get(expected["userName"])
            assert account is not None, (feed, raw["customer_id"])
            for key, value in expected.items():
                assert account[key] == value, (feed, raw["customer_id"], key)


async def two_feeds(env: Env, clash: Literal["overwrite", "keep", "refuse"]) -> Feeds:
    a = Dataset(N, seed=21, defects=False)
    b = feed_b(N)
    await env.start(a, sb=sb_config(id_clash=clash))
    b_app = create_man_app(b, ManEmulatorConfig(token=MAN_TOKEN))
    b_url = await env.stack.enter_async_context(serve_app(b_app))
    return Feeds(env, a, b, b_url)


@pytest.mark.parametrize(
    ("ids_a", "ids_b"), [(RULE_A, RULE_B), (RANGE_A, RANGE_B)], ids=["rule", "range"]
)
@pytest.mark.parametrize("clash", ["overwrite", "keep", "refuse"])
async def test_two_feeds_two_state_files_one_service_keep_every_customer(
    env: Env, clash: Literal["overwrite", "keep", "refuse"], ids_a: Any, ids_b: Any
) -> None:
    feeds = await two_feeds(env, clash)
    first = await feeds.run("a", ids_a)
    second = await feeds.run("b", ids_b)
    writes = dict(env.store.writes)
    third = await feeds.run("a", ids_a)

    assert first.targets["syncbatch"].created == N
    assert second.targets["syncbatch"].created == N
    assert (third.targets["syncbatch"].created, third.targets["syncbatch"].unchanged) == (0, N)
    assert len(env.store.accounts) == 2 * N
    feeds.assert_present("a")
    feeds.assert_present("b")
    assert dict(env.store.writes) == writes  # feed A again wrote nothing
    assert all(count == 1 for count in writes.values())


async def test_a_lost_state_file_rewrites_the_same_accounts_with_the_rule(env: Env) -> None:
    feeds = await two_feeds(env, "overwrite")
    await feeds.run("a", RULE_A)
    (env.tmp_path / "state-a.sqlite3").unlink()
    again = await feeds.run("a", RULE_A)

    assert again.targets["syncbatch"].created == N  # a fresh state knows nothing: sent again
    assert again.targets["syncbatch"].dead_lettered == 0
    assert len(env.store.accounts) == N
    assert all(count == 2 for count in env.store.writes.values())
    feeds.assert_present("a")


@pytest.mark.parametrize("clash", ["keep", "refuse"])
async def test_a_shared_range_is_an_id_conflict_dead_lettered_and_allocation_stops(
    env: Env, clash: Literal["keep", "refuse"]
) -> None:
    feeds = await two_feeds(env, clash)
    await feeds.run("a", RANGE_A)
    before = {k: dict(v) for k, v in env.store.accounts.items()}
    # The operator's slip: feed B given A's account range (its organisations have their own).
    shared = await feeds.run("b", {**RANGE_A, **ORGS_B})

    counters = shared.targets["syncbatch"]
    assert (counters.created, counters.updated, counters.dead_lettered) == (0, 0, N)
    assert env.store.accounts == before  # nothing of feed A touched
    feeds.assert_present("a")
    async with StateStore(env.tmp_path / "state-b.sqlite3") as store:
        reasons = [d.reason for d in await store.dead_letters()]
        held = await store.ids("account", feeds.datasets["b"].ids())
    conflicts = [r for r in reasons if r.startswith("id conflict: ")]
    halted = [r for r in reasons if r.startswith("no id is taken from account_id_range")]
    assert conflicts and len(conflicts) + len(halted) == N
    assert "account_id_range [1, 999]" in conflicts[0]
    assert not held  # the ids proved someone else's: forgotten, never used again

    again = await feeds.run("b", {**RANGE_A, **ORGS_B})  # still halted: nothing written
    assert again.targets["syncbatch"].dead_lettered == N
    assert env.store.accounts == before

    fixed = await feeds.run("b", RANGE_B)  # a range of its own: every customer arrives
    assert fixed.targets["syncbatch"].created == N
    feeds.assert_present("a")
    feeds.assert_present("b")


async def test_customer_ids_the_rule_cannot_read_are_refused_with_the_reason(env: Env) -> None:
    dataset = Dataset(40, seed=5, defects=False)
    inserted = dataset.insert(10)  # "C0000009-5000": no whole number after "C"
    await env.start(dataset)
    report, _ = await run_pass(env, **overrides(RULE_A))

    counters = report.targets["syncbatch"]
    assert (counters.created, counters.dead_lettered) == (40, 1)
    async with StateStore(env.tmp_path / "state.sqlite3") as store:
        (letter,) = await store.dead_letters()
    assert letter.customer_id == inserted
    assert letter.reason == (
        "customer_id is no whole number after the prefix 'C', as account_ids = \"customer_id\" "
        "needs"
    )
    numbers = sorted(a["id"] for a in env.store.accounts.values())
    assert numbers == [1_000_000 + i for i in range(40)]


async def test_two_customer_ids_giving_one_number_are_told_apart(tmp_path: Path) -> None:
    settings = msgspec.convert(
        {
            "url": "http://127.0.0.1:1",
            "profile_url": "https://x/{customer_id}",
            **RULE_A,
            "organisation_ids": {"Retail": 7},
            "organisation_id_range": None,
        },
        SyncBatchSettings,
    )
    async with StateStore(tmp_path / "state.sqlite3") as store:
        ids = IdPolicy(settings, store)
        first = await ids.assign([customer("C0012"), customer("C12"), customer("C0013")])
        later = await ids.assign([customer("C00013"), customer("C0012")])
    assert first.accounts == {"C0012": 1_000_012, "C0013": 1_000_013}
    assert first.refused == {
        "C12": "account id 1000012 is customer C0012's already: both customer ids give the "
        "same number"
    }
    assert later.accounts == {"C0012": 1_000_012}
    assert set(later.refused) == {"C00013"}
    assert first.organisations == {"Retail": 7}


async def test_business_units_get_named_ids_or_ids_of_the_range(tmp_path: Path) -> None:
    base = {
        "url": "http://127.0.0.1:1",
        "profile_url": "https://x/{customer_id}",
        "account_ids": "customer_id",
        "customer_id_prefix": "C",
    }
    named = msgspec.convert({**base, "organisation_ids": {"Retail": 7}}, SyncBatchSettings)
    ranged = msgspec.convert(
        {**base, "organisation_ids": {"Retail": 7}, "organisation_id_range": [100, 101]},
        SyncBatchSettings,
    )
    batch = [
        customer("C1", "Retail"),
        customer("C2", "Wholesale"),
        customer("C3", "Online"),
        customer("C4", "Outlet"),
    ]
    async with StateStore(tmp_path / "state.sqlite3") as store:
        only_named = await IdPolicy(named, store).assign(batch)
        with_range = await IdPolicy(ranged, store).assign(batch)
        again = await IdPolicy(ranged, store).assign(batch[::-1])
        names = await IdPolicy(ranged, store).organisation_names([7, 100, 101, 5])
    assert only_named.organisations == {"Retail": 7}
    assert only_named.refused["C2"] == (
        "business unit 'Wholesale' has no organisation id: name it in "
        "targets.syncbatch.organisation_ids, or set organisation_id_range"
    )
    assert with_range.organisations == {"Retail": 7, "Wholesale": 100, "Online": 101}
    assert with_range.refused == {"C4": "organisation_id_range [100, 101] is used up"}
    assert again.organisations == with_range.organisations
    assert names == {7: "Retail", 100: "Wholesale", 101: "Online"}


NO_NUMBER = (
    "customer_id is no whole number after the prefix 'C', as account_ids = \"customer_id\" needs"
)
OUTSIDE = "the account id customer_id gives, {}, is not within 1..2147483647"


@pytest.mark.parametrize(
    ("customer_id", "prefix", "offset", "expected"),
    [
        ("C0001234", "C", 0, 1234),
        ("C-000123", "C-", 0, 123),
        ("C0001234", "C", 10_000_000, 10_001_234),
        ("42", "", 0, 42),
        ("C0000000", "C", 0, OUTSIDE.format(0)),  # 0 is "no id" to a .NET service
        ("C0000000", "C", 1, 1),
        ("C2147483647", "C", 0, MAX_ID),
        ("C2147483647", "C", 1, OUTSIDE.format(2147483648)),
        ("C99999999999", "C", 0, "the account id customer_id gives is not within 1..2147483647"),
        ("C" + "9" * 5000, "C", 0, "the account id customer_id gives is not within 1..2147483647"),
        ("C" + "0" * 5000 + "7", "C", 0, 7),
        ("X12", "C", 0, "customer_id does not start with customer_id_prefix 'C'"),
        ("C12-34", "C", 0, NO_NUMBER),
        ("C", "C", 0, NO_NUMBER),
        ("C\u0661\u0662", "C", 0, NO_NUMBER),  # Arabic-Indic digits: isdigit, not ASCII
        ("C +12", "C", 0, NO_NUMBER),
        ("C12 ", "C", 0, NO_NUMBER),
        ("1x", "", 0, 'customer_id is no whole number, as account_ids = "customer_id" needs'),
    ],
)
def test_account_number(customer_id: str, prefix: str, offset: int, expected: int | str) -> None:
    assert account_number(customer_id, prefix, offset) == expected


@pytest.mark.parametrize("clash", ["keep", "refuse"])
async def test_an_organisation_id_holding_another_organisation_is_an_id_conflict(
    env: Env, clash: Literal["keep", "refuse"]
) -> None:
    feeds = await two_feeds(env, clash)
    await feeds.run("a", RANGE_A)
    async with StateStore(env.tmp_path / "state-a.sqlite3") as store:
        units = list(dict.fromkeys(r["businessUnit"] for r in feeds.datasets["a"].records()))
        held = await store.ids("organisation", units)
    names = {number: unit for unit, number in held.items()}
    # Feed B names its organisations with feed A's ids, each one another unit's.
    order = sorted(held, key=held.__getitem__)
    swapped = dict(zip(order, [held[u] for u in order[1:] + order[:1]], strict=True))
    b = await feeds.run("b", {**RANGE_B, "organisation_ids": swapped})

    assert all(env.store.customers[n]["name"] == unit for n, unit in names.items())
    feeds.assert_present("a")
    counters = b.targets["syncbatch"]
    assert (counters.created, counters.dead_lettered) == (0, N)
    async with StateStore(env.tmp_path / "state-b.sqlite3") as store:
        reasons = {d.reason for d in await store.dead_letters()}
    assert {r.split(";")[0] for r in reasons} == {
        f"id conflict: the service holds another organisation under organisation id {n}"
        for n in held.values()
    }
    assert all("organisation_ids names it for this business unit" in r for r in reasons)


async def test_a_shared_organisation_range_halts_like_an_account_range(env: Env) -> None:
    feeds = await two_feeds(env, "keep")
    await feeds.run("a", RANGE_A)
    before = {n: dict(c) for n, c in env.store.customers.items()}
    # Feed B with its own account range but A's organisation range, its units in another
    # order: its first new unit takes an id feed A's first unit holds.
    b_units = list(dict.fromkeys(r["businessUnit"] for r in feeds.datasets["b"].records()))
    async with StateStore(env.tmp_path / "state-b.sqlite3") as store:
        await store.allocate_ids("organisation", b_units[::-1], (1, 99))
    b = await feeds.run("b", {**RANGE_B, **ORGS_A})

    assert env.store.customers == before  # no organisation of feed A renamed
    assert b.targets["syncbatch"].created < N
    async with StateStore(env.tmp_path / "state-b.sqlite3") as store:
        reasons = [d.reason for d in await store.dead_letters()]
        assert await store.meta("halted:organisation") == "[1, 99]"
    assert any(
        "another organisation" in r and "organisation_id_range [1, 99]" in r for r in reasons
    )


async def test_an_id_the_service_showed_taken_is_left_to_its_owner(tmp_path: Path) -> None:
    # Rule mode, a fresh state: "C0012" (another person) claims 12 first; the service shows
    # 12 holding someone else. "C12", whose id it is, must get it from then on.
    settings = msgspec.convert(
        {
            "url": "http://127.0.0.1:1",
            "profile_url": "https://x/{customer_id}",
            "account_ids": "customer_id",
            "customer_id_prefix": "C",
            "organisation_ids": {"Retail": 7},
        },
        SyncBatchSettings,
    )
    async with StateStore(tmp_path / "state.sqlite3") as store:
        ids = IdPolicy(settings, store)
        first = await ids.assign([customer("C0012")])
        reasons = await ids.conflicted(first.accounts)
        later = await IdPolicy(settings, store).assign([customer("C0012"), customer("C12")])
    assert first.accounts == {"C0012": 12}
    assert reasons == {
        "C0012": "id conflict: the service holds another user under account id 12; does "
        "another feed take ids from the same numbers? set account_id_offset"
    }
    assert later.accounts == {"C12": 12}
    assert later.refused == {
        "C0012": "id conflict: the service holds another user under account id 12 (seen on an "
        "earlier pass); does another feed take ids from the same numbers? set account_id_offset"
    }


async def test_feeds_taking_the_same_numbers_are_stopped_by_the_answer(env: Env) -> None:
    feeds = await two_feeds(env, "keep")
    await feeds.run("a", RULE_A)
    before = {k: dict(v) for k, v in env.store.accounts.items()}
    slip = await feeds.run("b", {**RULE_A, **ORGS_B})  # feed B forgot its own offset
    writes = env.store.writes.total()
    again = await feeds.run("b", {**RULE_A, **ORGS_B})

    assert (slip.targets["syncbatch"].created, slip.targets["syncbatch"].dead_lettered) == (0, N)
    assert again.targets["syncbatch"].dead_lettered == N
    assert env.store.writes.total() == writes  # the second pass sent nothing of them
    assert env.store.accounts == before
    fixed = await feeds.run("b", RULE_B)
    assert fixed.targets["syncbatch"].created == N
    feeds.assert_present("a")
    feeds.assert_present("b")


@pytest.mark.parametrize("clash", ["keep", "refuse", "overwrite"])
@pytest.mark.parametrize("ids", [RULE_A, RANGE_A], ids=["rule", "range"])
async def test_an_email_change_the_service_does_not_take_is_no_id_conflict(
    env: Env, clash: Literal["keep", "refuse", "overwrite"], ids: dict[str, Any]
) -> None:
    feeds = await two_feeds(env, clash)
    await feeds.run("a", ids)
    dataset = feeds.datasets["a"]
    changed = dataset.customer_id(3)
    old = dataset.record(3)["email"]
    dataset.update(changed, {"email": "new-" + old})
    second = await feeds.run("a", ids)
    dataset.update(changed, {"email": old})
    third = await feeds.run("a", ids)

    async with StateStore(env.tmp_path / "state-a.sqlite3") as store:
        letters = {d.customer_id: d.reason for d in await store.dead_letters()}
        assert await store.count_ids("account-disproved") == 0
        assert await store.meta("halted:account") is None
    if clash == "overwrite":  # the service takes the change, and the change back
        assert second.targets["syncbatch"].updated == 1
        assert third.targets["syncbatch"].updated == 1
    else:
        assert second.targets["syncbatch"].dead_lettered == 1
        expected = (
            "the service kept this customer's earlier user name under account id"
            if clash == "keep"
            else "Conflict: 'Id' belongs to another user."
        )
        assert expected in letters.get(changed, expected)
        assert third.targets["syncbatch"].dead_lettered == 0
    assert changed not in letters  # back to what the service holds: sent, and settled again
    feeds.assert_present("a")
    counts = third.targets["syncbatch"]
    assert (counts.updated, counts.unchanged, counts.dead_lettered) == (1, N - 1, 0)


async def test_an_email_change_after_a_lost_state_file_is_no_id_conflict(env: Env) -> None:
    # The new state file does not know the account; the echo shows it was written for this
    # very customer id in this organisation: the customer's own, not someone else's.
    feeds = await two_feeds(env, "keep")
    await feeds.run("a", RULE_A)
    (env.tmp_path / "state-a.sqlite3").unlink()
    dataset = feeds.datasets["a"]
    changed, old = dataset.customer_id(3), dataset.record(3)["email"]
    dataset.update(changed, {"email": "new-" + old})
    second = await feeds.run("a", RULE_A)
    dataset.update(changed, {"email": old})
    third = await feeds.run("a", RULE_A)

    assert second.targets["syncbatch"].dead_lettered == 1
    assert third.targets["syncbatch"].dead_lettered == 0
    async with StateStore(env.tmp_path / "state-a.sqlite3") as store:
        assert await store.count_ids("account-disproved") == 0
        assert await store.dead_letters() == []
    feeds.assert_present("a")


async def test_a_foreign_account_holding_our_earlier_user_name_is_still_an_id_conflict(
    env: Env,
) -> None:
    # Another system put its own account (same user name, its organisation, its customer)
    # under our id. An email change then shows it: that is someone else's, never ours.
    feeds = await two_feeds(env, "keep")
    await feeds.run("a", RULE_A)
    dataset = feeds.datasets["a"]
    changed, old = dataset.customer_id(3), dataset.record(3)["email"]
    number = 1_000_003
    theirs = {**env.store.accounts[number], "refId": 999, "meta": {"customerId": "X-9"}}
    env.store.accounts[number] = theirs
    dataset.update(changed, {"email": "new-" + old})
    second = await feeds.run("a", RULE_A)
    dataset.update(changed, {"email": old})
    third = await feeds.run("a", RULE_A)

    async with StateStore(env.tmp_path / "state-a.sqlite3") as store:
        (letter,) = await store.dead_letters()
    assert letter.customer_id == changed
    assert letter.reason.startswith(
        f"id conflict: the service holds another user under account id {number}"
    )
    assert second.targets["syncbatch"].dead_lettered == 1
    assert third.targets["syncbatch"].dead_lettered == 1  # never called ours again
    assert env.store.accounts[number] == theirs
