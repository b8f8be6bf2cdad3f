"""What a person sees while a pass runs: a live display on a terminal, plain lines otherwise,
and the summary table at the end."""

from __future__ import annotations

import sys
from typing import IO

import anyio
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from pipeline.flow import Pass
from pipeline.report import PassReport
from pipeline.text import plain

__all__ = ["nothing_written", "render_summary", "watch"]


async def watch(
    running: Pass,
    *,
    total: int | None = None,
    stream: IO[str] | None = None,
    interval: float = 5.0,
) -> None:
    """Show the pass's progress (its :meth:`~pipeline.flow.Pass.statistics`) until cancelled:
    a live bar on a terminal, else a line every ``interval`` seconds."""
    out = stream or sys.stderr
    if out.isatty():
        await _live(running, total, Console(file=out))
    else:
        await _lines(running, out, interval)


async def _live(running: Pass, total: int | None, console: Console) -> None:
    columns = (
        TextColumn("{task.description:<12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>10} rec/s"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        read = bar.add_task("read", total=total, rate="")
        names = list(running.statistics().targets)
        tasks = {name: bar.add_task(name, total=total, rate="") for name in names}
        clock = anyio.current_time()
        while True:
            elapsed = max(anyio.current_time() - clock, 1e-6)
            stats = running.statistics()
            records = stats.source.records
            bar.update(read, completed=records, rate=f"{records / elapsed:,.0f}")
            for name, task in tasks.items():
                settled = stats.targets[name].counts.settled + stats.source.duplicates
                bar.update(task, completed=settled, rate=f"{settled / elapsed:,.0f}")
            await anyio.sleep(0.1)


async def _lines(running: Pass, out: IO[str], interval: float) -> None:
    clock = anyio.current_time()
    while True:
        await anyio.sleep(interval)
        elapsed = anyio.current_time() - clock
        stats = running.statistics()
        parts = [f"read {stats.source.records}"]
        parts += [f"{name} {t.counts.settled}" for name, t in stats.targets.items()]
        print(f"[{elapsed:6.1f}s] " + ", ".join(parts), file=out, flush=True)


def nothing_written(report: PassReport) -> str:
    """What a pass that wrote nothing amounted to, from its counts: it says "unchanged" only
    when every record read was settled as unchanged (or refused, or rejected)."""
    targets = report.targets.values()
    attempted = sum(t.sent for t in targets)  # writes tried, confirmed or not
    skipped = sum(t.skipped for t in targets)
    stopped = sorted(name for name, t in report.targets.items() if t.error)
    if report.source.records == 0:
        return "nothing written: the source returned no records"
    if stopped:
        return (
            f"nothing written: {', '.join(stopped)} stopped"
            + (f", {skipped:,} records not tried" if skipped else "")
            + " (see below); the next pass tries again"
        )
    if report.status == "stopped":
        return "nothing written: the pass was stopped before any write was confirmed"
    if attempted == 0:
        return "nothing to send: every valid record is unchanged since its last confirmed write"
    return (
        f"nothing written: the {attempted:,} records tried were refused "
        "(see pipeline dlq list); every other valid record is unchanged"
    )


def render_summary(report: PassReport, console: Console) -> None:
    """The table a pass ends with, and one line saying what it amounted to."""
    table = Table(title=f"pass {report.pass_id}: {report.status}", title_justify="left")
    columns = ("target", "created", "updated", "unchanged", "dead-lettered", "retries", "records/s")
    for column in columns:
        table.add_column(column, justify="left" if column == "target" else "right")
    for name, t in report.targets.items():
        table.add_row(
            name,
            f"{t.created:,}",
            f"{t.updated:,}",
            f"{t.unchanged:,}",
            f"{t.dead_lettered:,}",
            f"{t.retried:,}",
            f"{t.records_per_second:,.0f}",
        )
    console.print(table)
    src = report.source
    console.print(
        f"source: {src.records:,} records in {src.pages:,} pages, {src.rejected:,} rejected, "
        f"{src.duplicates:,} repeats dropped; {report.seconds:.2f} s, "
        f"{report.records_per_second:,.0f} records/s"
    )
    if src.shortfall and src.total is not None:
        console.print(
            f"[yellow]the source announced {src.total:,} records but served "
            f"{src.total - src.shortfall:,} distinct ones[/yellow]: the read fell short",
            highlight=False,
        )
    if src.gaps:
        console.print(
            f"[yellow]records moved at the source on {src.gaps:,} pages[/yellow]: some may "
            "have been passed over until the next pass",
            highlight=False,
        )
    if report.deactivation_held:
        console.print(
            f"[yellow]deactivation skipped[/yellow]: {report.deactivation_held}", highlight=False
        )
    if report.dry_run:
        would = sum(t.would_send for t in report.targets.values())
        console.print(f"dry run: {would:,} records would be sent; nothing was written")
    elif report.status != "aborted" and not any(
        t.created or t.updated for t in report.targets.values()
    ):
        console.print(nothing_written(report), highlight=False)
    for name, t in report.targets.items():
        if t.deactivated:
            console.print(f"{name}: {t.deactivated:,} customers gone from the source deactivated")
        if t.deactivation_skipped:
            console.print(
                f"[yellow]{name}: deactivation skipped[/yellow]: {t.deactivation_skipped:,} "
                "customers are gone from the source, more than max_deactivate_share allows"
            )
        if t.error:
            console.print(Text.assemble((f"{name} stopped:", "red"), " ", plain(t.error)))
    if report.error:
        console.print(Text.assemble(("pass aborted:", "red"), " ", plain(report.error)))
