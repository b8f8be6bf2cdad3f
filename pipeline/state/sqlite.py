"""The SQLite state file: its schema and migrations, opening it (locked, ``0600``) or reading it
beside a pass, and the one worker thread every call runs on.

The role modules (:mod:`~pipeline.state.acks`, :mod:`~pipeline.state.ids`,
:mod:`~pipeline.state.passes`) are functions of an open :class:`sqlite3.Connection`; the
helpers here (:func:`transaction`, :func:`select_in`, :func:`meta`) are what they share.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import urllib.parse
from pathlib import Path

from pipeline.errors import ConfigError, StateError
from pipeline.state import lock
from pipeline.state.sql import meta, select_in, set_meta, transaction
from pipeline.state.thread import OnOneThread

__all__ = ["SCHEMA_VERSION", "SqliteFile", "meta", "select_in", "set_meta", "transaction"]

SCHEMA_VERSION = 3

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
_SIDE_FILES = ("-wal", "-shm", "-journal")


class SqliteFile(OnOneThread[sqlite3.Connection]):
    """Async front of one SQLite connection; calls are serialised on a worker thread.

    Opened for writing, the file is held under the state's lock (:mod:`pipeline.state.lock`)
    until it is closed, and its files are created ``0600``. ``read_only`` opens it without the
    lock and without writing, so it works while a pass runs; a missing file reads as empty.
    """

    driver_errors = (sqlite3.Error,)

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        super().__init__()
        self.path = str(path)
        self.read_only = read_only
        self._locked = False

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
            version = meta(conn, "schema_version")
            if version is None:
                set_meta(conn, "schema_version", str(SCHEMA_VERSION))
            elif int(version) < SCHEMA_VERSION:
                _migrate(conn, int(version))
            elif int(version) != SCHEMA_VERSION:
                conn.close()
                raise StateError(
                    f"{self.path}: schema version {version}, expected {SCHEMA_VERSION}"
                )
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
        if path.exists() and not path.is_file() and not path.is_dir():
            # A device or a pipe: never made 0600 (/dev/null would be, for everyone).
            raise ConfigError("must be a regular file, not a device or a pipe", path="state.path")
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
            version = meta(conn, "schema_version")
        except sqlite3.Error as exc:
            raise StateError(f"cannot read state store {self.path}: {exc}") from exc
        if version is None or int(version) != SCHEMA_VERSION:
            conn.close()
            found = "none" if version is None else version
            raise StateError(
                f"{self.path}: schema version {found}, expected {SCHEMA_VERSION} "
                "(a pass upgrades an older one)"
            )
        return conn

    def _unlock(self) -> None:
        if self._locked:
            self._locked = False
            lock.release(self.path)

    def close_sync(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._unlock()


def _migrate(conn: sqlite3.Connection, version: int) -> None:
    with transaction(conn):
        for step in range(version + 1, SCHEMA_VERSION + 1):
            for table, column, declaration in _MIGRATIONS[step]:
                columns = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
                if column not in columns:  # a table created just now has it already
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))


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
