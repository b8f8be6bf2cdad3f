"""One database connection used from one thread: what both state databases share (opening
and closing off the event loop, calls run one after another, a driver's errors translated)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

import anyio

from pipeline.errors import StateError

__all__ = ["OnOneThread"]

C = TypeVar("C")
T = TypeVar("T")


class OnOneThread(Generic[C]):
    """Holds the open connection ``C``; subclasses set :attr:`path` and :attr:`read_only`,
    open it in ``open_sync`` (setting ``_conn``) and close it in ``close_sync``."""

    path: str
    read_only: bool
    driver_errors: tuple[type[Exception], ...] = ()
    """What the driver raises, translated into :class:`~pipeline.errors.StateError`."""

    def __init__(self) -> None:
        self._conn: C | None = None
        self._thread = anyio.CapacityLimiter(1)

    def open_sync(self) -> None:
        raise NotImplementedError

    def close_sync(self) -> None:
        raise NotImplementedError

    def describe(self, exc: Exception) -> str:
        """The driver's words about ``exc`` (never a secret)."""
        return str(exc)

    async def open(self) -> None:
        await anyio.to_thread.run_sync(self.open_sync, limiter=self._thread)

    async def close(self) -> None:
        await anyio.to_thread.run_sync(self.close_sync, limiter=self._thread)

    @property
    def conn(self) -> C:
        if self._conn is None:
            raise StateError("state store is not open")
        return self._conn

    async def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the store's thread, after the calls before it."""

        def guarded() -> T:
            try:
                return fn()
            except self.driver_errors as exc:
                raise StateError(f"state store {self.path}: {self.describe(exc)}") from exc

        return await anyio.to_thread.run_sync(guarded, limiter=self._thread)
