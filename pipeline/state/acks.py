"""What the targets answered of each record, as acks write it: the hash of the payload a target
last confirmed (with the reference it gave), or a dead letter with the reason it refused.

Tables ``confirmed`` (target, customer_id) -> hash, when, ref; and ``dead_letters``
(target, customer_id) -> reason, first and last seen, attempts. Functions of an open
connection to the state file (:mod:`pipeline.state.sqlite`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

import msgspec

from pipeline.records import Ack
from pipeline.state import passes
from pipeline.state.sql import Db, select_in, transaction

__all__ = [
    "DeadLetter",
    "apply",
    "confirmed_count",
    "confirmed_ids",
    "dead_lettered",
    "dead_letters",
    "forget",
    "hashes",
    "refs",
]


class DeadLetter(msgspec.Struct, frozen=True):
    target: str
    customer_id: str
    reason: str
    first_seen: float
    last_seen: float
    attempts: int


def apply(
    conn: Db,
    acks: Iterable[Ack],
    now: float | None = None,
    checkpoint: tuple[int, int] | None = None,
) -> None:
    """Write a group of acks in one transaction: hashes of confirmed records (which clear their
    dead letters), dead letters, and with them the pass's checkpoint ``(pass_id, offset)``."""
    stamp = time.time() if now is None else now
    confirmed = []
    cleared = []
    dead = []
    for ack in acks:
        if ack.kind == "dead":
            dead.append((ack.target, ack.customer_id, ack.reason or "", stamp, stamp))
        else:
            assert ack.hash is not None
            confirmed.append((ack.target, ack.customer_id, ack.hash, stamp, ack.ref))
            cleared.append((ack.target, ack.customer_id))
    with transaction(conn):
        conn.executemany(
            "INSERT INTO confirmed VALUES (?, ?, ?, ?, ?) ON CONFLICT (target, customer_id) "
            "DO UPDATE SET hash=excluded.hash, confirmed_at=excluded.confirmed_at, "
            "ref=excluded.ref",
            confirmed,
        )
        conn.executemany("DELETE FROM dead_letters WHERE target=? AND customer_id=?", cleared)
        conn.executemany(
            "INSERT INTO dead_letters VALUES (?, ?, ?, ?, ?, 1) "
            "ON CONFLICT (target, customer_id) DO UPDATE SET reason=excluded.reason, "
            "last_seen=excluded.last_seen, attempts=dead_letters.attempts+1",
            dead,
        )
        if checkpoint is not None:
            passes.save_checkpoint(conn, *checkpoint)


def hashes(conn: Db, target: str, customer_ids: Sequence[str]) -> dict[str, bytes]:
    """The confirmed hash of each of ``customer_ids`` that has one."""
    sql = "SELECT customer_id, hash FROM confirmed WHERE target=? AND customer_id IN ({})"
    return dict(select_in(conn, sql, target, customer_ids))


def refs(conn: Db, target: str, customer_ids: Sequence[str]) -> dict[str, str | None]:
    """The reference kept with each confirmation (what a target needs to deactivate)."""
    sql = "SELECT customer_id, ref FROM confirmed WHERE target=? AND customer_id IN ({})"
    return dict(select_in(conn, sql, target, customer_ids))


def confirmed_ids(conn: Db, target: str) -> list[str]:
    """Every customer the target confirmed at some point and still holds."""
    rows = conn.execute(
        "SELECT customer_id FROM confirmed WHERE target=? ORDER BY customer_id", (target,)
    )
    return [row[0] for row in rows]


def confirmed_count(conn: Db, target: str) -> int:
    row = conn.execute("SELECT COUNT(*) FROM confirmed WHERE target=?", (target,))
    count: int = row.fetchone()[0]
    return count


def forget(conn: Db, target: str, customer_ids: Sequence[str]) -> None:
    """Drop the confirmations of deactivated customers: if one comes back, it is sent."""
    with transaction(conn):
        conn.executemany(
            "DELETE FROM confirmed WHERE target=? AND customer_id=?",
            [(target, c) for c in customer_ids],
        )


def dead_letters(conn: Db, target: str | None = None) -> list[DeadLetter]:
    """The dead letters of ``target`` (of every target when None), by target and customer."""
    sql = "SELECT * FROM dead_letters"
    params: tuple[str, ...] = ()
    if target is not None:
        sql += " WHERE target=?"
        params = (target,)
    rows = conn.execute(sql + " ORDER BY target, customer_id", params)
    return [DeadLetter(*row) for row in rows]


def dead_lettered(conn: Db, target: str) -> set[str]:
    """The customer ids with a dead letter in ``target``."""
    rows = conn.execute("SELECT customer_id FROM dead_letters WHERE target=?", (target,))
    return {row[0] for row in rows}
