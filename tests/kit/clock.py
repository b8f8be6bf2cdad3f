"""A clock for tests: virtual seconds that pass only when a task sleeps on them.

Hand it to :class:`~pipeline.http.HttpClient` (``clock=``) or to a target through
:class:`~pipeline.targets.base.TargetContext`: its rate limit, backoff and pauses then wait
on virtual time, so a test can say exactly how long they took, and takes no wall time for it.

The time moves to the earliest deadline of the tasks asleep once every other task has had
its turn (``SETTLE`` checkpoints), so sleepers side by side wake in deadline order at their
deadline. What is not a sleep on this clock (a request on loopback) takes no virtual time.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field

import anyio
import anyio.lowlevel

SETTLE = 20
"""Checkpoints a sleeper gives the other tasks before the time jumps to its deadline."""


@dataclass(order=True)
class _Sleeper:
    deadline: float
    order: int
    turn: anyio.Event = field(default_factory=anyio.Event, compare=False)


class FakeClock:
    """Virtual time from ``start``; ``sleeps`` records every wait asked for, in order."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._asleep: list[_Sleeper] = []
        self._order = itertools.count()
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        me = _Sleeper(self._now + seconds, next(self._order))
        heapq.heappush(self._asleep, me)
        try:
            while True:
                for _ in range(SETTLE):
                    await anyio.lowlevel.checkpoint()
                if self._asleep[0] is me:
                    heapq.heappop(self._asleep)
                    self._now = max(self._now, me.deadline)
                    return
                me.turn = anyio.Event()
                await me.turn.wait()
        except BaseException:
            if me in self._asleep:
                self._asleep.remove(me)
                heapq.heapify(self._asleep)
            raise
        finally:
            if self._asleep:
                self._asleep[0].turn.set()
