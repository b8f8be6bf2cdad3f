"""What a pass has done so far, as a frozen snapshot (:meth:`pipeline.flow.Pass.statistics`),
and the pure functions that judge it: whether the read was complete, how the pass ended, and
the report it ends with. ``/metrics``, the progress display and the report all read the
snapshot, never the pass's internals.
"""

from __future__ import annotations

import msgspec

from pipeline.channels import ChannelStats
from pipeline.http_stats import HttpStats
from pipeline.report import PassReport, PassStatus, SourceReport, TargetCounters, TargetReport

__all__ = [
    "PassStatistics",
    "SourceStatistics",
    "TargetStatistics",
    "pass_report",
    "pass_status",
    "why_incomplete",
]


class SourceStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """The source's read and the transform's verdicts, so far."""

    start_offset: int
    pages: int
    records: int
    """Records read (re-reads of the page before not counted)."""
    rejected: int
    duplicates: int
    """Records read twice in the pass (the source's order moved)."""
    next_offset: int
    total: int | None
    page_size: int
    gaps: int
    read_to_end: bool
    """The read reached the source's end, not stopped or failed."""
    error: str | None
    http: HttpStats
    """The source client's statistics (a copy)."""

    @property
    def shortfall(self) -> int:
        """Records the source announced (``total``) beyond the distinct records it served:
        repeats in place of records, or an end before the total. Known for a whole read only."""
        if self.total is None or self.start_offset != 0:
            return 0
        return max(0, self.total - (self.records - self.duplicates))


class TargetStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """One target's counts so far, and its HTTP client's share of this pass."""

    counts: TargetCounters
    """A copy of the target's counters."""
    requests: int
    retried: int
    throttled: int


class PassStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of a running (or finished) pass."""

    pass_id: int
    dry_run: bool
    replay: bool
    """Only the customers ``pipeline dlq replay`` named were processed."""
    stopping: bool
    """A stop was asked for (a signal): the read ends early."""
    source: SourceStatistics
    targets: dict[str, TargetStatistics]
    checkpoint: int
    """Every record below this offset is settled in every target."""
    channels: list[ChannelStats]
    in_memory: int
    """Records read and not yet settled in every target."""


def why_incomplete(stats: PassStatistics) -> str | None:
    """Why this pass cannot tell which customers are gone from the source; None when it can
    (the one place that decides it: deactivation and the report both ask here)."""
    source = stats.source
    if not source.read_to_end or stats.stopping or stats.replay:
        return "the source was not read to its end"
    if source.start_offset:
        return "the pass resumed from a checkpoint and read only part of the source"
    if source.shortfall:
        served = (source.total or 0) - source.shortfall
        return f"the source announced {source.total:,} records and served {served:,}"
    if source.gaps:
        return "records moved at the source while it was read: some may have been passed over"
    if source.duplicates:
        return f"{source.duplicates:,} records were read twice: the source's order moved"
    if any(t.counts.error for t in stats.targets.values()):
        return "a target stopped"
    return None


def pass_status(stats: PassStatistics, error: str | None) -> PassStatus:
    """How the pass ended: aborted (an error, or a target stopped), stopped (a signal), with
    dead letters, or ok."""
    counts = [t.counts for t in stats.targets.values()]
    if error is not None or any(c.error for c in counts):
        return "aborted"
    if stats.stopping:
        return "stopped"
    if any(c.dead_lettered for c in counts):
        return "dead_letters"
    return "ok"


def pass_report(
    stats: PassStatistics,
    *,
    started_at: float,
    seconds: float,
    error: str | None,
    deactivation_held: str | None,
) -> PassReport:
    """The report of a finished pass, from its last snapshot."""
    source = stats.source
    error = error or source.error
    targets = {}
    for name, target in stats.targets.items():
        c = target.counts
        done = c.created + c.updated + c.unchanged + c.dead_lettered
        targets[name] = TargetReport(
            sent=c.sent,
            created=c.created,
            updated=c.updated,
            unchanged=c.unchanged,
            dead_lettered=c.dead_lettered,
            skipped=c.skipped,
            would_send=c.would_send,
            deactivated=c.deactivated,
            deactivation_skipped=c.deactivation_skipped,
            retried=target.retried,
            throttled=target.throttled,
            requests=target.requests,
            records_per_second=round(done / seconds, 1) if seconds > 0 else 0.0,
            error=c.error,
        )
    return PassReport(
        pass_id=stats.pass_id,
        status=pass_status(stats, error),
        dry_run=stats.dry_run,
        complete=why_incomplete(stats) is None,
        deactivation_held=deactivation_held,
        started_at=started_at,
        seconds=round(seconds, 3),
        records_per_second=round(source.records / seconds, 1) if seconds > 0 else 0.0,
        source=SourceReport(
            pages=source.pages,
            records=source.records,
            rejected=source.rejected,
            duplicates=source.duplicates,
            start_offset=source.start_offset,
            next_offset=source.next_offset,
            checkpoint=stats.checkpoint,
            total=source.total,
            shortfall=source.shortfall,
            gaps=source.gaps,
            page_size=source.page_size,
            retried=source.http.retries,
            error=source.error,
        ),
        targets=targets,
        error=error,
    )
