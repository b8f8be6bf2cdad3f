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

from pipeline import registry
from pipeline.channels import Channels, ChannelStats, broadcast
from pipeline.checkpoint import Checkpoint
from pipeline.config import Settings
from pipeline.deactivation import deactivate_missing
from pipeline.errors import ConfigError, PipelineError
from pipeline.records import Ack, Customer, Item, Outcome, Page, RecordBatch, Settled
from pipeline.report import PassReport, PassStatus, SourceReport, TargetCounters, TargetReport
from pipeline.sources.customers import CustomerSource
from pipeline.state.seen import SeenOnDisk
from pipeline.state.store import StateStore
from pipeline.targets.acks import dead, mask_batch
from pipeline.targets.base import Target, TargetContext
from pipeline.transform.dedupe import Dedupe, PassDedupe
from pipeline.transform.stage import TransformStats, run_transform
from pipeline.transform.wire import RecordDecoder
from pipeline.unusable import FirstFailures

__all__ = ["Pass", "build_targets"]

ACK_GROUP = 5000  # acks written to the state store in one transaction, at most

log = logging.getLogger("pipeline.flow")
_report_encoder = msgspec.json.Encoder()


def build_targets(
    settings: Settings, store: StateStore, only: Sequence[str] | None = None
) -> list[Target]:
    """The enabled targets, limited to ``only`` when given (a name given twice counts once),
    each built by its registered spec.

    Raises:
        ConfigError: ``only`` names a target that is not configured.
    """
    enabled = settings.targets.enabled()
    names = list(dict.fromkeys(only)) if only else enabled
    unknown = [n for n in names if n not in enabled]
    if unknown:
        raise ConfigError(f"target {unknown[0]!r} is not configured", path="targets")
    return [
        registry.spec(name).build(settings.targets[name], TargetContext(name, store))
        for name in names
    ]


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
        self._first = {t.name: FirstFailures(t.name) for t in self.targets}
        self.transform = TransformStats()
        # What the pass has seen lives on disk beside the state store: memory stays flat.
        self.dedupe: Dedupe = (
            PassDedupe()
            if settings.state.path == ":memory:"
            else SeenOnDisk(Path(settings.state.path).parent, owner=Path(settings.state.path).name)
        )
        self.decoder = RecordDecoder.from_settings(settings.source)
        self.checkpoint = Checkpoint([t.name for t in self.targets], self.source.start_offset)
        # Targets may outlive a pass (serve keeps their tokens): report this pass's share only.
        self._stats_base = {t.name: t.stats.copy() for t in self.targets}
        self.pass_id = 0
        self.started = 0.0
        self._stopping = False
        self._grace = 0.0
        self._stop_event: anyio.Event | None = None
        self._stages: anyio.CancelScope | None = None
        self.deactivation_held: str | None = None
        """Why deactivation did not follow this pass, when a target asked for it."""

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
    def shortfall(self) -> int:
        """Records the source announced (``total``) beyond the distinct records it served:
        repeats in place of records, or an end before the total. Known for a whole read only."""
        total = self.source.progress.total
        if total is None or self.source.start_offset != 0:
            return 0
        return max(0, total - (self.source.progress.records - self.transform.duplicates))

    @property
    def complete(self) -> bool:
        """The source was read from its start to its end, nothing stopped or failed."""
        return self._why_incomplete() is None

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

    def _open(self, target: str, batch: RecordBatch) -> tuple[list[Customer], Outcome]:
        """The page's customers to diff, and the outcome that opens the page: its rejections,
        its repeats and, in a replay, the records left alone."""
        customers = [c for c in batch.customers if self._wanted(target, c.customer_id)]
        rejected = [r for r in batch.rejected if self._wanted(target, r.customer_id)]
        ignored = len(batch.customers) + len(batch.rejected) - len(customers) - len(rejected)
        rejections = [
            Ack(target, r.customer_id, "dead", reason=r.reason, offset=batch.offset)
            for r in rejected
        ]
        counts: list[tuple[int, Settled, int]] = [
            (batch.offset, "repeat", batch.duplicates),
            (batch.offset, "ignored", ignored),
        ]
        opens = (batch.offset, batch.offset + batch.size, batch.size)
        return customers, Outcome(target, rejections, counts, opens)

    async def _diff(
        self,
        target: Target,
        batches: MemoryObjectReceiveStream[RecordBatch],
        out: MemoryObjectSendStream[list[Item]],
        outcomes: MemoryObjectSendStream[Outcome],
    ) -> None:
        """Map and hash, drop what the target already has, cut the rest into batches.

        Each page's outcome (opened, rejected, repeated, unchanged) is sent before any of its
        items reaches a writer, so the settling point always sees a page opened first.
        """
        counters = self.counters[target.name]
        buffer: list[Item] = []
        # A dead-lettered record is sent again even when it is back at what the target last
        # confirmed: only the target's answer settles it (the target may no longer hold it).
        lettered = await self.store.dead_lettered(target.name)
        async with batches, out, outcomes:
            async for batch in batches:
                customers, opened = self._open(target.name, batch)
                if counters.error is not None:
                    await outcomes.send(_add(opened, [(batch.offset, "skipped", len(customers))]))
                    continue
                items = await target.prepare(customers)
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
                    await self._emit(target, buffer[: target.batch_size], out, outcomes)
                    del buffer[: target.batch_size]
            if buffer:
                await self._emit(target, buffer, out, outcomes)

    async def _emit(
        self,
        target: Target,
        chunk: list[Item],
        out: MemoryObjectSendStream[list[Item]],
        outcomes: MemoryObjectSendStream[Outcome],
    ) -> None:
        if self.dry_run:
            await outcomes.send(Outcome(target.name, counts=_by_page(chunk, "would_send")))
        else:
            await out.send(chunk)

    async def _write(
        self,
        target: Target,
        chunks: MemoryObjectReceiveStream[list[Item]],
        outcomes: MemoryObjectSendStream[Outcome],
    ) -> None:
        counters = self.counters[target.name]
        async with chunks, outcomes:
            async for chunk in chunks:
                if counters.error is not None:
                    await outcomes.send(Outcome(target.name, counts=_by_page(chunk, "skipped")))
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
                    await outcomes.send(Outcome(target.name, counts=_by_page(chunk, "skipped")))
                    continue
                result = mask_batch(result, chunk)  # a message may quote another record
                await outcomes.send(Outcome(target.name, result))
                verdict = self._first[target.name].observe(result)
                if verdict is not None and counters.error is None:
                    counters.error = verdict
                    log.error("target stopped", extra={"target": target.name, "error": verdict})

    def _apply(self, outcome: Outcome) -> None:
        """Settle one outcome in the checkpoint and the counters (the only place that does)."""
        tracker = self.checkpoint.trackers[outcome.target]
        counters = self.counters[outcome.target]
        if outcome.opens is not None:
            tracker.opened(*outcome.opens)
        for offset, how, count in outcome.counts:
            if count:
                tracker.settle(offset, count)
                if how in _COUNTED:
                    setattr(counters, how, getattr(counters, how) + count)
        kinds = Counter(a.kind for a in outcome.acks)
        for offset, count in Counter(a.offset for a in outcome.acks).items():
            tracker.settle(offset, count)
        counters.created += kinds["created"]
        counters.updated += kinds["updated"]
        counters.dead_lettered += kinds["dead"]

    async def _settle(self, outcomes: MemoryObjectReceiveStream[Outcome]) -> None:
        """The one settling point: outcomes in groups, persisted with the checkpoint they make
        safe; only then do they count."""
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
                    self._apply(outcome)
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
            error = str(_first_error(group))
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
        acks_tx, acks_rx = ch.open("outcomes", Outcome, size * (len(self.targets) + 1) * 2)
        async with AsyncExitStack() as stack:
            for target in self.targets:
                await stack.enter_async_context(target)
            async with anyio.create_task_group() as tg, acks_tx:
                tg.start_soon(self.source.stream, pages_tx)
                tg.start_soon(
                    run_transform, pages_rx, parsed_tx, self.transform, self.dedupe, self.decoder
                )
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
            if self.dry_run or not any(t.deactivate_missing for t in self.targets):
                return
            self.deactivation_held = self._why_incomplete()
            if self.deactivation_held is not None:
                log.warning("deactivation skipped", extra={"reason": self.deactivation_held})
                return
            for target in self.targets:
                if target.deactivate_missing:
                    counters = self.counters[target.name]
                    await deactivate_missing(target, counters, self.store, self.dedupe)

    def _why_incomplete(self) -> str | None:
        """Why this pass cannot tell which customers are gone from the source; None when it can
        (the one place that decides it: :attr:`complete` and the report both ask here)."""
        progress = self.source.progress
        if not self.source.complete or self._stopping or self.replay is not None:
            return "the source was not read to its end"
        if self.source.start_offset:
            return "the pass resumed from a checkpoint and read only part of the source"
        if self.shortfall:
            served = (progress.total or 0) - self.shortfall
            return f"the source announced {progress.total:,} records and served {served:,}"
        if progress.gaps:
            return "records moved at the source while it was read: some may have been passed over"
        if self.transform.duplicates:
            return (
                f"{self.transform.duplicates:,} records were read twice: the source's order moved"
            )
        if any(c.error for c in self.counters.values()):
            return "a target stopped"
        return None

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
            deactivation_held=self.deactivation_held,
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
                total=progress.total,
                shortfall=self.shortfall,
                gaps=progress.gaps,
                page_size=progress.page_size,
                retried=self.source.http.stats.retries,
                error=progress.error,
            ),
            targets=targets,
            error=error,
        )


def _first_error(group: BaseExceptionGroup[PipelineError]) -> BaseException:
    """The first error itself, however deep the task groups nested it (``except*`` keeps the
    nesting: its message would be "unhandled errors in a TaskGroup")."""
    first: BaseException = group
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first


_COUNTED = frozenset({"unchanged", "skipped", "would_send"})
"""Ways of settling without a write that a target's counters show."""


def _by_page(items: Sequence[Item], how: Settled) -> list[tuple[int, Settled, int]]:
    return [(offset, how, n) for offset, n in Counter(i.offset for i in items).items()]


def _add(
    outcome: Outcome, counts: list[tuple[int, Settled, int]], acks: Sequence[Ack] = ()
) -> Outcome:
    return msgspec.structs.replace(
        outcome, counts=[*outcome.counts, *counts], acks=[*outcome.acks, *acks]
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
