"""The SQLite state store: one file, WAL, every call run off the event loop on one thread.

Tables:

* ``confirmed`` (target, customer_id) -> hash of the payload the target last confirmed;
* ``dead_letters`` (target, customer_id) -> reason, first and last seen, attempts;
* ``ids`` (kind, key) -> the integer id a target knows the key by, each id held by one key;
* ``passes``: when each pass ran, where its read started, how far every target had settled
  everything (the checkpoint a killed pass resumes from), how it ended, its report.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

import anyio
import msgspec

from pipeline.errors import ConfigError, StateError
from pipeline.records import Ack
from pipeline.state import lock

__all__ = ["DeadLetter", "PassRecord", "StateStore"]

T = TypeVar("T")
SCHEMA_VERSION = 3
_CHUNK = 500  # bound variables per statement stay far under SQLite's limit

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS confirmed (
    target TEXT NOT NULL, customer_id TEXT NOT NULL, hash BLOB NOT NULL, confirmed_at REAL NOT NULL,
    ref TEXT, PRIMARY KEY (target, customer_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dead_letters (
    target TEXT NOT NULL, customer_id TEXT NOT NULL, reason TEXT NOT NULL,
    first_seen REAL NOT NULL, last_seen REAL NOT NULL, attempts INTEGER NOT NULL,
    PRIMARY KEY (target, customer_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ids (
    kind TEXT NOT NULL, key TEXT NOT NULL, id INTEGER NOT NULL,
    PRIMARY KEY (kind, key), UNIQUE (kind, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS passes (
    id INTEGER PRIMARY KEY, started_at REAL NOT NULL, finished_at REAL,
    status TEXT NOT NULL, report TEXT,
    start_offset INTEGER NOT NULL DEFAULT 0, checkpoint INTEGER NOT NULL DEFAULT 0,
    targets TEXT NOT NULL DEFAULT '', owner TEXT NOT NULL DEFAULT '');
"""
# Each step takes a store from the version before it to its own: (table, column, declaration).
_MIGRATIONS = {
    2: [
        ("passes", "start_offset", "INTEGER NOT NULL DEFAULT 0"),
        ("passes", "checkpoint", "INTEGER NOT NULL DEFAULT 0"),
        ("confirmed", "ref", "TEXT"),
        ("passes", "targets", "TEXT NOT NULL DEFAULT ''"),
    ],
    3: [("passes", "owner", "TEXT NOT NULL DEFAULT ''")],
}
FINISHED = ("ok", "dead_letters")
"""Pass statuses after which the next pass reads the source from the start."""


class DeadLetter(msgspec.Struct, frozen=True):
    target: str
    customer_id: str
    reason: str
    first_seen: float
    last_seen: float
    attempts: int


class PassRecord(msgspec.Struct, frozen=True):
    id: int
    started_at: float
    finished_at: float | None
    status: str
    report: str | None
    start_offset: int = 0
    checkpoint: int = 0


class StateStore:
    """Async front of one SQLite connection; calls are serialised on a worker thread.

    Opened for writing, the store holds the state's lock (:mod:`pipeline.state.lock`) until it
    is closed, and creates its files ``0600``. ``read_only`` opens it without the lock and
    without writing (``status``, ``dlq list``), so it works while a pass runs; a missing file
    reads as an empty store.
    """

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = str(path)
        self.read_only = read_only
        self._conn: sqlite3.Connection | None = None
        self._lock = anyio.CapacityLimiter(1)
        self._locked = False

    # Opening and closing ---------------------------------------------------------------

    def open_sync(self) -> None:
        """Open (creating when missing) and check the schema.

        Raises:
            ConfigError: ``state.path`` cannot be created or opened (a directory that cannot
                be created or written, a parent that is a file).
            StateError: another pass holds the state, or the file cannot be opened or belongs
                to another schema version.
        """
        if self.read_only:
            self._conn = self._open_read_only()
            return
        if self.path != ":memory:":
            self._prepare()
        try:
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=5000")
            conn.executescript(_SCHEMA)
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
                )
            elif int(row[0]) < SCHEMA_VERSION:
                self._migrate(conn, int(row[0]))
            elif int(row[0]) != SCHEMA_VERSION:
                conn.close()
                raise StateError(f"{self.path}: schema version {row[0]}, expected {SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            self._unlock()
            raise StateError(f"cannot open state store {self.path}: {exc}") from exc
        except BaseException:
            self._unlock()
            raise
        self._conn = conn

    def _prepare(self) -> None:
        """Create the directory, take the lock, create the file ``0600`` before SQLite does (its
        ``-wal`` and ``-shm`` then get the same mode) and tighten files an older version left
        wider."""
        path = Path(self.path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(_cannot_create(path.parent, exc), path="state.path") from exc
        try:
            lock.acquire(self.path)
        except OSError as exc:
            what = f"create {exc.filename}" if exc.filename else f"lock {self.path}.lock"
            raise ConfigError(f"cannot {what}: {exc.strerror}", path="state.path") from exc
        self._locked = True
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, lock.PRIVATE)
        except OSError as exc:
            self._unlock()
            raise ConfigError(
                f"cannot open {self.path}: {exc.strerror}", path="state.path"
            ) from exc
        lock.tighten(fd)
        os.close(fd)
        _tighten_side_files(self.path)

    def _open_read_only(self) -> sqlite3.Connection:
        path = Path(self.path)
        if self.path != ":memory:" and not path.exists():
            for ancestor in path.parents:
                if ancestor.exists() and not ancestor.is_dir():
                    message = f"{ancestor} is a file, not a directory"
                    raise ConfigError(message, path="state.path")
        if path.is_dir():
            raise ConfigError(f"cannot open {self.path}: Is a directory", path="state.path")
        if self.path == ":memory:" or not path.is_file() or _empty(self.path):
            conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
            conn.executescript(_SCHEMA)  # no pass has written here yet: an empty store
            return conn
        with contextlib.suppress(OSError):
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            lock.tighten(fd)
            os.close(fd)
        _tighten_side_files(self.path)
        uri = f"file:{urllib.parse.quote(os.path.abspath(self.path))}?mode=ro"
        try:
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA busy_timeout=5000")
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.Error as exc:
            raise StateError(f"cannot read state store {self.path}: {exc}") from exc
        if row is None or int(row[0]) != SCHEMA_VERSION:
            conn.close()
            found = "none" if row is None else row[0]
            raise StateError(
                f"{self.path}: schema version {found}, expected {SCHEMA_VERSION} "
                "(a pass upgrades an older one)"
            )
        return conn

    def _unlock(self) -> None:
        if self._locked:
            self._locked = False
            lock.release(self.path)

    @staticmethod
    def _migrate(conn: sqlite3.Connection, version: int) -> None:
        conn.execute("BEGIN")
        for step in range(version + 1, SCHEMA_VERSION + 1):
            for table, column, declaration in _MIGRATIONS[step]:
                columns = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
                if column not in columns:  # a table created just now has it already
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))
        conn.execute("COMMIT")

    def close_sync(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._unlock()

    async def __aenter__(self) -> Self:
        await anyio.to_thread.run_sync(self.open_sync, limiter=self._lock)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await anyio.to_thread.run_sync(self.close_sync, limiter=self._lock)

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StateError("state store is not open")
        return self._conn

    async def _run(self, fn: Callable[[], T]) -> T:
        def guarded() -> T:
            try:
                return fn()
            except sqlite3.Error as exc:
                raise StateError(f"state store {self.path}: {exc}") from exc

        return await anyio.to_thread.run_sync(guarded, limiter=self._lock)

    # Hashes ----------------------------------------------------------------------------

    def hashes_sync(self, target: str, customer_ids: Sequence[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for chunk in _chunks(customer_ids):
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                "SELECT customer_id, hash FROM confirmed "
                f"WHERE target=? AND customer_id IN ({marks})",
                (target, *chunk),
            )
            found.update(rows)
        return found

    async def hashes(self, target: str, customer_ids: Sequence[str]) -> dict[str, bytes]:
        """The confirmed hash of each of ``customer_ids`` that has one."""
        return await self._run(lambda: self.hashes_sync(target, customer_ids))

    # Acks ------------------------------------------------------------------------------

    def apply_sync(
        self,
        acks: Iterable[Ack],
        now: float | None = None,
        checkpoint: tuple[int, int] | None = None,
    ) -> None:
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
        conn = self.conn
        conn.execute("BEGIN")
        try:
            conn.executemany("INSERT OR REPLACE INTO confirmed VALUES (?, ?, ?, ?, ?)", confirmed)
            conn.executemany("DELETE FROM dead_letters WHERE target=? AND customer_id=?", cleared)
            conn.executemany(
                "INSERT INTO dead_letters VALUES (?, ?, ?, ?, ?, 1) "
                "ON CONFLICT (target, customer_id) DO UPDATE SET reason=excluded.reason, "
                "last_seen=excluded.last_seen, attempts=attempts+1",
                dead,
            )
            if checkpoint is not None:
                pass_id, offset = checkpoint
                conn.execute("UPDATE passes SET checkpoint=? WHERE id=?", (offset, pass_id))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def apply(self, acks: Sequence[Ack], checkpoint: tuple[int, int] | None = None) -> None:
        """Write a group of acks in one transaction: hashes of confirmed records, dead letters,
        and with them the pass's checkpoint ``(pass_id, offset)`` when given."""
        await self._run(lambda: self.apply_sync(acks, checkpoint=checkpoint))

    # Stable ids ------------------------------------------------------------------------

    def ids_sync(self, kind: str, keys: Sequence[str]) -> dict[str, int]:
        conn = self.conn
        found: dict[str, int] = {}
        for chunk in _chunks(keys):
            marks = ",".join("?" * len(chunk))
            found.update(
                conn.execute(
                    f"SELECT key, id FROM ids WHERE kind=? AND key IN ({marks})", (kind, *chunk)
                )
            )
        return found

    async def ids(self, kind: str, keys: Sequence[str]) -> dict[str, int]:
        """The ids the registry holds for those keys of ``kind`` (keys without one are left
        out)."""
        return await self._run(lambda: self.ids_sync(kind, keys))

    def claim_ids_sync(self, kind: str, wanted: Mapping[str, int]) -> dict[str, str]:
        held = self.ids_sync(kind, list(wanted))
        changed = {key: id_ for key, id_ in wanted.items() if held.get(key) != id_}
        if not changed:
            return {}
        taken = self.keys_sync(kind, list(changed.values()))
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
        self._upsert_ids(rows)
        return refused

    async def claim_ids(self, kind: str, wanted: Mapping[str, int]) -> dict[str, str]:
        """Record each key's id, unless another key holds that id already: those keys are
        returned with the key that holds their id, and nothing is recorded for them."""
        return await self._run(lambda: self.claim_ids_sync(kind, wanted))

    def allocate_ids_sync(
        self, kind: str, keys: Sequence[str], span: tuple[int, int]
    ) -> dict[str, int]:
        first, last = span
        conn = self.conn
        row = conn.execute(
            "SELECT MAX(id) FROM ids WHERE kind=? AND id BETWEEN ? AND ?", (kind, first, last)
        ).fetchone()
        mark = self.meta_sync(f"next_id:{kind}")
        after = int(mark) if mark is not None and first <= int(mark) <= last + 1 else first
        start = max(first, (row[0] or 0) + 1, after)
        new = dict(zip(dict.fromkeys(keys), range(start, last + 1), strict=False))
        if new:
            self._upsert_ids(
                [(kind, key, id_) for key, id_ in new.items()],
                mark=(f"next_id:{kind}", str(start + len(new))),
            )
        return new

    async def allocate_ids(
        self, kind: str, keys: Sequence[str], span: tuple[int, int]
    ) -> dict[str, int]:
        """Give each key a new id of ``span`` ``[first, last]``, above every id the span gave
        before (a forgotten id is never given again); keys beyond the span's end get none."""
        return await self._run(lambda: self.allocate_ids_sync(kind, keys, span))

    def forget_ids_sync(self, kind: str, keys: Sequence[str]) -> None:
        conn = self.conn
        conn.execute("BEGIN")
        conn.executemany("DELETE FROM ids WHERE kind=? AND key=?", [(kind, k) for k in keys])
        conn.execute("COMMIT")

    async def forget_ids(self, kind: str, keys: Sequence[str]) -> None:
        """Drop the ids of those keys (an id found to belong to someone else in a target)."""
        await self._run(lambda: self.forget_ids_sync(kind, keys))

    def note_ids_sync(self, kind: str, pairs: Mapping[str, int]) -> None:
        conn = self.conn
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT OR REPLACE INTO ids VALUES (?, ?, ?)", [(kind, k, v) for k, v in pairs.items()]
        )
        conn.execute("COMMIT")

    async def note_ids(self, kind: str, pairs: Mapping[str, int]) -> None:
        """Record each key's id, replacing whatever held the key or the id before."""
        await self._run(lambda: self.note_ids_sync(kind, pairs))

    async def count_ids(self, kind: str) -> int:
        """How many keys of ``kind`` hold an id."""

        def count() -> int:
            row = self.conn.execute("SELECT COUNT(*) FROM ids WHERE kind=?", (kind,)).fetchone()
            return int(row[0])

        return await self._run(count)

    def _upsert_ids(
        self, rows: Sequence[tuple[str, str, int]], mark: tuple[str, str] | None = None
    ) -> None:
        conn = self.conn
        conn.execute("BEGIN")
        try:
            conn.executemany(
                "INSERT INTO ids VALUES (?, ?, ?) "
                "ON CONFLICT (kind, key) DO UPDATE SET id=excluded.id",
                rows,
            )
            if mark is not None:
                conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", mark)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def meta_sync(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    async def meta(self, key: str) -> str | None:
        """A value the product keeps beside the data (``schema_version``, id marks)."""
        return await self._run(lambda: self.meta_sync(key))

    async def set_meta(self, key: str, value: str) -> None:
        """Keep ``value`` under ``key`` (committed at once)."""

        def put() -> None:
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

        await self._run(put)

    # Passes and dead letters -----------------------------------------------------------

    def mark_interrupted_sync(self) -> int:
        """Mark as ``interrupted`` every pass still ``running`` whose process is gone (killed,
        or a crash before it could finish); returns how many. A pass of a live process on
        this host, or of another host, is left alone."""
        rows = self.conn.execute("SELECT id, owner FROM passes WHERE status='running'").fetchall()
        gone = [pass_id for pass_id, owner in rows if not _alive(owner)]
        for pass_id in gone:
            self.conn.execute(
                "UPDATE passes SET status='interrupted' WHERE id=? AND status='running'",
                (pass_id,),
            )
        return len(gone)

    def start_pass_sync(
        self, start_offset: int = 0, targets: Sequence[str] = (), now: float | None = None
    ) -> int:
        self.mark_interrupted_sync()
        cur = self.conn.execute(
            "INSERT INTO passes (started_at, status, start_offset, checkpoint, targets, owner) "
            "VALUES (?, 'running', ?, ?, ?, ?)",
            (
                time.time() if now is None else now,
                start_offset,
                start_offset,
                _names(targets),
                OWNER,
            ),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    async def start_pass(self, start_offset: int = 0, targets: Sequence[str] = ()) -> int:
        """Record a pass; ``targets`` are the ones whose checkpoint it keeps (none for a dry
        run or a replay, whose checkpoint no later pass may resume from)."""
        return await self._run(lambda: self.start_pass_sync(start_offset, targets))

    def resume_offset_sync(self, targets: Sequence[str] = ()) -> int:
        """Where a pass to ``targets`` starts reading: the checkpoint of the last pass if it
        did not finish (killed, stopped or aborted) and wrote to the same targets, else 0."""
        row = self.conn.execute(
            "SELECT status, checkpoint, targets FROM passes ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if row is None or row[0] in FINISHED or row[2] != _names(targets):
            return 0
        return int(row[1])

    async def resume_offset(self, targets: Sequence[str] = ()) -> int:
        return await self._run(lambda: self.resume_offset_sync(targets))

    def finish_pass_sync(self, pass_id: int, status: str, report: bytes, checkpoint: int) -> None:
        self.conn.execute(
            "UPDATE passes SET finished_at=?, status=?, report=?, checkpoint=? WHERE id=?",
            (time.time(), status, report.decode(), checkpoint, pass_id),
        )

    async def finish_pass(self, pass_id: int, status: str, report: bytes, checkpoint: int) -> None:
        await self._run(lambda: self.finish_pass_sync(pass_id, status, report, checkpoint))

    def passes_sync(self, limit: int = 10) -> list[PassRecord]:
        if not self.read_only:
            self.mark_interrupted_sync()
        rows = self.conn.execute(
            "SELECT id, started_at, finished_at, status, report, start_offset, checkpoint, owner "
            "FROM passes "
            "ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        records = []
        for *fields, owner in rows:
            record = PassRecord(*fields)
            if record.status == "running" and not _alive(owner):
                # Read-only: shown as what the next pass that opens the store marks it.
                record = msgspec.structs.replace(record, status="interrupted")
            records.append(record)
        return records

    def dead_letters_sync(self, target: str | None = None) -> list[DeadLetter]:
        sql = "SELECT * FROM dead_letters"
        params: tuple[str, ...] = ()
        if target is not None:
            sql += " WHERE target=?"
            params = (target,)
        rows = self.conn.execute(sql + " ORDER BY target, customer_id", params)
        return [DeadLetter(*row) for row in rows]

    async def dead_letters(self, target: str | None = None) -> list[DeadLetter]:
        return await self._run(lambda: self.dead_letters_sync(target))

    async def dead_lettered(self, target: str) -> set[str]:
        """The customer ids with a dead letter in ``target``."""

        def ids() -> set[str]:
            rows = self.conn.execute(
                "SELECT customer_id FROM dead_letters WHERE target=?", (target,)
            )
            return {row[0] for row in rows}

        return await self._run(ids)

    def confirmed_ids_sync(self, target: str) -> list[str]:
        rows = self.conn.execute(
            "SELECT customer_id FROM confirmed WHERE target=? ORDER BY customer_id", (target,)
        )
        return [row[0] for row in rows]

    def refs_sync(self, target: str, customer_ids: Sequence[str]) -> dict[str, str | None]:
        found: dict[str, str | None] = {}
        for chunk in _chunks(customer_ids):
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                "SELECT customer_id, ref FROM confirmed "
                f"WHERE target=? AND customer_id IN ({marks})",
                (target, *chunk),
            )
            found.update(rows)
        return found

    async def refs(self, target: str, customer_ids: Sequence[str]) -> dict[str, str | None]:
        """The reference kept with each confirmation (what a target needs to deactivate)."""
        return await self._run(lambda: self.refs_sync(target, customer_ids))

    def keys_sync(self, kind: str, ids: Sequence[int]) -> dict[int, str]:
        found: dict[int, str] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                f"SELECT id, key FROM ids WHERE kind=? AND id IN ({marks})", (kind, *chunk)
            )
            found.update(rows)
        return found

    async def keys(self, kind: str, ids: Sequence[int]) -> dict[int, str]:
        """The keys of registry ids (the reverse of :meth:`ids`)."""
        return await self._run(lambda: self.keys_sync(kind, ids))

    async def confirmed_ids(self, target: str) -> list[str]:
        """Every customer the target confirmed at some point and still holds."""
        return await self._run(lambda: self.confirmed_ids_sync(target))

    def forget_sync(self, target: str, customer_ids: Sequence[str]) -> None:
        conn = self.conn
        conn.execute("BEGIN")
        conn.executemany(
            "DELETE FROM confirmed WHERE target=? AND customer_id=?",
            [(target, c) for c in customer_ids],
        )
        conn.execute("COMMIT")

    async def forget(self, target: str, customer_ids: Sequence[str]) -> None:
        """Drop the confirmations of deactivated customers: if one comes back, it is sent."""
        await self._run(lambda: self.forget_sync(target, customer_ids))

    def confirmed_count_sync(self, target: str) -> int:
        row = self.conn.execute("SELECT COUNT(*) FROM confirmed WHERE target=?", (target,))
        count: int = row.fetchone()[0]
        return count


OWNER = f"{socket.gethostname()}:{os.getpid()}"
"""Which process runs a pass: a ``running`` pass whose process is gone was interrupted."""


def _alive(owner: str) -> bool:
    """Whether the process that owns a running pass may still run it."""
    host, _, pid = owner.rpartition(":")
    if not pid.isdigit():
        return False  # written before owners were kept: no process of that age runs now
    if host != socket.gethostname():
        return True  # another host (a shared volume): it cannot be checked from here
    if int(pid) == os.getpid():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_SIDE_FILES = ("-wal", "-shm", "-journal")


def _tighten_side_files(path: str) -> None:
    for suffix in _SIDE_FILES:
        with contextlib.suppress(OSError):
            fd = os.open(path + suffix, os.O_RDONLY | os.O_CLOEXEC)
            lock.tighten(fd)
            os.close(fd)


def _empty(path: str) -> bool:
    with contextlib.suppress(OSError):
        return os.path.getsize(path) == 0
    return False


def _cannot_create(directory: Path, exc: OSError) -> str:
    for ancestor in (*reversed(directory.parents), directory):
        if ancestor.exists() and not ancestor.is_dir():
            return f"{ancestor} is a file, not a directory"
    return f"cannot create directory {directory}: {exc.strerror}"


def _names(targets: Sequence[str]) -> str:
    return ",".join(sorted(targets))


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]
