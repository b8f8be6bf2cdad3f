"""One pass, wired: source -> transform -> broadcast -> per-target diff and writers -> state.

This is the one place where stages meet. Every task starts in the task group of
:meth:`Pass.run`; each stage gets the stream ends it owns and closes them when done, so end of
input travels down the flow as closed channels, never as a sentinel. :meth:`Pass.stop` stops
the source and lets what is in flight drain for a grace period.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
import msgspec
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from pipeline.channels import Channels, ChannelStats, broadcast
from pipeline.checkpoint import Checkpoint
from pipeline.config import Settings
from pipeline.deactivation import deactivate_missing
from pipeline.errors import ConfigError, PipelineError
from pipeline.records import Ack, Customer, Item, Page, RecordBatch
from pipeline.report import PassReport, PassStatus, SourceReport, TargetCounters, TargetReport
from pipeline.sinks.base import Target
from pipeline.sinks.emporix import EmporixTarget
from pipeline.sinks.norce import NorceTarget
from pipeline.sinks.syncbatch import SyncBatchTarget
from pipeline.sources.customers import CustomerSource
from pipeline.state.seen import SeenOnDisk
from pipeline.state.store import StateStore
from pipeline.transform.dedupe import Dedupe, PassDedupe
from pipeline.transform.stage import TransformStats, run_transform

__all__ = ["Pass", "build_targets"]

ACK_GROUP = 5000  # acks written to the state store in one transaction, at most

log = logging.getLogger("pipeline.flow")
_report_encoder = msgspec.json.Encoder()


def build_targets(
    settings: Settings, store: StateStore, only: Sequence[str] | None = None
) -> list[Target]:
    """The enabled targets, limited to ``only`` when given.

    Raises:
        ConfigError: ``only`` names a target that is not configured.
    """
    enabled = settings.targets.enabled()
    names = list(only) if only else enabled
    unknown = [n for n in names if n not in enabled]
    if unknown:
        raise ConfigError(f"target {unknown[0]!r} is not configured", path="targets")
    targets: list[Target] = []
    configured = settings.targets
    for name in names:
        if name == "syncbatch" and configured.syncbatch is not None:
            targets.append(SyncBatchTarget(configured.syncbatch, store))
        elif name == "emporix" and configured.emporix is not None:
            targets.append(EmporixTarget(configured.emporix))
        elif name == "norce" and configured.norce is not None:
            targets.append(NorceTarget(configured.norce))
    return targets


class Pass:
    """One read of the source, written to every target; :meth:`run` returns the report.

    Args:
        start_offset: where the read starts (a resumed pass starts at a checkpoint).
        replay: per target, the only customer ids to process (``pipeline dlq replay``).
    """

    def __init__(
        self,
        settings: Settings,
        store: StateStore,
        targets: Sequence[Target],
        *,
        dry_run: bool = False,
        start_offset: int = 0,
        replay: Mapping[str, set[str]] | None = None,
        source: CustomerSource | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.targets = list(targets)
        self.dry_run = dry_run
        self.replay = replay
        self.source = source or CustomerSource(settings.source, start_offset=start_offset)
        self.channels = Channels(settings.flow.queue_size)
        self.counters = {t.name: TargetCounters() for t in self.targets}
        self.transform = TransformStats()
        # What the pass has seen lives on disk beside the state store: memory stays flat.
        self.dedupe: Dedupe = (
            PassDedupe()
            if settings.state.path == ":memory:"
            else SeenOnDisk(Path(settings.state.path).parent)
        )
        self.checkpoint = Checkpoint([t.name for t in self.targets], self.source.start_offset)
        # Targets may outlive a pass (serve keeps their tokens): report this pass's share only.
        self._stats_base = {t.name: t.stats.copy() for t in self.targets}
        self.pass_id = 0
        self.started = 0.0
        self._stopping = False
        self._grace = 0.0
        self._stop_event: anyio.Event | None = None
        self._stages: anyio.CancelScope | None = None

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.targets]

    # Observability ---------------------------------------------------------------------

    def in_memory(self) -> int:
        """Records read from the source and not yet settled in every target."""
        unsettled = [
            self.source.progress.records - self.transform.duplicates - c.settled
            for c in self.counters.values()
        ]
        return max(unsettled, default=0)

    def statistics(self) -> list[ChannelStats]:
        return self.channels.statistics()

    @property
    def complete(self) -> bool:
        """The source was read from its start to its end, nothing stopped or failed."""
        return (
            self.source.complete
            and self.source.start_offset == 0
            and not self._stopping
            and self.replay is None
            and not any(c.error for c in self.counters.values())
        )

    # Stopping --------------------------------------------------------------------------

    def stop(self, grace_seconds: float) -> None:
        """Stop fetching; what is in flight has ``grace_seconds`` to finish, then is dropped
        (unconfirmed, so the next pass sends it again). A second call cuts the grace short."""
        if self._stopping:
            if self._stages is not None:
                self._stages.cancel()
            return
        self._stopping = True
        self._grace = grace_seconds
        if self._stop_event is not None:
            self._stop_event.set()
        self.source.stop()

    async def _enforce_grace(self, stages: anyio.CancelScope) -> None:
        self._stop_event = anyio.Event()
        if self._stopping:
            self._stop_event.set()
        await self._stop_event.wait()
        await anyio.sleep(self._grace)
        log.warning("grace period over: dropping what is still in flight")
        stages.cancel()

    # Stages ----------------------------------------------------------------------------

    def _wanted(self, target: str, customer_id: str) -> bool:
        return self.replay is None or customer_id in self.replay.get(target, ())

    def _open(self, target: str, batch: RecordBatch) -> tuple[list[Customer], list[Ack]]:
        """Register the page with the checkpoint; its customers to diff and its rejections."""
        tracker = self.checkpoint.trackers[target]
        tracker.opened(batch.offset, batch.offset + batch.size, batch.size - batch.duplicates)
        customers = [c for c in batch.customers if self._wanted(target, c.customer_id)]
        rejected = [r for r in batch.rejected if self._wanted(target, r.customer_id)]
        ignored = len(batch.customers) + len(batch.rejected) - len(customers) - len(rejected)
        if ignored:  # a replay leaves the other records alone
            tracker.settle(batch.offset, ignored)
        dead = [
            Ack(target, r.customer_id, "dead", reason=r.reason, offset=batch.offset)
            for r in rejected
        ]
        return customers, dead

    async def _diff(
        self,
        target: Target,
        batches: MemoryObjectReceiveStream[RecordBatch],
        out: MemoryObjectSendStream[list[Item]],
        acks: MemoryObjectSendStream[list[Ack]],
    ) -> None:
        """Map and hash, drop what the target already has, cut the rest into batches."""
        counters = self.counters[target.name]
        tracker = self.checkpoint.trackers[target.name]
        buffer: list[Item] = []
        async with batches, out, acks:
            async for batch in batches:
                customers, dead = self._open(target.name, batch)
                if dead:
                    await acks.send(dead)
                if counters.error is not None:
                    counters.skipped += len(customers)
                    tracker.settle(batch.offset, len(customers))
                    continue
                items = await target.prepare(customers)
                stored = await self.store.hashes(target.name, [i.customer_id for i in items])
                unchanged = 0
                for item in items:
                    previous = stored.get(item.customer_id)
                    if previous == item.hash:
                        unchanged += 1
                    else:
                        item.previous = previous
                        item.offset = batch.offset
                        buffer.append(item)
                counters.unchanged += unchanged
                tracker.settle(batch.offset, unchanged)
                while len(buffer) >= target.batch_size:
                    await self._emit(target, buffer[: target.batch_size], out)
                    del buffer[: target.batch_size]
            if buffer:
                await self._emit(target, buffer, out)

    async def _emit(
        self, target: Target, chunk: list[Item], out: MemoryObjectSendStream[list[Item]]
    ) -> None:
        if self.dry_run:
            self.counters[target.name].would_send += len(chunk)
            self._settle_items(target.name, chunk)
        else:
            await out.send(chunk)

    def _settle_items(self, target: str, items: Sequence[Item]) -> None:
        tracker = self.checkpoint.trackers[target]
        for item in items:
            tracker.settle(item.offset)

    async def _write(
        self,
        target: Target,
        chunks: MemoryObjectReceiveStream[list[Item]],
        acks: MemoryObjectSendStream[list[Ack]],
    ) -> None:
        counters = self.counters[target.name]
        async with chunks, acks:
            async for chunk in chunks:
                if counters.error is not None:
                    counters.skipped += len(chunk)
                    self._settle_items(target.name, chunk)
                    continue
                counters.sent += len(chunk)
                try:
                    result = await target.write(chunk)
                except PipelineError as exc:
                    # The target as a whole is unusable (auth, say): stop it, keep the others.
                    if counters.error is None:
                        counters.error = str(exc)
                        log.error(
                            "target stopped", extra={"target": target.name, "error": str(exc)}
                        )
                    counters.skipped += len(chunk)
                    self._settle_items(target.name, chunk)
                    continue
                await acks.send(result)

    async def _settle(self, acks: MemoryObjectReceiveStream[list[Ack]]) -> None:
        """Persist acks in groups, with the checkpoint they make safe; only then do they count."""
        debug = log.isEnabledFor(logging.DEBUG)
        async with acks:
            async for first in acks:
                group = list(first)
                while len(group) < ACK_GROUP:
                    try:
                        group.extend(acks.receive_nowait())
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                for (target, offset), count in Counter((a.target, a.offset) for a in group).items():
                    self.checkpoint.trackers[target].settle(offset, count)
                if not self.dry_run:  # a dry run leaves the state as it found it
                    await self.store.apply(group, checkpoint=(self.pass_id, self.checkpoint.offset))
                for ack in group:
                    counters = self.counters[ack.target]
                    if ack.kind == "dead":
                        counters.dead_lettered += 1
                        if debug:  # the extra dict is per record: only when it is logged
                            extra = {
                                "target": ack.target,
                                "customer_id": ack.customer_id,
                                "reason": ack.reason,
                            }
                            log.debug("dead-lettered", extra=extra)
                    elif ack.kind == "created":
                        counters.created += 1
                    else:
                        counters.updated += 1

    # The pass --------------------------------------------------------------------------

    async def run(self) -> PassReport:
        """Run the pass to its end (or its stop) and record it in the state store."""
        resumable = [] if self.dry_run or self.replay is not None else self.names
        self.pass_id = await self.store.start_pass(self.source.start_offset, resumable)
        self.started = time.time()
        clock = anyio.current_time()
        error: str | None = None
        log.info(
            "pass started",
            extra={"pass_id": self.pass_id, "start_offset": self.source.start_offset},
        )
        try:
            async with anyio.create_task_group() as watchdog:
                with anyio.CancelScope() as stages:
                    self._stages = stages
                    watchdog.start_soon(self._enforce_grace, stages)
                    await self._run_stages()
                watchdog.cancel_scope.cancel()
        except* PipelineError as group:
            error = str(group.exceptions[0])
        finally:
            if isinstance(self.dedupe, SeenOnDisk):
                self.dedupe.close()
        report = self._report(anyio.current_time() - clock, error)
        await self.store.finish_pass(
            self.pass_id, report.status, _report_encoder.encode(report), self.checkpoint.offset
        )
        log.info("pass finished", extra=_summary(report))
        return report

    async def _run_stages(self) -> None:
        size = self.settings.flow.queue_size
        ch = self.channels
        pages_tx, pages_rx = ch.open("pages", Page)
        parsed_tx, parsed_rx = ch.open("records", RecordBatch)
        acks_tx, acks_rx = ch.open("acks", list[Ack], size * (len(self.targets) + 1))
        async with AsyncExitStack() as stack:
            for target in self.targets:
                await stack.enter_async_context(target)
            async with anyio.create_task_group() as tg, acks_tx:
                tg.start_soon(self.source.stream, pages_tx)
                tg.start_soon(run_transform, pages_rx, parsed_tx, self.transform, self.dedupe)
                fan_out = []
                for target in self.targets:
                    in_tx, in_rx = ch.open(f"{target.name}.records", RecordBatch)
                    send_tx, send_rx = ch.open(f"{target.name}.batches", list[Item])
                    fan_out.append(in_tx)
                    tg.start_soon(self._diff, target, in_rx, send_tx, acks_tx.clone())
                    async with send_rx:
                        for _ in range(target.max_in_flight):
                            tg.start_soon(self._write, target, send_rx.clone(), acks_tx.clone())
                tg.start_soon(broadcast, parsed_rx, fan_out)
                tg.start_soon(self._settle, acks_rx)
            if self.complete and not self.dry_run:
                for target in self.targets:
                    if target.deactivate_missing:
                        counters = self.counters[target.name]
                        await deactivate_missing(target, counters, self.store, self.dedupe)

    def _status(self, error: str | None) -> PassStatus:
        if error is not None or any(c.error for c in self.counters.values()):
            return "aborted"
        if self._stopping:
            return "stopped"
        if any(c.dead_lettered for c in self.counters.values()):
            return "dead_letters"
        return "ok"

    def _report(self, seconds: float, error: str | None) -> PassReport:
        progress = self.source.progress
        error = error or progress.error
        targets = {}
        for target in self.targets:
            c = self.counters[target.name]
            stats, base = target.stats, self._stats_base[target.name]
            done = c.created + c.updated + c.unchanged + c.dead_lettered
            targets[target.name] = TargetReport(
                sent=c.sent,
                created=c.created,
                updated=c.updated,
                unchanged=c.unchanged,
                dead_lettered=c.dead_lettered,
                skipped=c.skipped,
                would_send=c.would_send,
                deactivated=c.deactivated,
                deactivation_skipped=c.deactivation_skipped,
                retried=stats.retries - base.retries,
                throttled=stats.throttled - base.throttled,
                requests=stats.requests - base.requests,
                records_per_second=round(done / seconds, 1) if seconds > 0 else 0.0,
                error=c.error,
            )
        return PassReport(
            pass_id=self.pass_id,
            status=self._status(error),
            dry_run=self.dry_run,
            complete=self.complete,
            started_at=self.started,
            seconds=round(seconds, 3),
            records_per_second=round(progress.records / seconds, 1) if seconds > 0 else 0.0,
            source=SourceReport(
                pages=progress.pages,
                records=progress.records,
                rejected=self.transform.rejected,
                duplicates=self.transform.duplicates,
                start_offset=self.source.start_offset,
                next_offset=progress.next_offset,
                checkpoint=self.checkpoint.offset,
                retried=self.source.http.stats.retries,
                error=progress.error,
            ),
            targets=targets,
            error=error,
        )


def _summary(report: PassReport) -> dict[str, object]:
    fields: dict[str, object] = {
        "pass_id": report.pass_id,
        "status": report.status,
        "seconds": report.seconds,
        "records": report.source.records,
        "checkpoint": report.source.checkpoint,
    }
    for name, t in report.targets.items():
        fields[name] = {
            "created": t.created,
            "updated": t.updated,
            "unchanged": t.unchanged,
            "dead_lettered": t.dead_lettered,
        }
    return fields
