"""The state store: one contract, two databases, every call run off the event loop on the
database's one thread.

:class:`StateStore` is the contract the rest of the pipeline holds; each of its roles lives in
a module of its own, as functions of the open connection, in SQL both databases speak
(:mod:`pipeline.state.sql`):

* :mod:`~pipeline.state.acks`: the hash of the payload each target last confirmed, and dead
  letters;
* :mod:`~pipeline.state.ids`: the stable ids a target knows keys by;
* :mod:`~pipeline.state.passes`: pass history and the checkpoint a killed pass resumes from.

The database under it is a :class:`Database`: :class:`~pipeline.state.sqlite.SqliteFile` (the
default, ``[state] path``) or :class:`~pipeline.state.postgres.PostgresDatabase` (``[state]
url``). A method ``x_sync`` runs on the caller's thread (tests, commands without an event
loop); its ``x`` runs it on the database's thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self, TypeVar

from pipeline.records import Ack
from pipeline.state import acks as ack_table
from pipeline.state import ids as id_table
from pipeline.state import passes as pass_table
from pipeline.state import sql
from pipeline.state.acks import DeadLetter
from pipeline.state.passes import PassRecord
from pipeline.state.postgres import PostgresDatabase
from pipeline.state.sql import Db
from pipeline.state.sqlite import SqliteFile

if TYPE_CHECKING:
    from pipeline.config import StateSettings

__all__ = ["Database", "DeadLetter", "PassRecord", "StateStore"]

T = TypeVar("T")


class Database(Protocol):
    """What the store needs of a database: opening it (schema created or upgraded, held
    for one pass unless ``read_only``), its connection, and its one thread."""

    @property
    def path(self) -> str:
        """What messages name the database by (a file; a URL without its password)."""
        ...

    @property
    def read_only(self) -> bool: ...

    @property
    def conn(self) -> Db: ...

    def open_sync(self) -> None: ...

    def close_sync(self) -> None: ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def run(self, fn: Callable[[], T]) -> T: ...


class StateStore:
    """The state of the pipeline's feeds, on one database.

    Opened for writing, the store holds the state for one pass at a time (a SQLite file's
    lock, a PostgreSQL advisory lock) until it is closed. ``read_only`` opens it without the
    lock and without writing (``status``, ``dlq list``), so it works while a pass runs; a
    SQLite file that is missing reads as an empty store.

    Args:
        path: the SQLite file (``:memory:`` for none), unless ``database`` is given.
    """

    def __init__(
        self,
        path: str | Path = ":memory:",
        *,
        read_only: bool = False,
        database: Database | None = None,
    ) -> None:
        self.database: Database = database or SqliteFile(path, read_only=read_only)

    @classmethod
    def open_settings(cls, settings: StateSettings, *, read_only: bool = False) -> StateStore:
        """The store ``[state]`` names: PostgreSQL at ``url``, else the SQLite file at ``path``.

        Raises:
            ConfigError: the password variable ``password_env`` names is not set.
        """
        if settings.url is None:
            return cls(settings.path, read_only=read_only)
        return cls(database=PostgresDatabase.from_settings(settings, read_only=read_only))

    @property
    def path(self) -> str:
        return self.database.path

    @property
    def read_only(self) -> bool:
        return self.database.read_only

    @property
    def conn(self) -> Db:
        return self.database.conn

    def open_sync(self) -> None:
        self.database.open_sync()

    def close_sync(self) -> None:
        self.database.close_sync()

    async def __aenter__(self) -> Self:
        await self.database.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.database.close()

    async def _run(self, fn: Callable[[], T]) -> T:
        return await self.database.run(fn)

    # Confirmed hashes and acks ---------------------------------------------------------

    def hashes_sync(self, target: str, customer_ids: Sequence[str]) -> dict[str, bytes]:
        return ack_table.hashes(self.conn, target, customer_ids)

    async def hashes(self, target: str, customer_ids: Sequence[str]) -> dict[str, bytes]:
        """The confirmed hash of each of ``customer_ids`` that has one."""
        return await self._run(lambda: self.hashes_sync(target, customer_ids))

    def apply_sync(
        self,
        acks: Iterable[Ack],
        now: float | None = None,
        checkpoint: tuple[int, int] | None = None,
    ) -> None:
        ack_table.apply(self.conn, acks, now=now, checkpoint=checkpoint)

    async def apply(self, acks: Sequence[Ack], checkpoint: tuple[int, int] | None = None) -> None:
        """Write a group of acks in one transaction: hashes of confirmed records, dead letters,
        and with them the pass's checkpoint ``(pass_id, offset)`` when given."""
        await self._run(lambda: self.apply_sync(acks, checkpoint=checkpoint))

    def refs_sync(self, target: str, customer_ids: Sequence[str]) -> dict[str, str | None]:
        return ack_table.refs(self.conn, target, customer_ids)

    async def refs(self, target: str, customer_ids: Sequence[str]) -> dict[str, str | None]:
        """The reference kept with each confirmation (what a target needs to deactivate)."""
        return await self._run(lambda: self.refs_sync(target, customer_ids))

    def confirmed_ids_sync(self, target: str) -> list[str]:
        return ack_table.confirmed_ids(self.conn, target)

    async def confirmed_ids(self, target: str) -> list[str]:
        """Every customer the target confirmed at some point and still holds."""
        return await self._run(lambda: self.confirmed_ids_sync(target))

    def confirmed_count_sync(self, target: str) -> int:
        return ack_table.confirmed_count(self.conn, target)

    def forget_sync(self, target: str, customer_ids: Sequence[str]) -> None:
        ack_table.forget(self.conn, target, customer_ids)

    async def forget(self, target: str, customer_ids: Sequence[str]) -> None:
        """Drop the confirmations of deactivated customers: if one comes back, it is sent."""
        await self._run(lambda: self.forget_sync(target, customer_ids))

    # Dead letters ----------------------------------------------------------------------

    def dead_letters_sync(self, target: str | None = None) -> list[DeadLetter]:
        return ack_table.dead_letters(self.conn, target)

    async def dead_letters(self, target: str | None = None) -> list[DeadLetter]:
        return await self._run(lambda: self.dead_letters_sync(target))

    async def dead_lettered(self, target: str) -> set[str]:
        """The customer ids with a dead letter in ``target``."""
        return await self._run(lambda: ack_table.dead_lettered(self.conn, target))

    # Stable ids ------------------------------------------------------------------------

    def ids_sync(self, kind: str, keys: Sequence[str]) -> dict[str, int]:
        return id_table.ids_of(self.conn, kind, keys)

    async def ids(self, kind: str, keys: Sequence[str]) -> dict[str, int]:
        """The ids the registry holds for those keys of ``kind`` (keys without one are left
        out)."""
        return await self._run(lambda: self.ids_sync(kind, keys))

    def keys_sync(self, kind: str, ids: Sequence[int]) -> dict[int, str]:
        return id_table.keys_of(self.conn, kind, ids)

    async def keys(self, kind: str, ids: Sequence[int]) -> dict[int, str]:
        """The keys of registry ids (the reverse of :meth:`ids`)."""
        return await self._run(lambda: self.keys_sync(kind, ids))

    def claim_ids_sync(self, kind: str, wanted: Mapping[str, int]) -> dict[str, str]:
        return id_table.claim(self.conn, kind, wanted)

    async def claim_ids(self, kind: str, wanted: Mapping[str, int]) -> dict[str, str]:
        """Record each key's id, unless another key holds that id already: those keys are
        returned with the key that holds their id, and nothing is recorded for them."""
        return await self._run(lambda: self.claim_ids_sync(kind, wanted))

    def allocate_ids_sync(
        self, kind: str, keys: Sequence[str], span: tuple[int, int]
    ) -> dict[str, int]:
        return id_table.allocate(self.conn, kind, keys, span)

    async def allocate_ids(
        self, kind: str, keys: Sequence[str], span: tuple[int, int]
    ) -> dict[str, int]:
        """Give each key a new id of ``span`` ``[first, last]``, above every id the span gave
        before (a forgotten id is never given again); keys beyond the span's end get none."""
        return await self._run(lambda: self.allocate_ids_sync(kind, keys, span))

    def forget_ids_sync(self, kind: str, keys: Sequence[str]) -> None:
        id_table.forget(self.conn, kind, keys)

    async def forget_ids(self, kind: str, keys: Sequence[str]) -> None:
        """Drop the ids of those keys (an id found to belong to someone else in a target)."""
        await self._run(lambda: self.forget_ids_sync(kind, keys))

    def note_ids_sync(self, kind: str, pairs: Mapping[str, int]) -> None:
        id_table.note(self.conn, kind, pairs)

    async def note_ids(self, kind: str, pairs: Mapping[str, int]) -> None:
        """Record each key's id, replacing whatever held the key or the id before."""
        await self._run(lambda: self.note_ids_sync(kind, pairs))

    async def count_ids(self, kind: str) -> int:
        """How many keys of ``kind`` hold an id."""
        return await self._run(lambda: id_table.count(self.conn, kind))

    # Meta ------------------------------------------------------------------------------

    def meta_sync(self, key: str) -> str | None:
        return sql.meta(self.conn, key)

    async def meta(self, key: str) -> str | None:
        """A value the product keeps beside the data (``schema_version``, id marks)."""
        return await self._run(lambda: self.meta_sync(key))

    async def set_meta(self, key: str, value: str) -> None:
        """Keep ``value`` under ``key`` (committed at once)."""
        await self._run(lambda: sql.set_meta(self.conn, key, value))

    # Passes ----------------------------------------------------------------------------

    def mark_interrupted_sync(self) -> int:
        """Mark as ``interrupted`` every pass still ``running`` whose process is gone (killed,
        or a crash before it could finish); returns how many. A pass of a live process on
        this host, or of another host, is left alone."""
        return pass_table.mark_interrupted(self.conn)

    def start_pass_sync(
        self, start_offset: int = 0, targets: Sequence[str] = (), now: float | None = None
    ) -> int:
        return pass_table.start(self.conn, start_offset, targets, now)

    async def start_pass(self, start_offset: int = 0, targets: Sequence[str] = ()) -> int:
        """Record a pass; ``targets`` are the ones whose checkpoint it keeps (none for a dry
        run or a replay, whose checkpoint no later pass may resume from)."""
        return await self._run(lambda: self.start_pass_sync(start_offset, targets))

    def resume_offset_sync(self, targets: Sequence[str] = ()) -> int:
        """Where a pass to ``targets`` starts reading: the checkpoint of the last pass if it
        did not finish (killed, stopped or aborted) and wrote to the same targets, else 0."""
        return pass_table.resume_offset(self.conn, targets)

    async def resume_offset(self, targets: Sequence[str] = ()) -> int:
        return await self._run(lambda: self.resume_offset_sync(targets))

    def finish_pass_sync(self, pass_id: int, status: str, report: bytes, checkpoint: int) -> None:
        pass_table.finish(self.conn, pass_id, status, report, checkpoint)

    async def finish_pass(self, pass_id: int, status: str, report: bytes, checkpoint: int) -> None:
        await self._run(lambda: self.finish_pass_sync(pass_id, status, report, checkpoint))

    def passes_sync(self, limit: int = 10) -> list[PassRecord]:
        if not self.read_only:
            pass_table.mark_interrupted(self.conn)
        return pass_table.recent(self.conn, limit)
