"""The settling point: where a record's outcome in a target becomes final.

Every stage sends :class:`~pipeline.records.Outcome` here; outcomes are taken in groups,
counted into the checkpoint, and persisted in the state store with the checkpoint they make safe. A
record is *settled* in a target when it is here: confirmed, unchanged, dead-lettered, skipped,
repeated or left alone. Nothing else in the pipeline uses the word. A record skipped because
its target stopped is counted but never moves the checkpoint: the next pass reads it again.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from pipeline.checkpoint import Checkpoint
from pipeline.records import Outcome
from pipeline.report import TargetCounters
from pipeline.state.store import StateStore

__all__ = ["ACK_GROUP", "SettlingPoint"]

ACK_GROUP = 5000
"""Acks written to the state store in one transaction, at most."""

COUNTED = frozenset({"unchanged", "skipped", "would_send"})
"""Ways of settling without a write that a target's counters show."""

log = logging.getLogger("pipeline.flow")


class SettlingPoint:
    """Settles outcomes in the checkpoint, the counters and (unless a dry run) the state store.

    Args:
        pass_id: the pass whose checkpoint is written with each group.
    """

    def __init__(
        self,
        store: StateStore,
        checkpoint: Checkpoint,
        counters: Mapping[str, TargetCounters],
        *,
        pass_id: int,
        dry_run: bool,
    ) -> None:
        self.store = store
        self.checkpoint = checkpoint
        self.counters = counters
        self.pass_id = pass_id
        self.dry_run = dry_run

    def count(self, outcome: Outcome) -> None:
        """Count one outcome in the checkpoint and the counters (pure bookkeeping)."""
        tracker = self.checkpoint.trackers[outcome.target]
        counters = self.counters[outcome.target]
        if outcome.opens is not None:
            tracker.opened(*outcome.opens)
        for offset, how, number in outcome.counts:
            if number:
                if how != "skipped":  # a stopped target's records hold the checkpoint back
                    tracker.settle(offset, number)
                if how in COUNTED:
                    setattr(counters, how, getattr(counters, how) + number)
        kinds = Counter(a.kind for a in outcome.acks)
        for offset, number in Counter(a.offset for a in outcome.acks).items():
            tracker.settle(offset, number)
        counters.created += kinds["created"]
        counters.updated += kinds["updated"]
        counters.dead_lettered += kinds["dead"]

    async def run(self, outcomes: MemoryObjectReceiveStream[Outcome]) -> None:
        """Take outcomes in groups until every sender closed; persist each group with the
        checkpoint it makes safe."""
        debug = log.isEnabledFor(logging.DEBUG)
        async with outcomes:
            async for first in outcomes:
                group = [first]
                size = len(first.acks)
                while size < ACK_GROUP:
                    try:
                        more = outcomes.receive_nowait()
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                    group.append(more)
                    size += len(more.acks)
                for outcome in group:
                    self.count(outcome)
                acks = [a for o in group for a in o.acks]
                if not self.dry_run:  # a dry run leaves the state as it found it
                    await self.store.apply(acks, checkpoint=(self.pass_id, self.checkpoint.offset))
                if debug:  # the extra dict is per record: only when it is logged
                    for ack in acks:
                        if ack.kind == "dead":
                            extra = {
                                "target": ack.target,
                                "customer_id": ack.customer_id,
                                "reason": ack.reason,
                            }
                            log.debug("dead-lettered", extra=extra)
