"""Pass history: when each pass ran, where its read started, how far every target had settled
everything (the checkpoint a killed pass resumes from), how it ended and its report.

Functions of an open connection to the state file (:mod:`pipeline.state.sqlite`).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence

import msgspec

from pipeline.state.sql import Db

__all__ = [
    "FINISHED",
    "OWNER",
    "PassRecord",
    "finish",
    "mark_interrupted",
    "recent",
    "resume_offset",
    "save_checkpoint",
    "start",
]

FINISHED = ("ok", "dead_letters")
"""Pass statuses after which the next pass reads the source from the start."""

OWNER = f"{socket.gethostname()}:{os.getpid()}"
"""Which process runs a pass: a ``running`` pass whose process is gone was interrupted."""


class PassRecord(msgspec.Struct, frozen=True):
    id: int
    started_at: float
    finished_at: float | None
    status: str
    report: str | None
    start_offset: int = 0
    checkpoint: int = 0


def mark_interrupted(conn: Db) -> int:
    """Mark as ``interrupted`` every pass still ``running`` whose process is gone (killed, or a
    crash before it could finish); returns how many. A pass of a live process on this host, or
    of another host, is left alone."""
    rows = conn.execute("SELECT id, owner FROM passes WHERE status='running'").fetchall()
    gone = [pass_id for pass_id, owner in rows if not _alive(owner)]
    for pass_id in gone:
        conn.execute(
            "UPDATE passes SET status='interrupted' WHERE id=? AND status='running'", (pass_id,)
        )
    return len(gone)


def start(
    conn: Db,
    start_offset: int = 0,
    targets: Sequence[str] = (),
    now: float | None = None,
) -> int:
    """Record a pass run by this process (after marking those of gone processes); its id."""
    mark_interrupted(conn)
    cur = conn.execute(
        "INSERT INTO passes (started_at, status, start_offset, checkpoint, targets, owner) "
        "VALUES (?, 'running', ?, ?, ?, ?) RETURNING id",
        (
            time.time() if now is None else now,
            start_offset,
            start_offset,
            _names(targets),
            OWNER,
        ),
    )
    return int(cur.fetchone()[0])


def save_checkpoint(conn: Db, pass_id: int, offset: int) -> None:
    """Where a pass that stops now would resume (in the caller's transaction)."""
    conn.execute("UPDATE passes SET checkpoint=? WHERE id=?", (offset, pass_id))


def resume_offset(conn: Db, targets: Sequence[str] = ()) -> int:
    """Where a pass to ``targets`` starts reading: the checkpoint of the last pass if it did not
    finish (killed, stopped or aborted) and wrote to the same targets, else 0."""
    row = conn.execute(
        "SELECT status, checkpoint, targets FROM passes ORDER BY id DESC LIMIT 1"
    ).fetchone()
    if row is None or row[0] in FINISHED or row[2] != _names(targets):
        return 0
    return int(row[1])


def finish(conn: Db, pass_id: int, status: str, report: bytes, checkpoint: int) -> None:
    conn.execute(
        "UPDATE passes SET finished_at=?, status=?, report=?, checkpoint=? WHERE id=?",
        (time.time(), status, report.decode(), checkpoint, pass_id),
    )


def recent(conn: Db, limit: int = 10) -> list[PassRecord]:
    """The last ``limit`` passes, newest first; a ``running`` one whose process is gone shows
    as ``interrupted`` (what the next pass that opens the store for writing marks it)."""
    rows = conn.execute(
        "SELECT id, started_at, finished_at, status, report, start_offset, checkpoint, owner "
        "FROM passes "
        "ORDER BY id DESC LIMIT ?",
        (limit,),
    )
    records = []
    for *fields, owner in rows:
        record = PassRecord(*fields)
        if record.status == "running" and not _alive(owner):
            record = msgspec.structs.replace(record, status="interrupted")
        records.append(record)
    return records


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


def _names(targets: Sequence[str]) -> str:
    return ",".join(sorted(targets))
