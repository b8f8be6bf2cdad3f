"""The stages the flow runs for each target: the diff (map, hash, drop what the target already
has, cut the rest into batches) and the writers. Both send :class:`~pipeline.records.Outcome`
to the settling point (:mod:`pipeline.settling`), the only place where records count.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence

import msgspec
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from pipeline.errors import PipelineError, unexpected
from pipeline.records import Ack, Customer, Item, Outcome, RecordBatch, Settled
from pipeline.report import TargetCounters
from pipeline.state.store import StateStore
from pipeline.targets.acks import dead, mask_batch
from pipeline.targets.base import Target
from pipeline.unusable import FirstFailures

__all__ = ["TargetStages", "by_page", "replay_of"]

log = logging.getLogger("pipeline.flow")


class TargetStages:
    """One target's share of a pass.

    Args:
        counters: the target's counters; :attr:`TargetCounters.error` set here stops it.
        replay: the only customer ids to process (``pipeline dlq replay``); None: all.
        dry_run: batches are counted as ``would_send``, never written.
    """

    def __init__(
        self,
        target: Target,
        store: StateStore,
        counters: TargetCounters,
        *,
        replay: set[str] | None = None,
        dry_run: bool = False,
    ) -> None:
        self.target = target
        self.store = store
        self.counters = counters
        self.replay = replay
        self.dry_run = dry_run
        self._first = FirstFailures(target.name)

    def stop(self, why: str) -> None:
        """Stop the target for the pass: what reaches it from now on is settled as skipped."""
        if self.counters.error is None:
            self.counters.error = why
            log.error("target stopped", extra={"target": self.target.name, "error": why})

    def _open(self, batch: RecordBatch) -> tuple[list[Customer], Outcome]:
        """The page's customers to diff, and the outcome that opens the page: its rejections,
        its repeats and, in a replay, the records left alone."""
        name, wanted = self.target.name, self.replay
        customers = [c for c in batch.customers if wanted is None or c.customer_id in wanted]
        rejected = [r for r in batch.rejected if wanted is None or r.customer_id in wanted]
        ignored = len(batch.customers) + len(batch.rejected) - len(customers) - len(rejected)
        rejections = [
            Ack(name, r.customer_id, "dead", reason=r.reason, offset=batch.offset) for r in rejected
        ]
        counts: list[tuple[int, Settled, int]] = [
            (batch.offset, "repeat", batch.duplicates),
            (batch.offset, "ignored", ignored),
        ]
        opens = (batch.offset, batch.offset + batch.size, batch.size)
        return customers, Outcome(name, rejections, counts, opens)

    async def diff(
        self,
        batches: MemoryObjectReceiveStream[RecordBatch],
        out: MemoryObjectSendStream[list[Item]],
        outcomes: MemoryObjectSendStream[Outcome],
    ) -> None:
        """Map and hash, drop what the target already has, cut the rest into batches.

        Each page's outcome (opened, rejected, repeated, unchanged) is sent before any of its
        items reaches a writer, so the settling point always sees a page opened first.
        """
        target = self.target
        buffer: list[Item] = []
        # A dead-lettered record is sent again even when it is back at what the target last
        # confirmed: only the target's answer settles it (the target may no longer hold it).
        lettered = await self.store.dead_lettered(target.name)
        async with batches, out, outcomes:
            async for batch in batches:
                customers, opened = self._open(batch)
                if self.counters.error is not None:
                    await outcomes.send(_add(opened, [(batch.offset, "skipped", len(customers))]))
                    continue
                try:
                    items = await target.prepare(customers)
                except PipelineError:
                    raise  # the state store failed, say: the pass cannot go on
                except Exception as exc:  # a bug of the target's: stop it, keep the others
                    self.stop(unexpected(exc))
                    await outcomes.send(_add(opened, [(batch.offset, "skipped", len(customers))]))
                    continue
                stored = await self.store.hashes(target.name, [i.customer_id for i in items])
                unchanged = 0
                refused: list[Ack] = []
                for item in items:
                    previous = stored.get(item.customer_id)
                    if item.refused is not None:
                        refused.append(dead(target.name, item, item.refused, batch.offset))
                    elif previous == item.hash and item.customer_id not in lettered:
                        unchanged += 1
                    else:
                        item.previous = previous
                        item.offset = batch.offset
                        buffer.append(item)
                await outcomes.send(_add(opened, [(batch.offset, "unchanged", unchanged)], refused))
                while len(buffer) >= target.batch_size:
                    await self._emit(buffer[: target.batch_size], out, outcomes)
                    del buffer[: target.batch_size]
            if buffer:
                await self._emit(buffer, out, outcomes)

    async def _emit(
        self,
        chunk: list[Item],
        out: MemoryObjectSendStream[list[Item]],
        outcomes: MemoryObjectSendStream[Outcome],
    ) -> None:
        if self.dry_run:
            await outcomes.send(Outcome(self.target.name, counts=by_page(chunk, "would_send")))
        else:
            await out.send(chunk)

    async def write(
        self,
        chunks: MemoryObjectReceiveStream[list[Item]],
        outcomes: MemoryObjectSendStream[Outcome],
    ) -> None:
        """One writer: send each batch, and its acks to the settling point. A failure of the
        target as a whole stops it; so do its first batches all failing alike (see
        :class:`~pipeline.unusable.FirstFailures`)."""
        name = self.target.name
        async with chunks, outcomes:
            async for chunk in chunks:
                if self.counters.error is not None:
                    await outcomes.send(Outcome(name, counts=by_page(chunk, "skipped")))
                    continue
                self.counters.sent += len(chunk)
                try:
                    result = await self.target.write(chunk)
                except Exception as exc:  # a failure of the target as a whole, or a bug of its
                    self.stop(str(exc) if isinstance(exc, PipelineError) else unexpected(exc))
                    await outcomes.send(Outcome(name, counts=by_page(chunk, "skipped")))
                    continue
                result = mask_batch(result, chunk)  # a message may quote another record
                await outcomes.send(Outcome(name, result))
                verdict = self._first.observe(result)
                if verdict is not None:
                    self.stop(verdict)


def replay_of(replay: Mapping[str, set[str]] | None, target: str) -> set[str] | None:
    """The customer ids a replay processes in ``target`` (none when it names none); None when
    the pass is no replay."""
    return None if replay is None else set(replay.get(target, ()))


def by_page(items: Sequence[Item], how: Settled) -> list[tuple[int, Settled, int]]:
    return [(offset, how, n) for offset, n in Counter(i.offset for i in items).items()]


def _add(
    outcome: Outcome, counts: list[tuple[int, Settled, int]], acks: Sequence[Ack] = ()
) -> Outcome:
    return msgspec.structs.replace(
        outcome, counts=[*outcome.counts, *counts], acks=[*outcome.acks, *acks]
    )
