"""Operator commands on the state store: dead letters (list, replay) and status."""

from __future__ import annotations

import time

import msgspec
from rich.console import Console
from rich.table import Table

from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.report import PassReport
from pipeline.runner import run_once
from pipeline.state.postgres import PostgresDatabase
from pipeline.state.store import StateStore
from pipeline.text import plain

__all__ = ["dlq_list", "dlq_replay", "status"]

_report = msgspec.json.Decoder(PassReport)


def _when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) if stamp else "-"


def dlq_list(settings: Settings, console: Console, target: str | None = None) -> int:
    """Print the dead letters (of one target, or all); return how many there are. Reads the
    state without writing, so it works while a pass runs.

    Raises:
        ConfigError: ``target`` is not configured.
    """
    _configured(settings, target)
    store = StateStore.open_settings(settings.state, read_only=True)
    store.open_sync()
    try:
        letters = store.dead_letters_sync(target)
    finally:
        store.close_sync()
    table = Table(title=f"{len(letters):,} dead letters", title_justify="left")
    for column in ("target", "customer", "reason", "attempts", "first seen", "last seen"):
        table.add_column(column)
    for letter in letters:
        table.add_row(
            plain(letter.target),
            plain(letter.customer_id),
            plain(letter.reason),
            str(letter.attempts),
            _when(letter.first_seen),
            _when(letter.last_seen),
        )
    console.print(table)
    return len(letters)


async def dlq_replay(
    settings: Settings, console: Console, target: str | None = None
) -> tuple[int, PassReport | None]:
    """Send the dead-lettered records again, read fresh from the source; the others are left
    alone. Returns the exit code and the report (None when there was nothing to replay).

    Raises:
        ConfigError: ``target`` is not configured.
        StateError: another pass holds the state.
    """
    _configured(settings, target)
    async with StateStore.open_settings(settings.state) as store:
        letters = await store.dead_letters(target)
    replay: dict[str, set[str]] = {}
    for letter in letters:
        replay.setdefault(letter.target, set()).add(letter.customer_id)
    configured = set(settings.targets.enabled())
    replay = {name: ids for name, ids in replay.items() if name in configured}
    if not replay:
        console.print("no dead letters to replay")
        return 0, None
    total = sum(len(ids) for ids in replay.values())
    console.print(f"replaying {total:,} dead letters of {', '.join(sorted(replay))}")
    code, report = await run_once(settings, targets=sorted(replay), replay=replay, console=console)
    refused = sum(t.dead_lettered for t in report.targets.values())
    if refused:
        console.print(
            f"{refused:,} still refused (invalid at the source, or refused by the target "
            "again): see pipeline dlq list",
            highlight=False,
        )
    return code, report


def status(settings: Settings, console: Console, limit: int = 10) -> None:
    """Print the last passes and, per target, what the state store holds. Reads the state
    without writing, so it works while a pass runs."""
    store = StateStore.open_settings(settings.state, read_only=True)
    store.open_sync()
    try:
        passes = store.passes_sync(limit)
        names = settings.targets.enabled()
        confirmed = {name: store.confirmed_count_sync(name) for name in names}
        dead = {name: len(store.dead_letters_sync(name)) for name in names}
        resume = store.resume_offset_sync(names)
        database = store.database
        holder = database.holder() if isinstance(database, PostgresDatabase) else None
    finally:
        store.close_sync()
    table = Table(title="last passes", title_justify="left")
    for column in ("pass", "started", "seconds", "status", "records", "read from", "checkpoint"):
        table.add_column(column, justify="left" if column in ("started", "status") else "right")
    for name in names:
        table.add_column(f"{name} c/u/=/dead", justify="right")
    for record in passes:
        report = _report.decode(record.report) if record.report else None
        cells = [
            str(record.id),
            _when(record.started_at),
            f"{report.seconds:.1f}" if report else "-",
            record.status,
            f"{report.source.records:,}" if report else "-",
            f"{record.start_offset:,}",
            f"{record.checkpoint:,}",
        ]
        for name in names:
            t = report.targets.get(name) if report else None
            cells.append(f"{t.created}/{t.updated}/{t.unchanged}/{t.dead_lettered}" if t else "-")
        table.add_row(*cells)
    console.print(table)
    for name in names:
        console.print(
            f"{name}: {confirmed[name]:,} customers confirmed, {dead[name]:,} dead letters"
        )
    if resume:
        console.print(
            f"the next pass resumes its read at offset {resume:,} (--restart to start over)"
        )
    if holder is not None:
        console.print(f"the state is held (active replica, or a pass) by {plain(holder)}")


def _configured(settings: Settings, target: str | None) -> None:
    if target is not None and target not in settings.targets.enabled():
        raise ConfigError(f"target {target!r} is not configured", path="targets")
