"""``pipeline state copy``: the whole state from one database to another (a SQLite file to
PostgreSQL, or back), so a feed moves without a resync.

Both stores are opened for writing, so no pass runs on either while the copy does. The
destination must hold no state yet; it is written in one transaction, so a copy that fails
leaves it empty. Every table is copied row for row (hashes, dead letters, ids, pass history
with its checkpoint, the product's meta values but the schema version, which each database
keeps for itself).
"""

from __future__ import annotations

from collections.abc import Iterator

from pipeline.errors import StateError
from pipeline.state.postgres import PostgresDatabase
from pipeline.state.sql import Db, transaction
from pipeline.state.store import StateStore

__all__ = ["TABLES", "copy_state"]

TABLES = {
    "meta": "key, value",
    "confirmed": "target, customer_id, hash, confirmed_at, ref",
    "dead_letters": "target, customer_id, reason, first_seen, last_seen, attempts",
    "ids": "kind, key, id",
    "passes": "id, started_at, finished_at, status, report, start_offset, checkpoint, targets, "
    "owner",
}
"""Each table and its columns, in the order both schemas declare them."""
_BATCH = 2000


def _rows(conn: Db, table: str) -> Iterator[tuple[object, ...]]:
    where = " WHERE key <> 'schema_version'" if table == "meta" else ""
    yield from conn.execute(f"SELECT {TABLES[table]} FROM {table}{where}")


def _holds_state(conn: Db) -> bool:
    for table in TABLES:
        where = " WHERE key <> 'schema_version'" if table == "meta" else ""
        if conn.execute(f"SELECT 1 FROM {table}{where} LIMIT 1").fetchone():
            return True
    return False


def copy_state(source: StateStore, destination: StateStore) -> dict[str, int]:
    """Copy every row of ``source`` into ``destination`` (both open); rows per table.

    Raises:
        StateError: the source holds no state, or the destination holds some already
            (nothing is written then).
    """
    if not _holds_state(source.conn):
        raise StateError(f"{source.path} holds no pipeline state: nothing to copy")
    into = destination.conn
    if _holds_state(into):
        raise StateError(f"{destination.path} holds state already: copy into a new, empty one")
    counts = dict.fromkeys(TABLES, 0)
    with transaction(into):
        for table, columns in TABLES.items():
            marks = ", ".join("?" * len(columns.split(",")))
            sql = f"INSERT INTO {table} ({columns}) VALUES ({marks})"
            batch: list[tuple[object, ...]] = []
            for row in _rows(source.conn, table):
                batch.append(tuple(row))
                if len(batch) >= _BATCH:
                    into.executemany(sql, batch)
                    counts[table] += len(batch)
                    batch.clear()
            into.executemany(sql, batch)
            counts[table] += len(batch)
        if isinstance(destination.database, PostgresDatabase):
            # Pass ids were copied as they were: the next pass must get one above them.
            into.execute(
                "SELECT setval(pg_get_serial_sequence('passes', 'id'), "
                "COALESCE(MAX(id), 0) + 1, false) FROM passes"
            )
    return counts
