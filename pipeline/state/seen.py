"""What a pass has seen, kept on disk: memory stays flat however many customers there are.

A temporary SQLite file (beside the state store, removed after the pass) holds every id and
email key the pass has met. The transform announces each page's ids and emails, which are
looked up in a few statements; the page's new claims are written when it is done.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from pipeline.errors import StateError

__all__ = ["SeenOnDisk"]

_CHUNK = 500
_PREFIX = ".pass-seen-"


class SeenOnDisk:
    """A :class:`~pipeline.transform.dedupe.Seen` backed by a temporary SQLite file."""

    def __init__(self, directory: str | Path, owner: str = "") -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        # A pass killed with SIGKILL leaves its file behind; one state store runs one pass at
        # a time (it holds the state's lock), so whatever its own prefix finds now is stale.
        # The files of another state file in the same directory are another feed's: kept.
        tag = hashlib.sha256(owner.encode()).hexdigest()[:12]
        prefix = f"{_PREFIX}{tag}-" if owner else _PREFIX
        for stale in Path(directory).glob(f"{glob.escape(prefix)}*.sqlite3"):
            with contextlib.suppress(OSError):
                stale.unlink()
        fd, self.path = tempfile.mkstemp(prefix=prefix, suffix=".sqlite3", dir=directory)
        os.close(fd)
        try:
            self._conn = sqlite3.connect(self.path, isolation_level=None)
            self._conn.executescript(
                "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
                "CREATE TABLE ids (id TEXT PRIMARY KEY) WITHOUT ROWID;"
                "CREATE TABLE emails (email TEXT PRIMARY KEY, owner TEXT NOT NULL) WITHOUT ROWID;"
            )
        except sqlite3.Error as exc:
            raise StateError(f"cannot create {self.path}: {exc}") from exc
        self._known_ids: set[str] = set()
        self._known_emails: dict[str, str] = {}
        self._new_ids: set[str] = set()
        self._new_emails: dict[str, str] = {}
        self.count = 0

    def _select(self, sql: str, keys: Sequence[str]) -> list[tuple[str, ...]]:
        rows: list[tuple[str, ...]] = []
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start : start + _CHUNK]
            rows.extend(self._conn.execute(sql.format(",".join("?" * len(chunk))), chunk))
        return rows

    def begin_page(self, ids: Sequence[str], emails: Sequence[str]) -> None:
        known = self._select("SELECT id FROM ids WHERE id IN ({})", ids)
        self._known_ids = {row[0] for row in known}
        owners = self._select("SELECT email, owner FROM emails WHERE email IN ({})", emails)
        self._known_emails = {row[0]: row[1] for row in owners}

    def seen_id(self, customer_id: str) -> bool:
        if customer_id in self._known_ids or customer_id in self._new_ids:
            return True
        self._new_ids.add(customer_id)
        return False

    def email_owner(self, email_key: str, customer_id: str) -> str | None:
        owner = self._known_emails.get(email_key) or self._new_emails.setdefault(
            email_key, customer_id
        )
        return None if owner == customer_id else owner

    def end_page(self) -> None:
        conn = self._conn
        conn.execute("BEGIN")
        conn.executemany("INSERT OR IGNORE INTO ids VALUES (?)", ((i,) for i in self._new_ids))
        conn.executemany("INSERT OR IGNORE INTO emails VALUES (?, ?)", self._new_emails.items())
        conn.execute("COMMIT")
        self.count += len(self._new_ids)
        self._new_ids = set()
        self._new_emails = {}

    def missing(self, customer_ids: Iterable[str]) -> list[str]:
        wanted = list(customer_ids)
        found = {row[0] for row in self._select("SELECT id FROM ids WHERE id IN ({})", wanted)}
        return [c for c in wanted if c not in found]

    def __len__(self) -> int:
        return self.count

    def close(self) -> None:
        """Close and remove the file."""
        self._conn.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
