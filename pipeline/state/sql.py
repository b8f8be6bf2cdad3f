"""What the state's role modules need of a database, and the statements they share.

The role modules (:mod:`~pipeline.state.acks`, :mod:`~pipeline.state.ids`,
:mod:`~pipeline.state.passes`) are functions of a :class:`Db`: SQLite's connection is one,
and :class:`~pipeline.state.postgres.PgConnection` makes a PostgreSQL connection one. Their
SQL is written once, in the dialect both speak: ``?`` marks, ``INSERT ... ON CONFLICT``
upserts, ``RETURNING``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

__all__ = ["CHUNK", "Cursor", "Db", "meta", "select_in", "set_meta", "transaction"]

CHUNK = 500
"""Bound variables per ``IN`` list: far under either database's limit."""


class Cursor(Protocol):
    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Db(Protocol):
    """A connection in autocommit mode: each statement is its own transaction unless a
    :func:`transaction` holds them together."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Any: ...


@contextlib.contextmanager
def transaction(conn: Db) -> Iterator[Db]:
    """One transaction: committed when the block ends, rolled back when it raises."""
    conn.execute("BEGIN")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def select_in(conn: Db, sql: str, first: object, items: Sequence[Any]) -> Iterator[Any]:
    """The rows of ``sql`` for ``items``, a chunk a statement: ``{}`` in ``sql`` stands for the
    marks of the ``IN`` list, which follows one parameter ``first``."""
    for start in range(0, len(items), CHUNK):
        chunk = items[start : start + CHUNK]
        yield from conn.execute(sql.format(",".join("?" * len(chunk))), (first, *chunk))


def meta(conn: Db, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
    return None if row is None else str(row[0])


def set_meta(conn: Db, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value=excluded.value",
        (key, value),
    )
