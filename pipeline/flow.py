"""One pass, wired: source -> transform -> broadcast -> per-target diff and writers -> state.

This is the one place where stages meet. Every task starts in the task group of
:meth:`Pass.run`; each stage gets the stream ends it owns and closes them when done, so end of
input travels down the flow as closed channels, never as a sentinel.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import AsyncExitStack

import anyio
import msgspec
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from pipeline.channels import Channels, ChannelStats, broadcast
from pipeline.config import Settings
from pipeline.errors import ConfigError, PipelineError
from pipeline.records import Ack, Item, Page, RecordBatch
from pipeline.report import PassReport, SourceReport, TargetCounters, TargetReport
from pipeline.sinks.base import Target
from pipeline.sinks.emporix import EmporixTarget
from pipeline.sinks.norce import NorceTarget
from pipeline.sinks.syncbatch import SyncBatchTarget
from pipeline.sources.customers import CustomerSource
from pipeline.state.store import StateStore
from pipeline.transform.stage import TransformStats, run_transform

__all__ = ["Pass", "build_targets"]

ACK_GROUP = 5000  # acks written to the state store in one transaction, at most

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
    """One full read of the source, written to every target; :meth:`run` returns the report."""

    def __init__(
        self,
        settings: Settings,
        store: StateStore,
        targets: Sequence[Target],
        *,
        dry_run: bool = False,
        source: CustomerSource | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.targets = list(targets)
        self.dry_run = dry_run
        self.source = source or CustomerSource(settings.source)
        self.channels = Channels(settings.flow.queue_size)
        self.counters = {t.name: TargetCounters() for t in self.targets}
        self.transform = TransformStats()
        self.started = 0.0

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

    # Stages ----------------------------------------------------------------------------

    async def _diff(
        self,
        target: Target,
        batches: MemoryObjectReceiveStream[RecordBatch],
        out: MemoryObjectSendStream[list[Item]],
        acks: MemoryObjectSendStream[list[Ack]],
    ) -> None:
        """Map and hash, drop what the target already has, cut the rest into batches."""
        counters = self.counters[target.name]
        buffer: list[Item] = []
        async with batches, out, acks:
            async for batch in batches:
                if batch.rejected:
                    await acks.send(
                        [
                            Ack(target.name, r.customer_id, "dead", reason=r.reason)
                            for r in batch.rejected
                        ]
                    )
                if counters.error is not None:
                    counters.skipped += len(batch.customers)
                    continue
                items = await target.prepare(batch.customers)
                stored = await self.store.hashes(target.name, [i.customer_id for i in items])
                for item in items:
                    previous = stored.get(item.customer_id)
                    if previous == item.hash:
                        counters.unchanged += 1
                    else:
                        item.previous = previous
                        buffer.append(item)
                while len(buffer) >= target.batch_size:
                    await self._emit(counters, buffer[: target.batch_size], out)
                    del buffer[: target.batch_size]
            if buffer:
                await self._emit(counters, buffer, out)

    async def _emit(
        self, counters: TargetCounters, chunk: list[Item], out: MemoryObjectSendStream[list[Item]]
    ) -> None:
        if self.dry_run:
            counters.would_send += len(chunk)
        else:
            await out.send(chunk)

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
                    continue
                counters.sent += len(chunk)
                try:
                    await acks.send(await target.write(chunk))
                except PipelineError as exc:
                    # The target as a whole is unusable (auth, say): stop it, keep the others.
                    counters.error = counters.error or str(exc)
                    counters.skipped += len(chunk)

    async def _settle(self, acks: MemoryObjectReceiveStream[list[Ack]]) -> None:
        """Persist acks in groups; only then do they count as settled."""
        async with acks:
            async for first in acks:
                group = list(first)
                while len(group) < ACK_GROUP:
                    try:
                        group.extend(acks.receive_nowait())
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                await self.store.apply(group)
                for ack in group:
                    counters = self.counters[ack.target]
                    if ack.kind == "dead":
                        counters.dead_lettered += 1
                    elif ack.kind == "created":
                        counters.created += 1
                    else:
                        counters.updated += 1

    # The pass --------------------------------------------------------------------------

    async def run(self) -> PassReport:
        """Run the pass to its end and record it in the state store."""
        pass_id = await self.store.start_pass()
        self.started = time.time()
        clock = anyio.current_time()
        error: str | None = None
        try:
            await self._run_stages()
        except* PipelineError as group:
            error = str(group.exceptions[0])
        report = self._report(pass_id, anyio.current_time() - clock, error)
        await self.store.finish_pass(pass_id, report.status, _report_encoder.encode(report))
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
                tg.start_soon(run_transform, pages_rx, parsed_tx, self.transform)
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

    def _report(self, pass_id: int, seconds: float, error: str | None) -> PassReport:
        progress = self.source.progress
        error = error or progress.error
        targets = {}
        for target in self.targets:
            c = self.counters[target.name]
            stats = target.stats
            done = c.created + c.updated + c.unchanged + c.dead_lettered
            targets[target.name] = TargetReport(
                sent=c.sent,
                created=c.created,
                updated=c.updated,
                unchanged=c.unchanged,
                dead_lettered=c.dead_lettered,
                skipped=c.skipped,
                would_send=c.would_send,
                retried=stats.retries,
                throttled=stats.throttled,
                requests=stats.requests,
                records_per_second=round(done / seconds, 1) if seconds > 0 else 0.0,
                error=c.error,
            )
        aborted = error is not None or any(c.error for c in self.counters.values())
        dead = any(t.dead_lettered for t in targets.values())
        return PassReport(
            pass_id=pass_id,
            status="aborted" if aborted else "dead_letters" if dead else "ok",
            dry_run=self.dry_run,
            started_at=self.started,
            seconds=round(seconds, 3),
            records_per_second=round(progress.records / seconds, 1) if seconds > 0 else 0.0,
            source=SourceReport(
                pages=progress.pages,
                records=progress.records,
                rejected=self.transform.rejected,
                duplicates=self.transform.duplicates,
                next_offset=progress.next_offset,
                retried=self.source.http.stats.retries,
                error=progress.error,
            ),
            targets=targets,
            error=error,
        )
