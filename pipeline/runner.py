"""Running passes: one pass with its display, report file and exit code."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import anyio
import msgspec
from rich.console import Console

from pipeline.config import Settings
from pipeline.flow import Pass, build_targets
from pipeline.progress import render_summary, watch
from pipeline.report import PassReport, exit_code
from pipeline.state.store import StateStore

__all__ = ["run_once"]


async def run_once(
    settings: Settings,
    *,
    targets: Sequence[str] | None = None,
    dry_run: bool = False,
    report_path: str | None = None,
    total: int | None = None,
    console: Console | None = None,
    show_progress: bool = True,
) -> tuple[int, PassReport]:
    """One pass with progress and summary; returns the exit code and the report.

    Raises:
        ConfigError: the configuration cannot be used (a secret missing, an unknown target).
        StateError: the state store cannot be opened.
    """
    console = console or Console(file=sys.stderr)
    async with StateStore(settings.state.path) as store:
        run = Pass(settings, store, build_targets(settings, store, targets), dry_run=dry_run)
        async with anyio.create_task_group() as tg:
            if show_progress:
                tg.start_soon(lambda: watch(run, total=total, stream=console.file))
            report = await run.run()
            tg.cancel_scope.cancel()
    render_summary(report, console)
    if report_path:
        text = msgspec.json.format(msgspec.json.encode(report)) + b"\n"
        await anyio.Path(report_path).write_bytes(text)
    return exit_code(report), report
