"""The summary does not lie (issue 12, item 14): the line a pass that wrote nothing ends with
says what happened, and an error names the page that failed."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.emulators import Dataset, FaultPlan, ManEmulatorConfig
from pipeline.progress import nothing_written
from pipeline.report import PassReport, SourceReport, TargetReport
from tests.conftest import MAN_TOKEN, Env
from tests.kit.passes import run_pass


def report(records: int = 100, status: Any = "ok", **target: Any) -> PassReport:
    counts: dict[str, Any] = {
        "sent": 0, "created": 0, "updated": 0, "unchanged": 0, "dead_lettered": 0,
        "skipped": 0, "would_send": 0, "retried": 0, "throttled": 0, "requests": 0,
        "records_per_second": 0.0, **target,
    }  # fmt: skip
    source = SourceReport(
        pages=1, records=records, rejected=0, duplicates=0, next_offset=records, retried=0
    )
    return PassReport(
        pass_id=1,
        status=status,
        dry_run=False,
        started_at=0.0,
        seconds=1.0,
        records_per_second=0.0,
        source=source,
        targets={"syncbatch": TargetReport(**counts)},
    )


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        (report(unchanged=100), "nothing to send: every valid record is unchanged"),
        (report(records=0), "nothing written: the source returned no records"),
        (
            report(skipped=100, error="refused with 401"),
            "nothing written: syncbatch stopped, 100 records not tried (see below)",
        ),
        (report(status="stopped"), "nothing written: the pass was stopped"),
        (report(sent=5, dead_lettered=5, unchanged=95), "nothing written: the 5 records tried"),
    ],
)
def test_a_pass_that_wrote_nothing_says_why(case: PassReport, expected: str) -> None:
    assert nothing_written(case).startswith(expected)


async def test_a_source_that_fails_names_the_first_page_not_one_read_ahead(env: Env) -> None:
    dataset = Dataset(1_000, seed=2, defects=False)
    faults = FaultPlan(error_rate=1.0, error_statuses=(500,))
    await env.start(dataset, man=ManEmulatorConfig(token=MAN_TOKEN, faults=faults))
    report, _ = await run_pass(env, source__max_in_flight=8)
    assert report.status == "aborted"
    assert report.error is not None and report.error.endswith("(offset 0)"), report.error
