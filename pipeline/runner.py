"""Running passes: one pass (``run``), and the long-running loop (``serve``), both stopping
gracefully on SIGTERM and SIGINT."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable, Sequence

import anyio
import msgspec
from rich.console import Console

from pipeline.config import Settings
from pipeline.errors import PipelineError, StateHeldError, first_error
from pipeline.flow import Pass
from pipeline.metrics import Health, Metrics, serve_metrics
from pipeline.progress import render_summary, watch
from pipeline.registry import build_targets
from pipeline.report import EXIT_OK, PassReport, exit_code
from pipeline.state.store import StateStore
from pipeline.targets.base import Target

__all__ = ["run_once", "serve"]

log = logging.getLogger("pipeline.runner")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


async def _on_signals(stop: Callable[[], None]) -> None:
    """Call ``stop`` on each SIGTERM or SIGINT (a second one cuts the grace period short)."""
    with anyio.open_signal_receiver(*STOP_SIGNALS) as signals:
        async for signum in signals:
            log.warning("stop requested", extra={"signal": signal.Signals(signum).name})
            stop()


async def _start_offset(
    settings: Settings, store: StateStore, targets: Sequence[Target], restart: bool
) -> int:
    checkpoint = 0 if restart else await store.resume_offset([t.name for t in targets])
    # Re-read the overlap before the checkpoint, as the page after it would have.
    offset = max(0, checkpoint - settings.source.overlap) if checkpoint else 0
    if offset:
        log.warning(
            "resuming the read where the last pass stopped; --restart reads from the start",
            extra={"offset": offset},
        )
    return offset


async def run_once(
    settings: Settings,
    *,
    targets: Sequence[str] | None = None,
    dry_run: bool = False,
    restart: bool = False,
    replay: dict[str, set[str]] | None = None,
    report_path: str | None = None,
    total: int | None = None,
    console: Console | None = None,
    show_progress: bool = True,
    handle_signals: bool = True,
) -> tuple[int, PassReport]:
    """One pass with progress and summary; returns the exit code and the report.

    A killed or stopped pass is resumed from its checkpoint unless ``restart``; a replay
    (``pipeline dlq replay``) always reads the whole source.

    Raises:
        ConfigError: the configuration cannot be used (a secret missing, an unknown target).
        StateError: the state store cannot be opened, or another pass holds it.
    """
    console = console or Console(file=sys.stderr)
    async with StateStore.open_settings(settings.state) as store:
        chosen = build_targets(settings, store, targets)
        fresh = replay is not None or dry_run
        start = 0 if fresh else await _start_offset(settings, store, chosen, restart)
        one = Pass(settings, store, chosen, dry_run=dry_run, start_offset=start, replay=replay)
        try:
            async with anyio.create_task_group() as tg:
                if show_progress:
                    tg.start_soon(lambda: watch(one, total=total, stream=console.file))
                if handle_signals:
                    tg.start_soon(_on_signals, lambda: one.stop(settings.serve.grace_seconds))
                report = await one.run()
                tg.cancel_scope.cancel()
        except* PipelineError as group:  # the state failing mid-pass, say: one error
            raise first_error(group) from None
    render_summary(report, console)
    if report_path:
        text = msgspec.json.format(msgspec.json.encode(report)) + b"\n"
        await anyio.Path(report_path).write_bytes(text)
    return exit_code(report), report


async def serve(
    settings: Settings,
    *,
    restart: bool = False,
    on_ready: Callable[[str], None] | None = None,
    max_passes: int | None = None,
) -> int:
    """Run a pass every ``interval_seconds`` (counted from the start of the previous one; a
    pass that runs long is not doubled) until SIGTERM/SIGINT, then drain and exit 0.

    ``on_ready`` gets the metrics URL once it is served; ``max_passes`` ends the loop after
    that many passes (for tests and one-off bulk loads run as a service). The state is held
    (no other pass may start on it) until it returns.

    Raises:
        StateError: the state store cannot be opened, or another pass holds it.
    """
    health = Health(config_loaded=True)
    metrics = Metrics()
    stopping = anyio.Event()
    current: list[Pass] = []

    def stop() -> None:
        stopping.set()
        for running in current:
            running.stop(settings.serve.grace_seconds)

    try:
        async with (
            serve_metrics(settings.metrics.listen, metrics, health) as url,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(_on_signals, stop)

            def announce() -> None:  # once this replica knows its role
                if on_ready is not None:
                    on_ready(url)

            store = await _hold_state(settings, health, metrics, stopping, announce)
            if store is not None:
                try:
                    health.store_open = True
                    announce()
                    loop = _Passes(settings, store, health, metrics, current)
                    await loop.run(stopping, restart=restart, max_passes=max_passes)
                finally:
                    await store.__aexit__(None, None, None)
            tg.cancel_scope.cancel()
    except* PipelineError as group:  # one error, as a pass would raise it (not a group)
        raise first_error(group) from None
    log.info("stopped")
    return EXIT_OK


class _Passes:
    """The active replica's loop: a pass every interval, counted from the start of the one
    before, until stopped."""

    def __init__(
        self,
        settings: Settings,
        store: StateStore,
        health: Health,
        metrics: Metrics,
        current: list[Pass],
    ) -> None:
        self.settings, self.store, self.health, self.metrics = settings, store, health, metrics
        self.current = current
        self.targets: list[Target] = build_targets(settings, store)
        metrics.targets = self.targets
        log.info("serving", extra={"targets": [t.name for t in self.targets]})

    async def run(self, stopping: anyio.Event, *, restart: bool, max_passes: int | None) -> None:
        settings, health, metrics = self.settings, self.health, self.metrics
        passes = 0
        while not stopping.is_set():
            started = anyio.current_time()
            first = restart and passes == 0
            start = await _start_offset(settings, self.store, self.targets, first)
            this = Pass(settings, self.store, self.targets, start_offset=start)
            self.current[:] = [this]
            metrics.current = this
            report = await this.run()
            self.current.clear()
            metrics.pass_finished(this, report)
            health.last_status, health.last_error = report.status, report.error
            health.stopped = {n: t.error for n, t in report.targets.items() if t.error}
            passes += 1
            if max_passes is not None and passes >= max_passes:
                return
            with anyio.move_on_after(
                started + settings.serve.interval_seconds - anyio.current_time()
            ):
                await stopping.wait()


STANDBY_POLL_SECONDS = 5.0
"""How often a standby replica tries to take the state over, at most (or every interval)."""


async def _hold_state(
    settings: Settings,
    health: Health,
    metrics: Metrics,
    stopping: anyio.Event,
    announce: Callable[[], None],
) -> StateStore | None:
    """The state, opened and held for this replica's passes; None when stopped first.

    On PostgreSQL, a replica that finds the state held by another stands by (ready, role
    ``standby``) and tries again every few seconds: when the active one dies, its session's
    lock goes with it and a standby takes over. A SQLite file held by another process is an
    error: it cannot be shared by replicas.

    Raises:
        StateError: the state cannot be opened, or (SQLite) another pass holds it.
    """
    poll = min(settings.serve.interval_seconds, STANDBY_POLL_SECONDS)
    while not stopping.is_set():
        store = StateStore.open_settings(settings.state)
        try:
            await store.__aenter__()
        except StateHeldError as exc:
            if settings.state.url is None:
                raise StateHeldError(
                    f"{exc}; several replicas of serve need the state on PostgreSQL "
                    "([state] url): a SQLite file cannot be shared"
                ) from exc
            if health.role != "standby":
                log.info("standing by: another replica runs the passes")
                health.role = metrics.role = "standby"
                announce()
            with anyio.move_on_after(poll):
                await stopping.wait()
            continue
        health.role = metrics.role = "active"
        return store  # open, and held until the caller closes it
    return None
