"""The state-store contract, run against both databases: a SQLite file and a real PostgreSQL
server (started by the tests: tests/kit/postgres.py). Whatever the pipeline asks of its state,
it gets the same answer from either; and ``pipeline state copy`` moves a state between them
row for row."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from pipeline.cli import main
from pipeline.config import Secret
from pipeline.errors import StateError
from pipeline.records import Ack, AckKind
from pipeline.state.copy import TABLES, copy_state
from pipeline.state.postgres import PostgresDatabase
from pipeline.state.store import StateStore
from tests.kit.postgres import PostgresServer

Opener = Callable[..., StateStore]
ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Makes stores on one database of the parametrised kind (each call: the same database);
    ``opener.where`` is a ``[state]`` table naming it, for another process."""
    if request.param == "sqlite":
        path = tmp_path / "state.sqlite3"

        def make_file(read_only: bool = False) -> StateStore:
            return StateStore(path, read_only=read_only)

        make_file.where = {"path": str(path)}  # type: ignore[attr-defined]
        yield make_file
        return
    server: PostgresServer = request.getfixturevalue("postgres_url")
    url = server.new_database()
    password = Secret(server.password)

    def make(read_only: bool = False) -> StateStore:
        return StateStore(database=PostgresDatabase(url, password=password, read_only=read_only))

    make.where = {"url": url, "password_env": "STATE_PASSWORD"}  # type: ignore[attr-defined]
    monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    monkeypatch.setenv("STATE_PASSWORD", server.password)
    yield make


def open_elsewhere(where: dict[str, str]) -> str:
    """What another process says when it opens the store for a pass."""
    script = (
        "import sys, anyio\n"
        "from pipeline.config import StateSettings\n"
        "from pipeline.state.store import StateStore\n"
        "async def go():\n"
        "    async with StateStore.open_settings(StateSettings(**eval(sys.argv[1]))):\n"
        "        print('opened')\n"
        "try:\n"
        "    anyio.run(go)\n"
        "except Exception as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, repr(where)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return done.stdout.strip() or done.stderr.strip()[-500:]


@pytest.fixture
async def store(opener: Opener) -> AsyncIterator[StateStore]:
    async with opener() as opened:
        yield opened


def ack(customer_id: str, kind: AckKind = "created", **fields: Any) -> Ack:
    if kind == "dead":
        return Ack("t", customer_id, "dead", reason=fields.get("reason", "bad"), offset=0)
    return Ack(
        "t",
        customer_id,
        kind,
        hash=fields.get("hash", b"\x00\xffh"),
        offset=0,
        ref=fields.get("ref"),
    )


async def test_acks_hashes_refs_and_dead_letters(store: StateStore) -> None:
    pass_id = await store.start_pass(0, ["t"])
    await store.apply(
        [ack("c1", ref="r1"), ack("c2", hash=b"\x01"), ack("c3", "dead", reason="no email")],
        checkpoint=(pass_id, 30),
    )
    assert await store.hashes("t", ["c1", "c2", "c3", "zz"]) == {"c1": b"\x00\xffh", "c2": b"\x01"}
    assert await store.refs("t", ["c1", "c2"]) == {"c1": "r1", "c2": None}
    assert await store.dead_lettered("t") == {"c3"}
    await store.apply([ack("c3", "dead", reason="still no email")])
    [letter] = await store.dead_letters("t")
    assert (letter.customer_id, letter.reason, letter.attempts) == ("c3", "still no email", 2)
    await store.apply([ack("c3", hash=b"\x02"), ack("c1", "updated", hash=b"\x03", ref="r2")])
    assert await store.dead_letters() == []
    assert await store.hashes("t", ["c1", "c3"]) == {"c1": b"\x03", "c3": b"\x02"}
    assert await store.refs("t", ["c1"]) == {"c1": "r2"}
    assert await store.confirmed_ids("t") == ["c1", "c2", "c3"]
    await store.forget("t", ["c2"])
    assert await store.confirmed_ids("t") == ["c1", "c3"]
    assert store.confirmed_count_sync("t") == 2
    many = [f"m{i:05}" for i in range(1200)]  # more than one IN list
    await store.apply([ack(c) for c in many])
    assert len(await store.hashes("t", many)) == 1200


async def test_ids_claimed_allocated_forgotten_and_noted(store: StateStore) -> None:
    assert await store.claim_ids("account", {"a": 5, "b": 6}) == {}
    assert await store.claim_ids("account", {"c": 5}) == {"c": "a"}  # 5 is a's
    assert await store.ids("account", ["a", "b", "c"]) == {"a": 5, "b": 6}
    assert await store.keys("account", [5, 6, 7]) == {5: "a", 6: "b"}
    assert await store.allocate_ids("org", ["x", "y", "z"], (10, 11)) == {"x": 10, "y": 11}
    await store.forget_ids("org", ["y"])
    assert await store.allocate_ids("org", ["w"], (10, 12)) == {"w": 12}  # 11 is never reused
    await store.note_ids("account", {"c": 5})  # c takes 5: a loses it
    assert await store.ids("account", ["a", "b", "c"]) == {"b": 6, "c": 5}
    assert await store.count_ids("account") == 2
    await store.set_meta("halted:account", "[1, 2]")
    assert await store.meta("halted:account") == "[1, 2]"


async def test_passes_checkpoint_and_resume(store: StateStore) -> None:
    first = await store.start_pass(0, ["t"])
    await store.apply([ack("c1")], checkpoint=(first, 500))
    await store.finish_pass(first, "aborted", b'{"status": "aborted"}', 500)
    assert await store.resume_offset(["t"]) == 500
    assert await store.resume_offset(["other"]) == 0
    second = await store.start_pass(490, ["t"])
    assert second > first
    await store.finish_pass(second, "ok", b"{}", 1000)
    assert await store.resume_offset(["t"]) == 0
    passes = store.passes_sync(5)
    assert [(p.id, p.status, p.checkpoint, p.start_offset) for p in passes] == [
        (second, "ok", 1000, 490),
        (first, "aborted", 500, 0),
    ]
    assert passes[1].report == '{"status": "aborted"}'


async def test_one_writer_at_a_time_and_readers_beside_it(opener: Opener) -> None:
    where: dict[str, str] = opener.where  # type: ignore[attr-defined]
    async with opener() as writer:
        await writer.apply([ack("c1")])
        said = await anyio.to_thread.run_sync(open_elsewhere, where)
        assert said.startswith("another pass holds the state"), said
        reader = opener(read_only=True)
        reader.open_sync()
        try:
            assert reader.hashes_sync("t", ["c1"]) == {"c1": b"\x00\xffh"}
            assert reader.passes_sync() == []
        finally:
            reader.close_sync()
    assert await anyio.to_thread.run_sync(open_elsewhere, where) == "opened"  # released


@pytest.mark.postgres
async def test_state_copy_moves_every_row_there_and_back(
    tmp_path: Path, postgres_url: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "feed.sqlite3"
    async with StateStore(source) as store:
        pass_id = await store.start_pass(0, ["t"])
        await store.apply([ack(f"c{i}", ref=f"r{i}") for i in range(2500)], checkpoint=(pass_id, 7))
        await store.apply([ack("d1", "dead"), ack("d2", "dead", reason="x")])
        await store.claim_ids("account", {f"c{i}": 1000 + i for i in range(10)})
        await store.set_meta("halted:org", "[1, 9]")
        await store.finish_pass(pass_id, "stopped", b'{"a": 1}', 7)
    url = postgres_url.new_database()
    monkeypatch.setenv("STATE_PASSWORD", postgres_url.password)
    copy = [
        "state",
        "copy",
        "--from",
        str(source),
        "--to",
        url,
        "--to-password-env",
        "STATE_PASSWORD",
    ]
    assert main(copy) == 0
    assert main(copy) == 1  # the destination holds state now: never written twice
    back = tmp_path / "back.sqlite3"
    assert (
        main(
            [
                "state",
                "copy",
                "--from",
                url,
                "--from-password-env",
                "STATE_PASSWORD",
                "--to",
                str(back),
            ]
        )
        == 0
    )

    def dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
        opened = StateStore(path, read_only=True)
        opened.open_sync()
        try:
            return {
                t: sorted(map(tuple, opened.conn.execute(f"SELECT {c} FROM {t}")))
                for t, c in TABLES.items()
            }
        finally:
            opened.close_sync()

    assert dump(back) == dump(source)
    # A pass on PostgreSQL after the copy resumes where the copied one stopped, with a new id.
    database = PostgresDatabase(url, password=Secret(postgres_url.password))
    async with StateStore(database=database) as moved:
        assert await moved.resume_offset(["t"]) == 7
        assert await moved.start_pass(7, ["t"]) == pass_id + 1
        assert len(await moved.hashes("t", [f"c{i}" for i in range(2500)])) == 2500


@pytest.mark.postgres
def test_a_postgres_url_is_checked_and_its_password_never_shown(
    postgres_url: PostgresServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    wrong = postgres_url.url.replace("@", ":s3cret@", 1)
    assert main(["state", "copy", "--from", wrong, "--to", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "must not hold a password" in err and "s3cret" not in err
    assert (
        main(["state", "copy", "--from", str(tmp_path / "none.sqlite3"), "--to", postgres_url.url])
        == 2
    )
    assert "no state file at" in capsys.readouterr().err


def test_copy_refuses_a_destination_holding_state(tmp_path: Path) -> None:
    async def fill(path: Path) -> None:
        async with StateStore(path) as store:
            await store.apply([ack("c1")])

    anyio.run(fill, tmp_path / "a.sqlite3")
    anyio.run(fill, tmp_path / "b.sqlite3")
    a, b = StateStore(tmp_path / "a.sqlite3"), StateStore(tmp_path / "b.sqlite3")
    a.open_sync()
    b.open_sync()
    try:
        with pytest.raises(StateError, match="holds state already"):
            copy_state(a, b)
    finally:
        a.close_sync()
        b.close_sync()


@pytest.mark.parametrize(
    "where",
    [
        "mysql://u@127.0.0.1:1/db",
        "postgresql+psycopg://u@127.0.0.1:1/db",
        "postgresql://u@h/db?password=s3cret",
    ],
)
def test_copy_refuses_a_url_it_cannot_use_without_writing_a_file(
    where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "feed.sqlite3"
    anyio.run(_one_ack, source)
    assert main(["state", "copy", "--from", str(source), "--to", where]) == 2
    err = capsys.readouterr().err
    assert err.startswith("configuration error: --to: ") and "s3cret" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feed.sqlite3", "feed.sqlite3.lock"]


def test_copy_from_a_file_that_is_no_state_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (x TEXT)")
        conn.execute("INSERT INTO notes VALUES ('mine')")
    before = other.read_bytes()
    assert main(["state", "copy", "--from", str(other), "--to", str(tmp_path / "to.sqlite3")]) == 1
    assert "cannot read state store" in capsys.readouterr().err
    assert other.read_bytes() == before
    assert not (tmp_path / "to.sqlite3").exists()


@pytest.mark.postgres
async def test_a_database_holding_other_tables_is_refused(postgres_url: PostgresServer) -> None:
    url = postgres_url.new_database()
    with postgres_url.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE invoices (id int)")
    database = PostgresDatabase(url, password=Secret(postgres_url.password))
    with pytest.raises(StateError, match="holds tables of something else"):
        async with StateStore(database=database):
            pass
    with postgres_url.connect(url) as conn:
        tables = {
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
    assert tables == {"invoices"}


async def _one_ack(path: Path) -> None:
    async with StateStore(path) as store:
        await store.apply([ack("c1")])
