"""Stable ids: the integer id a target knows a key by, per ``kind``, each id held by one key.

Sync batch takes integer ids that must stay the same across passes and state files; the
registry keeps them (table ``ids``). Functions of an open connection to the state file
(:mod:`pipeline.state.sqlite`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pipeline.state.sql import Db, meta, select_in, set_meta, transaction

__all__ = ["allocate", "claim", "count", "forget", "ids_of", "keys_of", "note"]


def ids_of(conn: Db, kind: str, keys: Sequence[str]) -> dict[str, int]:
    """The ids the registry holds for those keys of ``kind`` (keys without one left out)."""
    return dict(select_in(conn, "SELECT key, id FROM ids WHERE kind=? AND key IN ({})", kind, keys))


def keys_of(conn: Db, kind: str, ids: Sequence[int]) -> dict[int, str]:
    """The keys of registry ids (the reverse of :func:`ids_of`)."""
    return dict(select_in(conn, "SELECT id, key FROM ids WHERE kind=? AND id IN ({})", kind, ids))


def claim(conn: Db, kind: str, wanted: Mapping[str, int]) -> dict[str, str]:
    """Record each key's id, unless another key holds that id already: those keys are returned
    with the key that holds their id, and nothing is recorded for them."""
    held = ids_of(conn, kind, list(wanted))
    changed = {key: id_ for key, id_ in wanted.items() if held.get(key) != id_}
    if not changed:
        return {}
    taken = keys_of(conn, kind, list(changed.values()))
    refused: dict[str, str] = {}
    rows = []
    for key, id_ in changed.items():
        holder = taken.get(id_)
        if holder is not None and holder != key:
            refused[key] = holder
            continue
        old = held.get(key)
        if old is not None and taken.get(old) == key:
            del taken[old]  # moved: a later key may take it, as the rows apply in order
        taken[id_] = key
        rows.append((kind, key, id_))
    _upsert(conn, rows)
    return refused


def allocate(conn: Db, kind: str, keys: Sequence[str], span: tuple[int, int]) -> dict[str, int]:
    """Give each key a new id of ``span`` ``[first, last]``, above every id the span gave before
    (a forgotten id is never given again); keys beyond the span's end get none."""
    first, last = span
    row = conn.execute(
        "SELECT MAX(id) FROM ids WHERE kind=? AND id BETWEEN ? AND ?", (kind, first, last)
    ).fetchone()
    mark = meta(conn, f"next_id:{kind}")
    after = int(mark) if mark is not None and first <= int(mark) <= last + 1 else first
    start = max(first, (row[0] or 0) + 1, after)
    new = dict(zip(dict.fromkeys(keys), range(start, last + 1), strict=False))
    if new:
        _upsert(
            conn,
            [(kind, key, id_) for key, id_ in new.items()],
            mark=(f"next_id:{kind}", str(start + len(new))),
        )
    return new


def forget(conn: Db, kind: str, keys: Sequence[str]) -> None:
    """Drop the ids of those keys (an id found to belong to someone else in a target)."""
    with transaction(conn):
        conn.executemany("DELETE FROM ids WHERE kind=? AND key=?", [(kind, k) for k in keys])


def note(conn: Db, kind: str, pairs: Mapping[str, int]) -> None:
    """Record each key's id, replacing whatever held the key or the id before."""
    with transaction(conn):
        for key, number in pairs.items():  # the later pair wins, as in the order given
            conn.execute("DELETE FROM ids WHERE kind=? AND (key=? OR id=?)", (kind, key, number))
            conn.execute("INSERT INTO ids VALUES (?, ?, ?)", (kind, key, number))


def count(conn: Db, kind: str) -> int:
    """How many keys of ``kind`` hold an id."""
    row = conn.execute("SELECT COUNT(*) FROM ids WHERE kind=?", (kind,)).fetchone()
    return int(row[0])


def _upsert(
    conn: Db,
    rows: Sequence[tuple[str, str, int]],
    mark: tuple[str, str] | None = None,
) -> None:
    """Write ids and, in the same transaction, the mark the next allocation starts from."""
    with transaction(conn):
        conn.executemany(
            "INSERT INTO ids VALUES (?, ?, ?) ON CONFLICT (kind, key) DO UPDATE SET id=excluded.id",
            rows,
        )
        if mark is not None:
            set_meta(conn, *mark)
