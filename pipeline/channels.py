"""Bounded channels between stages, the broadcast to targets, and their statistics.

Every buffer size of the flow is set here, from ``[flow] queue_size``: nothing is unbounded.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import TypeVar

import anyio
import msgspec
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

__all__ = ["ChannelStats", "Channels", "broadcast"]

T = TypeVar("T")


class ChannelStats(msgspec.Struct, frozen=True):
    """A snapshot of one channel (anyio's memory stream statistics, named)."""

    name: str
    buffered: int
    capacity: int
    senders_waiting: int
    receivers_waiting: int


class Channels:
    """Creates the flow's channels and keeps them by name for statistics."""

    def __init__(self, queue_size: int) -> None:
        if queue_size <= 0:
            raise ValueError("queue_size must be positive")
        self.queue_size = queue_size
        self._streams: dict[str, MemoryObjectSendStream[object]] = {}
        self.peak: dict[str, int] = {}

    def open(
        self, name: str, item_type: type[T], size: int | None = None
    ) -> tuple[MemoryObjectSendStream[T], MemoryObjectReceiveStream[T]]:
        """A bounded channel of ``size`` items (``queue_size`` by default)."""
        send, receive = anyio.create_memory_object_stream[T](size or self.queue_size)
        self._streams[name] = send  # type: ignore[assignment]
        return send, receive

    def statistics(self) -> list[ChannelStats]:
        """A snapshot of every channel; also updates the peak buffered count per channel."""
        out = []
        for name, stream in self._streams.items():
            s = stream.statistics()
            self.peak[name] = max(self.peak.get(name, 0), s.current_buffer_used)
            out.append(
                ChannelStats(
                    name=name,
                    buffered=s.current_buffer_used,
                    capacity=int(s.max_buffer_size),
                    senders_waiting=s.tasks_waiting_send,
                    receivers_waiting=s.tasks_waiting_receive,
                )
            )
        return out


async def broadcast(
    source: MemoryObjectReceiveStream[T], sinks: Sequence[MemoryObjectSendStream[T]]
) -> None:
    """Send every item of ``source`` to each of ``sinks``; close them all when ``source`` ends.

    The slowest sink sets the pace (that is the backpressure). A sink whose receiver is gone
    is dropped and the others go on.
    """
    live = list(sinks)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(source)
        for sink in live:
            await stack.enter_async_context(sink)
        async for item in source:
            for sink in list(live):
                try:
                    await sink.send(item)
                except anyio.BrokenResourceError:
                    live.remove(sink)
