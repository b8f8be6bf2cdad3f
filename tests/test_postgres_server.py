"""The real PostgreSQL server the tests start (tests/kit/postgres.py)."""

from __future__ import annotations

import socket

import psycopg
import pytest

from tests.kit.postgres import PostgresServer

pytestmark = pytest.mark.postgres


def test_the_server_accepts_the_password_and_refuses_a_wrong_one(
    postgres_url: PostgresServer,
) -> None:
    assert postgres_url.password not in postgres_url.url
    assert postgres_url.url == f"postgresql://pipeline@127.0.0.1:{postgres_url.port}/postgres"
    with psycopg.connect(postgres_url.url, password=postgres_url.password) as conn:
        row = conn.execute("SELECT current_user, inet_server_addr()::text").fetchone()
    assert row == ("pipeline", "127.0.0.1/32")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(postgres_url.url, password=postgres_url.password + "x")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(postgres_url.url, password="")


def test_each_new_database_is_separate(postgres_url: PostgresServer) -> None:
    first, second = postgres_url.new_database(), postgres_url.new_database()
    assert first != second
    with postgres_url.connect(first) as conn:
        conn.execute("CREATE TABLE checkpoints (source text PRIMARY KEY, value text)")
        conn.execute("INSERT INTO checkpoints VALUES ('man', '42')")
    with postgres_url.connect(first) as conn:
        assert conn.execute("SELECT value FROM checkpoints").fetchall() == [("42",)]
    with postgres_url.connect(second) as conn:
        found = conn.execute("SELECT to_regclass('checkpoints')").fetchone()
    assert found == (None,)


def test_the_server_listens_on_127_0_0_1_only(postgres_url: PostgresServer) -> None:
    with postgres_url.connect() as conn:
        row = conn.execute("SELECT current_setting('listen_addresses')").fetchone()
    assert row == ("127.0.0.1",)
    # Its unix socket is in its own directory (not /var/run/postgresql).
    sockets = [p for p in (postgres_url.directory / "sockets").iterdir() if p.is_socket()]
    assert [p.name for p in sockets] == [f".s.PGSQL.{postgres_url.port}"]
    # Another address of this machine, where the port is open only to a server on all of them.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        assert s.connect_ex(("127.0.0.2", postgres_url.port)) != 0
