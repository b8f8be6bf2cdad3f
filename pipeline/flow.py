"""One pass, wired: source -> transform -> broadcast -> per target (diff, writers) ->
settling point.

This is the one place where stages meet; their bodies live with their data (the source in
:mod:`pipeline.sources`, the transform in :mod:`pipeline.transform`, the per-target stages in
:mod:`pipeline.targets.stages`, the settling point in :mod:`pipeline.settling`). Every task
starts in the task group of :meth:`Pass.run`; each stage gets the stream ends it owns and
closes them when done, so end of input travels down the flow as closed channels, never as a
sentinel. :meth:`Pass.stop` stops the source and lets what is in flight drain for a grace
period. :meth:`Pass.statistics` is the one view of a running pass from outside.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
import msgspec

from pipeline.channels import Channels, broadcast
from pipeline.checkpoint import Checkpoint
from pipeline.config import Settings
from pipeline.deactivation import deactivate_missing
from pipeline.errors import PipelineError, first_error
from pipeline.records import Item, Outcome, Page, RecordBatch
from pipeline.report import PassReport, TargetCounters
from pipeline.settling import SettlingPoint
from pipeline.sources.customers import CustomerSource
from pipeline.state.seen import SeenOnDisk
from pipeline.state.store import StateStore
from pipeline.statistics import (
    PassStatistics,
    SourceStatistics,
    TargetStatistics,
    pass_report,
    why_incomplete,
)
from pipeline.targets.base import Target
from pipeline.targets.stages import TargetStages, replay_of
from pipeline.transform.dedupe import Seen, SeenInMemory
from pipeline.transform.stage import TransformStats, run_transform
from pipeline.transform.wire import RecordDecoder

__all__ = ["Pass"]

log = logging.getLogger("pipeline.flow")
_report_encoder = msgspec.json.Encoder()


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
        state = settings.state.path
        self.seen: Seen = (
            SeenInMemory()
            if state == ":memory:"
            else SeenOnDisk(Path(state).parent, owner=Path(state).name)
        )
        self.decoder = RecordDecoder.from_settings(settings.source)
        self.checkpoint = Checkpoint([t.name for t in self.targets], self.source.start_offset)
        # Targets may outlive a pass (serve keeps their tokens): report this pass's share only.
        self._stats_base = {t.name: t.stats.copy() for t in self.targets}
        self.pass_id = 0
        self._stopping = False
        self._grace = 0.0
        self._stop_event: anyio.Event | None = None
        self._stages: anyio.CancelScope | None = None
        self.deactivation_held: str | None = None
        """Why deactivation did not follow this pass, when a target asked for it."""

    def statistics(self) -> PassStatistics:
        """A frozen snapshot of the pass so far (what metrics, progress and the report read)."""
        progress, source, counters = self.source.progress, self.source, self.counters
        read = progress.records - self.transform.duplicates
        targets = {}
        for t in self.targets:
            base = self._stats_base[t.name]
            targets[t.name] = TargetStatistics(
                counts=msgspec.structs.replace(counters[t.name]),
                requests=t.stats.requests - base.requests,
                retried=t.stats.retries - base.retries,
                throttled=t.stats.throttled - base.throttled,
            )
        return PassStatistics(
            pass_id=self.pass_id,
            dry_run=self.dry_run,
            replay=self.replay is not None,
            stopping=self._stopping,
            source=SourceStatistics(
                start_offset=source.start_offset,
                pages=progress.pages,
                records=progress.records,
                rejected=self.transform.rejected,
                duplicates=self.transform.duplicates,
                next_offset=progress.next_offset,
                total=progress.total,
                page_size=progress.page_size,
                gaps=progress.gaps,
                read_to_end=source.complete,
                error=progress.error,
                http=source.http.stats.copy(),
            ),
            targets=targets,
            checkpoint=self.checkpoint.offset,
            channels=self.channels.statistics(),
            in_memory=max((read - c.settled for c in counters.values()), default=0),
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

    # The pass --------------------------------------------------------------------------

    async def run(self) -> PassReport:
        """Run the pass to its end (or its stop) and record it in the state store."""
        fresh = self.dry_run or self.replay is not None  # no checkpoint to resume from
        resumable = [] if fresh else [t.name for t in self.targets]
        self.pass_id = await self.store.start_pass(self.source.start_offset, resumable)
        started, clock = time.time(), anyio.current_time()
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
            error = str(first_error(group))
        finally:
            if isinstance(self.seen, SeenOnDisk):
                self.seen.close()
        report = pass_report(
            self.statistics(),
            started_at=started,
            seconds=anyio.current_time() - clock,
            error=error,
            deactivation_held=self.deactivation_held,
        )
        await self.store.finish_pass(
            self.pass_id, report.status, _report_encoder.encode(report), self.checkpoint.offset
        )
        log.info("pass finished", extra=report.log_fields())
        return report

    async def _run_stages(self) -> None:
        size = self.settings.flow.queue_size
        ch = self.channels
        pages_tx, pages_rx = ch.open("pages", Page)
        parsed_tx, parsed_rx = ch.open("records", RecordBatch)
        acks_tx, acks_rx = ch.open("outcomes", Outcome, size * (len(self.targets) + 1) * 2)
        settling = SettlingPoint(
            self.store, self.checkpoint, self.counters, pass_id=self.pass_id, dry_run=self.dry_run
        )
        async with AsyncExitStack() as stack:
            for target in self.targets:
                await stack.enter_async_context(target)
            async with anyio.create_task_group() as tg, acks_tx:
                tg.start_soon(self.source.stream, pages_tx)
                tg.start_soon(
                    run_transform, pages_rx, parsed_tx, self.transform, self.seen, self.decoder
                )
                fan_out = []
                for target in self.targets:
                    stages = TargetStages(
                        target,
                        self.store,
                        self.counters[target.name],
                        replay=replay_of(self.replay, target.name),
                        dry_run=self.dry_run,
                    )
                    in_tx, in_rx = ch.open(f"{target.name}.records", RecordBatch)
                    send_tx, send_rx = ch.open(f"{target.name}.batches", list[Item])
                    fan_out.append(in_tx)
                    tg.start_soon(stages.diff, in_rx, send_tx, acks_tx.clone())
                    async with send_rx:
                        for _ in range(target.max_in_flight):
                            tg.start_soon(stages.write, send_rx.clone(), acks_tx.clone())
                tg.start_soon(broadcast, parsed_rx, fan_out)
                tg.start_soon(settling.run, acks_rx)
            await self._deactivate()

    async def _deactivate(self) -> None:
        """After a complete pass, deactivate in each target that asks for it the customers the
        source no longer returns."""
        if self.dry_run or not any(t.deactivate_missing for t in self.targets):
            return
        self.deactivation_held = why_incomplete(self.statistics())
        if self.deactivation_held is not None:
            log.warning("deactivation skipped", extra={"reason": self.deactivation_held})
            return
        for target in self.targets:
            if target.deactivate_missing:
                await deactivate_missing(target, self.counters[target.name], self.store, self.seen)
