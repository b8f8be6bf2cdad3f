"""Tests of the SQLite state store: hashes, dead letters, stable ids, pass history, schema."""

from __future__ import annotations

import os
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import anyio
import pytest

from pipeline.errors import StateError
from pipeline.records import Ack
from pipeline.state.store import DeadLetter, PassRecord, StateStore

DEADLINE = 5
pytestmark = pytest.mark.timeout(10)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "pipeline.sqlite3"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[StateStore]:
    # No cancel scope here: fixture setup and teardown run in different tasks; the
    # pytest-timeout mark bounds them instead.
    async with StateStore(db_path) as opened:
        yield opened


def created(customer_id: str, hash_: bytes, target: str = "syncbatch") -> Ack:
    return Ack(target, customer_id, "created", hash=hash_)


def updated(customer_id: str, hash_: bytes, target: str = "syncbatch") -> Ack:
    return Ack(target, customer_id, "updated", hash=hash_)


def dead(customer_id: str, reason: str, target: str = "syncbatch") -> Ack:
    return Ack(target, customer_id, "dead", reason=reason)


# Hashes ---------------------------------------------------------------------------------


async def test_hashes_round_trip_created_and_updated(store: StateStore) -> None:
    with anyio.fail_after(DEADLINE):
        await store.apply([created("c1", b"h1" * 8), updated("c2", b"h2" * 8)])
        found = await store.hashes("syncbatch", ["c1", "c2", "c3"])
    assert found == {"c1": b"h1" * 8, "c2": b"h2" * 8}


async def test_hashes_update_replaces_previous(store: StateStore) -> None:
    with anyio.fail_after(DEADLINE):
        await store.apply([created("c1", b"old")])
        await store.apply([updated("c1", b"new")])
        assert await store.hashes("syncbatch", ["c1"]) == {"c1": b"new"}
    assert store.confirmed_count_sync("syncbatch") == 1


async def test_hashes_are_per_target(store: StateStore) -> None:
    with anyio.fail_after(DEADLINE):
        await store.apply([created("c1", b"sb"), created("c1", b"em", target="emporix")])
        assert await store.hashes("syncbatch", ["c1"]) == {"c1": b"sb"}
        assert await store.hashes("emporix", ["c1"]) == {"c1": b"em"}
        assert await store.hashes("norce", ["c1"]) == {}


@pytest.mark.parametrize("keys", [[], ["nobody"], ["c1", "c1"]], ids=["none", "unknown", "dup"])
async def test_hashes_edge_inputs(store: StateStore, keys: list[str]) -> None:
    with anyio.fail_after(DEADLINE):
        await store.apply([created("c1", b"h")])
        found = await store.hashes("syncbatch", keys)
    assert found == ({"c1": b"h"} if "c1" in keys else {})


async def test_hashes_survive_reopen(db_path: Path) -> None:
    with anyio.fail_after(DEADLINE):
        async with StateStore(db_path) as first:
            await first.apply([created("c1", b"h1")])
        async with StateStore(db_path) as second:
            assert await second.hashes("syncbatch", ["c1"]) == {"c1": b"h1"}


@pytest.mark.parametrize("count", [499, 500, 501, 1234])
async def test_hashes_large_inputs_are_chunked(store: StateStore, count: int) -> None:
    keys = [f"c{i:05d}" for i in range(count)]
    with anyio.fail_after(DEADLINE):
        await store.apply([created(k, k.encode()) for k in keys])
        found = await store.hashes("syncbatch", [*keys, "missing"])
    assert found == {k: k.encode() for k in keys}
    assert store.confirmed_count_sync("syncbatch") == count


# Dead letters ---------------------------------------------------------------------------


async def test_dead_ack_twice_counts_attempts_keeps_first_seen(store: StateStore) -> None:
    store.apply_sync([dead("c1", "rejected with 400")], now=1000.0)
    store.apply_sync([dead("c1", "email already used")], now=2000.0)
    with anyio.fail_after(DEADLINE):
        letters = await store.dead_letters()
    assert letters == [
        DeadLetter(
            target="syncbatch",
            customer_id="c1",
            reason="email already used",
            first_seen=1000.0,
            last_seen=2000.0,
            attempts=2,
        )
    ]


async def test_dead_ack_through_async_apply(store: StateStore) -> None:
    before = time.time()
    with anyio.fail_after(DEADLINE):
        await store.apply([dead("c1", "first")])
        await store.apply([dead("c1", "second")])
        await store.apply([dead("c1", "third")])
        [letter] = await store.dead_letters("syncbatch")
    assert (letter.customer_id, letter.reason, letter.attempts) == ("c1", "third", 3)
    assert before <= letter.first_seen <= letter.last_seen <= time.time()


async def test_dead_ack_without_reason_stored_empty(store: StateStore) -> None:
    store.apply_sync([Ack("syncbatch", "c1", "dead")], now=5.0)
    with anyio.fail_after(DEADLINE):
        letters = await store.dead_letters()
    assert letters == [DeadLetter("syncbatch", "c1", "", 5.0, 5.0, 1)]


async def test_confirmed_ack_clears_dead_letter(store: StateStore) -> None:
    with anyio.fail_after(DEADLINE):
        await store.apply([dead("c1", "timeout"), dead("c2", "timeout")])
        await store.apply([dead("c1", "timeout", target="emporix")])
        await store.apply([created("c1", b"h1")])
        letters = await store.dead_letters()
        assert await store.hashes("syncbatch", ["c1"]) == {"c1": b"h1"}
    assert [(d.target, d.customer_id) for d in letters] == [
        ("emporix", "c1"),
        ("syncbatch", "c2"),
    ]


async def test_dead_letter_after_clear_starts_over(store: StateStore) -> None:
    store.apply_sync([dead("c1", "a")], now=1.0)
    store.apply_sync([dead("c1", "b")], now=2.0)
    store.apply_sync([updated("c1", b"h")], now=3.0)
    store.apply_sync([dead("c1", "c")], now=4.0)
    with anyio.fail_after(DEADLINE):
        letters = await store.dead_letters("syncbatch")
    assert letters == [DeadLetter("syncbatch", "c1", "c", 4.0, 4.0, 1)]


async def test_dead_letter_keeps_confirmed_hash(store: StateStore) -> None:
    with anyio.fail_after(DEADLINE):
        await store.apply([created("c1", b"h1")])
        await store.apply([dead("c1", "rejected with 400")])
        assert await store.hashes("syncbatch", ["c1"]) == {"c1": b"h1"}
        assert [d.customer_id for d in await store.dead_letters()] == ["c1"]


async def test_dead_letters_filtered_and_sorted(store: StateStore) -> None:
    with anyio.fail_after(DEADLINE):
        await store.apply(
            [
                dead("c2", "x"),
                dead("c1", "x", target="norce"),
                dead("c1", "x"),
                dead("a9", "x", target="emporix"),
            ]
        )
        everything = await store.dead_letters()
        only_sb = await store.dead_letters("syncbatch")
    assert [(d.target, d.customer_id) for d in everything] == [
        ("emporix", "a9"),
        ("norce", "c1"),
        ("syncbatch", "c1"),
        ("syncbatch", "c2"),
    ]
    assert [d.customer_id for d in only_sb] == ["c1", "c2"]


async def test_apply_empty_group_changes_nothing(store: StateStore) -> None:
    with anyio.fail_after(DEADLINE):
        await store.apply([])
        assert await store.dead_letters() == []
    assert store.confirmed_count_sync("syncbatch") == 0


async def test_apply_failure_rolls_back_the_group(store: StateStore) -> None:
    # A NULL customer_id breaks the dead-letter insert, after the confirmed rows were written.
    broken = Ack("syncbatch", None, "dead", reason="x")  # type: ignore[arg-type]
    with anyio.fail_after(DEADLINE):
        await store.apply([dead("c2", "timeout")])
        with pytest.raises(StateError, match="NOT NULL constraint failed"):
            await store.apply([created("c1", b"h1"), created("c2", b"h2"), broken])
        assert await store.hashes("syncbatch", ["c1", "c2"]) == {}
        assert [d.customer_id for d in await store.dead_letters()] == ["c2"]
        await store.apply([created("c3", b"h3")])
        assert await store.hashes("syncbatch", ["c3"]) == {"c3": b"h3"}


# Ids ------------------------------------------------------------------------------------


async def test_allocate_gives_ids_from_the_span_in_order_once_per_key(store: StateStore) -> None:
    with anyio.fail_after(DEADLINE):
        first = await store.allocate_ids("account", ["a", "b", "a", "c"], (100, 199))
        looked_up = await store.ids("account", ["c", "a", "b", "unknown"])
    assert first == {"a": 100, "b": 101, "c": 102}
    assert looked_up == first


async def test_allocate_stops_at_the_end_of_the_span(store: StateStore) -> None:
    with anyio.fail_after(DEADLINE):
        assert await store.allocate_ids("account", ["a", "b"], (5, 6)) == {"a": 5, "b": 6}
        assert await store.allocate_ids("account", ["c"], (5, 6)) == {}
        assert await store.ids("account", ["c"]) == {}


async def test_allocate_never_gives_a_forgotten_id_again(db_path: Path) -> None:
    with anyio.fail_after(DEADLINE):
        async with StateStore(db_path) as store:
            await store.allocate_ids("account", ["a", "b"], (10, 99))
            await store.forget_ids("account", ["b"])  # 11, the highest, is someone else's
        async with StateStore(db_path) as reopened:
            assert await reopened.ids("account", ["a", "b"]) == {"a": 10}
            assert await reopened.allocate_ids("account", ["b"], (10, 99)) == {"b": 12}


async def test_allocate_moves_a_key_held_outside_the_span_into_it(store: StateStore) -> None:
    with anyio.fail_after(DEADLINE):
        await store.allocate_ids("account", ["a"], (1, 9))
        assert await store.allocate_ids("account", ["a"], (50, 59)) == {"a": 50}
        assert await store.ids("account", ["a"]) == {"a": 50}


async def test_allocate_spans_and_kinds_are_apart(store: StateStore) -> None:
    with anyio.fail_after(DEADLINE):
        assert await store.allocate_ids("organisation", ["x"], (1, 9)) == {"x": 1}
        assert await store.allocate_ids("account", ["x"], (1, 9)) == {"x": 1}
        assert await store.allocate_ids("account", ["y"], (1000, 1009)) == {"y": 1000}
        assert await store.allocate_ids("account", ["z"], (1, 9)) == {"z": 2}


@pytest.mark.parametrize("count", [500, 501, 1500])
async def test_ids_large_inputs_are_chunked(store: StateStore, count: int) -> None:
    keys = [f"k{i:05d}" for i in range(count)]
    with anyio.fail_after(DEADLINE):
        first = await store.allocate_ids("account", keys, (1, 10_000))
        second = await store.ids("account", [*reversed(keys), "extra"])
        claimed = await store.claim_ids("other", {k: i + 1 for i, k in enumerate(keys)})
    assert first == {k: i + 1 for i, k in enumerate(keys)}
    assert second == first
    assert claimed == {}


async def test_claim_records_ids_and_names_the_holder_of_a_taken_one(store: StateStore) -> None:
    with anyio.fail_after(DEADLINE):
        assert await store.claim_ids("account", {"C0012": 12, "C0013": 13}) == {}
        # "C12" gives 12 too: refused, naming who holds it; in one call as across calls.
        assert await store.claim_ids("account", {"C12": 12, "C7": 7, "C007": 7}) == {
            "C12": "C0012",
            "C007": "C7",
        }
        held = await store.ids("account", ["C0012", "C0013", "C12", "C7", "C007"])
    assert held == {"C0012": 12, "C0013": 13, "C7": 7}


async def test_claim_moves_a_key_to_its_new_id(store: StateStore) -> None:
    with anyio.fail_after(DEADLINE):
        await store.claim_ids("account", {"a": 1})
        assert await store.claim_ids("account", {"a": 2}) == {}
        assert await store.claim_ids("account", {"b": 1}) == {}
        assert await store.ids("account", ["a", "b"]) == {"a": 2, "b": 1}


async def test_ids_are_shared_by_two_stores_on_one_file(db_path: Path) -> None:
    with anyio.fail_after(DEADLINE):
        async with StateStore(db_path) as a:
            assert await a.allocate_ids("account", ["c1"], (1, 9)) == {"c1": 1}
            async with StateStore(db_path) as b:
                assert await b.allocate_ids("account", ["c2"], (1, 9)) == {"c2": 2}
                assert await b.ids("account", ["c1", "c2"]) == {"c1": 1, "c2": 2}


async def test_meta_round_trip(db_path: Path) -> None:
    with anyio.fail_after(DEADLINE):
        async with StateStore(db_path) as store:
            assert await store.meta("halted:account") is None
            await store.set_meta("halted:account", "[1, 9]")
        async with StateStore(db_path) as reopened:
            assert await reopened.meta("halted:account") == "[1, 9]"


# Passes ---------------------------------------------------------------------------------


async def test_passes_start_finish_listed_newest_first(store: StateStore) -> None:
    before = time.time()
    with anyio.fail_after(DEADLINE):
        first = await store.start_pass()
        await store.finish_pass(first, "ok", b'{"sent": 3}', 0)
        second = await store.start_pass()
    after = time.time()
    assert (first, second) == (1, 2)
    running, done = store.passes_sync()
    assert (running.id, running.finished_at, running.status, running.report) == (
        2,
        None,
        "running",
        None,
    )
    assert (done.id, done.status, done.report) == (1, "ok", '{"sent": 3}')
    assert done.finished_at is not None
    assert before <= done.started_at <= done.finished_at <= after
    assert done.started_at <= running.started_at <= after


async def test_passes_sync_with_explicit_times(store: StateStore) -> None:
    assert store.start_pass_sync(now=100.0) == 1
    assert store.start_pass_sync(now=200.0) == 2
    assert store.passes_sync() == [
        PassRecord(2, 200.0, None, "running", None, 0, 0),
        PassRecord(1, 100.0, None, "running", None, 0, 0),
    ]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize(
    ("owner", "status"),
    [
        (lambda: f"{socket.gethostname()}:{_dead_pid()}", "interrupted"),
        (lambda: f"{socket.gethostname()}:{os.getpid()}", "running"),
        (lambda: f"{socket.gethostname()}:1", "running"),  # alive (init), not ours to judge
        (lambda: f"another-host:{_dead_pid()}", "running"),
    ],
)
async def test_a_running_pass_whose_process_is_gone_is_interrupted(
    store: StateStore, db_path: Path, owner: Callable[[], str], status: str
) -> None:
    first = store.start_pass_sync(now=1.0)
    store.conn.execute("UPDATE passes SET owner=? WHERE id=?", (owner(), first))
    assert [p.status for p in store.passes_sync()] == [status]
    second = store.start_pass_sync(now=2.0)  # a new pass judges the old ones too
    assert [(p.id, p.status) for p in store.passes_sync()] == [
        (second, "running"),
        (first, status),
    ]


async def test_passes_sync_limit(store: StateStore) -> None:
    for i in range(12):
        store.start_pass_sync(now=float(i))
    assert [p.id for p in store.passes_sync()] == list(range(12, 2, -1))
    assert [p.id for p in store.passes_sync(limit=3)] == [12, 11, 10]


async def test_passes_survive_reopen(db_path: Path) -> None:
    with anyio.fail_after(DEADLINE):
        async with StateStore(db_path) as first:
            pass_id = await first.start_pass()
            await first.finish_pass(pass_id, "dead-lettered", b"{}", 0)
        async with StateStore(db_path) as second:
            assert await second.start_pass() == 2
            assert [(p.id, p.status) for p in second.passes_sync()] == [
                (2, "running"),
                (1, "dead-lettered"),
            ]


# Opening, schema, journal ---------------------------------------------------------------


async def test_open_creates_missing_parent_directory(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "state.sqlite3"
    with anyio.fail_after(DEADLINE):
        async with StateStore(path) as store:
            await store.ids("account", ["c1"])
    assert path.is_file()


async def test_open_other_schema_version_raises(db_path: Path) -> None:
    with anyio.fail_after(DEADLINE):
        async with StateStore(db_path):
            pass
    conn = sqlite3.connect(db_path)
    try:
        with conn:
            conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    finally:
        conn.close()
    store = StateStore(db_path)
    with pytest.raises(StateError) as info, anyio.fail_after(DEADLINE):
        await store.__aenter__()
    assert str(info.value) == f"{db_path}: schema version 99, expected 3"


async def test_open_records_schema_version(store: StateStore, db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    finally:
        conn.close()
    assert row == ("3",)


async def test_version_1_store_is_migrated_keeping_its_data(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    conn = sqlite3.connect(db_path)
    try:
        with conn:
            conn.executescript(
                "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                "INSERT INTO meta VALUES ('schema_version', '1');"
                "CREATE TABLE passes (id INTEGER PRIMARY KEY, started_at REAL NOT NULL, "
                "finished_at REAL, status TEXT NOT NULL, report TEXT);"
                "INSERT INTO passes (started_at, status) VALUES (1.0, 'running');"
            )
    finally:
        conn.close()
    with anyio.fail_after(DEADLINE):
        async with StateStore(db_path) as store:
            # Written before passes had owners: no process of that age runs it now.
            assert [(p.id, p.status, p.checkpoint) for p in store.passes_sync()] == [
                (1, "interrupted", 0)
            ]
            assert await store.resume_offset() == 0


async def test_resume_offset_is_the_checkpoint_of_an_unfinished_pass(store: StateStore) -> None:
    with anyio.fail_after(DEADLINE):
        first = await store.start_pass()
        await store.apply([], checkpoint=(first, 300))
        assert await store.resume_offset() == 300  # killed while running
        await store.finish_pass(first, "stopped", b"{}", 400)
        assert await store.resume_offset() == 400
        second = await store.start_pass(400)
        await store.finish_pass(second, "ok", b"{}", 1000)
        assert await store.resume_offset() == 0


async def test_open_not_a_database_raises(tmp_path: Path) -> None:
    path = tmp_path / "garbage.sqlite3"
    path.write_bytes(b"this is not a sqlite database, just text" * 100)
    with pytest.raises(StateError, match=r"^cannot open state store "), anyio.fail_after(DEADLINE):
        async with StateStore(path):
            pass


async def test_open_uses_wal_journal(store: StateStore, db_path: Path) -> None:
    assert store.conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    other = sqlite3.connect(db_path)
    try:
        assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        other.close()


async def test_closed_store_raises_state_error(db_path: Path) -> None:
    with anyio.fail_after(DEADLINE):
        async with StateStore(db_path) as store:
            pass
        with pytest.raises(StateError, match=r"^state store is not open$"):
            await store.ids("account", ["c1"])


async def test_checkpoint_is_resumed_only_by_a_pass_to_the_same_targets(
    store: StateStore,
) -> None:
    with anyio.fail_after(DEADLINE):
        subset = await store.start_pass(0, ["syncbatch"])
        await store.apply([], checkpoint=(subset, 500))
        assert await store.resume_offset(["syncbatch"]) == 500
        assert await store.resume_offset(["emporix", "syncbatch"]) == 0
        dry = await store.start_pass(0, [])  # a dry run or a replay keeps no checkpoint
        await store.apply([], checkpoint=(dry, 900))
        assert await store.resume_offset(["syncbatch"]) == 0


async def test_dead_lettered_lists_the_customers_of_one_target(store: StateStore) -> None:
    with anyio.fail_after(DEADLINE):
        await store.apply([dead("c1", "refused"), dead("c2", "refused")])
        await store.apply([dead("c2", "refused", target="emporix")])
        await store.apply([created("c1", b"h1")])
        assert await store.dead_lettered("syncbatch") == {"c2"}
        assert await store.dead_lettered("emporix") == {"c2"}


# Files: modes, read-only opens -----------------------------------------------------------


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)  # the usual one, which made the state 0644 before
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_state_files_are_created_readable_by_their_owner_only(
    db_path: Path, umask_022: None
) -> None:
    with anyio.fail_after(DEADLINE):
        async with StateStore(db_path) as store:
            await store.apply([dead("c1", "refused: a@example.com")])
            files = [Path(f"{db_path}{suffix}") for suffix in ("", "-wal", "-shm", ".lock")]
            assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}


async def test_wider_state_files_are_tightened_when_opened(db_path: Path, umask_022: None) -> None:
    db_path.parent.mkdir()
    old = sqlite3.connect(db_path)
    old.execute("PRAGMA journal_mode=WAL")
    old.execute("CREATE TABLE t (x)")  # the -wal and -shm of a killed process stay behind
    files = [db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")]
    for f in files:
        f.chmod(0o644)
    try:
        with anyio.fail_after(DEADLINE):
            async with StateStore(db_path):
                assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
    finally:
        old.close()


async def test_read_only_store_reads_while_a_writer_holds_it_and_writes_nothing(
    store: StateStore, db_path: Path
) -> None:
    with anyio.fail_after(DEADLINE):
        await store.apply([dead("c1", "refused")])
        gone = await store.start_pass()
    store.conn.execute(
        "UPDATE passes SET owner=? WHERE id=?", (f"{socket.gethostname()}:{_dead_pid()}", gone)
    )
    reader = StateStore(db_path, read_only=True)
    reader.open_sync()
    try:
        assert [d.customer_id for d in reader.dead_letters_sync()] == ["c1"]
        assert [p.status for p in reader.passes_sync()] == ["interrupted"]
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader.conn.execute("DELETE FROM dead_letters")
    finally:
        reader.close_sync()
    # Shown as interrupted, left as it was: only a pass may change it.
    assert store.conn.execute("SELECT status FROM passes").fetchall() == [("running",)]


def test_read_only_store_of_a_missing_file_is_empty_and_creates_nothing(db_path: Path) -> None:
    reader = StateStore(db_path, read_only=True)
    reader.open_sync()
    try:
        assert reader.dead_letters_sync() == []
        assert reader.passes_sync() == []
    finally:
        reader.close_sync()
    assert not db_path.parent.exists()
