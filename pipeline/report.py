"""The pass report: counters kept while a pass runs, and the JSON report it ends with."""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = [
    "EXIT_ABORTED",
    "EXIT_DEAD_LETTERS",
    "EXIT_OK",
    "EXIT_USAGE",
    "PassReport",
    "PassStatus",
    "SourceReport",
    "TargetCounters",
    "TargetReport",
    "exit_code",
]

EXIT_OK = 0
EXIT_ABORTED = 1
EXIT_USAGE = 2
EXIT_DEAD_LETTERS = 3

PassStatus = Literal["ok", "dead_letters", "aborted", "stopped"]


class TargetCounters(msgspec.Struct):
    """Live counts for one target; a record counts once it is settled in the state store."""

    sent: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    dead_lettered: int = 0
    skipped: int = 0
    """Not attempted because the target stopped (an auth failure, say)."""
    would_send: int = 0
    """Dry run: records that would have been written."""
    deactivated: int = 0
    """Customers gone from the source, deactivated in the target after the pass."""
    deactivation_skipped: int = 0
    """Customers gone from the source but left active: too many would have gone."""
    error: str | None = None

    @property
    def settled(self) -> int:
        return (
            self.created
            + self.updated
            + self.unchanged
            + self.dead_lettered
            + self.skipped
            + self.would_send
        )


class TargetReport(msgspec.Struct, frozen=True, kw_only=True):
    sent: int
    created: int
    updated: int
    unchanged: int
    dead_lettered: int
    skipped: int
    would_send: int
    deactivated: int = 0
    deactivation_skipped: int = 0
    retried: int
    throttled: int
    requests: int
    records_per_second: float
    error: str | None = None


class SourceReport(msgspec.Struct, frozen=True, kw_only=True):
    pages: int
    records: int
    rejected: int
    duplicates: int
    start_offset: int = 0
    next_offset: int
    checkpoint: int = 0
    """Every record below this offset is settled in every target."""
    total: int | None = None
    """Records the source announced, when it did."""
    shortfall: int = 0
    """Records the source announced beyond the distinct ones it served (the read fell short)."""
    gaps: int = 0
    """Pages where more records than ``overlap`` moved between two requests."""
    page_size: int = 0
    """Records per page the source honoured."""
    retried: int
    error: str | None = None


class PassReport(msgspec.Struct, frozen=True, kw_only=True):
    pass_id: int
    status: PassStatus
    dry_run: bool
    complete: bool = False
    """The whole source was read and nothing stopped: deactivation may follow."""
    deactivation_held: str | None = None
    """Why no deactivation followed, when a target asked for it and the pass was not complete."""
    started_at: float
    seconds: float
    records_per_second: float
    source: SourceReport
    targets: dict[str, TargetReport]
    error: str | None = None

    def log_fields(self) -> dict[str, object]:
        """The report in the fields of the "pass finished" log line."""
        fields: dict[str, object] = {
            "pass_id": self.pass_id,
            "status": self.status,
            "seconds": self.seconds,
            "records": self.source.records,
            "checkpoint": self.source.checkpoint,
        }
        for name, t in self.targets.items():
            fields[name] = {
                "created": t.created,
                "updated": t.updated,
                "unchanged": t.unchanged,
                "dead_lettered": t.dead_lettered,
            }
        return fields


def exit_code(report: PassReport) -> int:
    """DESIGN §4: 0 all confirmed or unchanged (or stopped by a signal, state saved),
    3 some dead-lettered, 1 aborted."""
    if report.status == "aborted":
        return EXIT_ABORTED
    if report.status == "dead_letters":
        return EXIT_DEAD_LETTERS
    return EXIT_OK
