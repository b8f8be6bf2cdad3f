"""The scenarios: what each one runs, at which sizes, and the JSON fields it reports.

Every scenario starts its own emulators (``pipeline emulate``, one process) when it needs
them, runs each measured program as its own child, and returns one flat dict: ``records``,
``seconds`` (the measured program's own timer), ``records_per_second``, ``peak_rss_mb``,
``cpu_seconds`` of the measured child, then extras. ``emulator_cpu_seconds`` is what the
emulators' process spent meanwhile: close to ``seconds`` means the emulators were the limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from benchmarks.harness import (
    PYTHON,
    BenchError,
    ChildRun,
    Emulators,
    child_env,
    emulators,
    get_json,
    process_cpu_seconds,
    run_child,
)
from benchmarks.pipeline_runs import pipeline_result, run_pipeline
from pipeline.emulators import BUSINESS_UNITS

__all__ = ["RATE_LIMIT", "SCENARIOS", "Context", "Scenario", "ScenarioRun"]

_BASE_PLAN = "[man]\nmax_limit = 1000\n\n[syncbatch]\nmax_batch = 1000\n"
_EMPORIX_PLAN = _BASE_PLAN + "\n[emporix.faults]\nlatency = 0.005\n"
_COMPANIES = ", ".join(f'"{unit}"' for unit in BUSINESS_UNITS)
# A [norce] section is read over the default one; the companies of MAN's feed said again.
_NORCE_PLAN = _BASE_PLAN + f"\n[norce]\njob_delay = 0\ncompanies = [{_COMPANIES}]\n"
_RATE_PLAN = _BASE_PLAN + "\n[syncbatch.faults]\nlatency = 0.05\n"

RATE_LIMIT = 200.0
"""Requests per second the rate scenario allows the sync-batch target."""
_RATE_SETTINGS = {"rate_per_second": RATE_LIMIT, "max_in_flight": 32, "batch_size": 10}
_BURST_SECONDS = 1.0
"""The steady rate starts this long after the first request. The client's bucket holds only a
tenth of a second's requests (``pipeline.http.BURST_SECONDS``: 20 at 200/s, sent at once); a
whole second also leaves out the workers' start."""


class Context(NamedTuple):
    """How this run goes: quick or full, where children work, how long one may take."""

    quick: bool
    root: Path
    timeout: float

    def workdir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path


ScenarioRun = Callable[[Context, tuple[int, ...]], dict[str, Any]]
"""``run(ctx, sizes)``: measure one scenario and return its JSON fields."""


class Scenario(NamedTuple):
    """A named scenario and its sizes (customers) in a full and in a quick run."""

    name: str
    title: str
    full: tuple[int, ...]
    quick: tuple[int, ...]
    run: ScenarioRun


def _measured(module: str, child: ChildRun) -> dict[str, Any]:
    """The fields of a ``bench_*.py`` child: its JSON line plus what ``wait4`` saw."""
    if child.returncode != 0:
        raise BenchError.from_child(f"{module} failed", child.returncode, child.stderr)
    line = child.json_line()
    records, seconds = int(line.pop("records")), float(line.pop("seconds"))
    return {
        "records": records,
        "seconds": round(seconds, 3),
        "records_per_second": round(records / seconds, 1) if seconds > 0 else None,
        "peak_rss_mb": round(child.peak_rss_mb, 1),
        "cpu_seconds": round(child.cpu_seconds, 2),
        "wall_seconds": round(child.wall_seconds, 2),
        **line,
    }


def _emulator_cpu(emu: Emulators, before: float | None) -> dict[str, Any]:
    after = process_cpu_seconds(emu.pid)
    if before is None or after is None:
        return {}
    return {"emulator_cpu_seconds": round(after - before, 2)}


def _core(ctx: Context, sizes: tuple[int, ...]) -> dict[str, Any]:
    argv = [PYTHON, "-m", "benchmarks.bench_core", str(sizes[0])]
    work = ctx.workdir("core")
    child = run_child(argv, env=child_env(), workdir=work, timeout=ctx.timeout)
    return _measured("bench_core", child)


def _pass(ctx: Context, name: str, target: str, customers: int, plan: str) -> dict[str, Any]:
    work = ctx.workdir(name)
    with emulators(customers, work, plan) as emu:
        before = process_cpu_seconds(emu.pid)
        child, report = run_pipeline(emu, target, work, timeout=ctx.timeout)
        return {**pipeline_result(child, report, target), **_emulator_cpu(emu, before)}


def _e2e(target: str, plan: str) -> ScenarioRun:
    def run(ctx: Context, sizes: tuple[int, ...]) -> dict[str, Any]:
        return _pass(ctx, f"e2e-{target}", target, sizes[0], plan)

    return run


_DB_PASSWORD_ENV = "PIPELINE_BENCH_DB_PASSWORD"


def _postgres(ctx: Context, sizes: tuple[int, ...]) -> dict[str, Any]:
    """The sync-batch pass of ``e2e-syncbatch`` with its state on PostgreSQL (a server of its
    own, started from the installed binaries as the tests start theirs)."""
    from tests.kit.postgres import find_bindir, start_server  # noqa: PLC0415

    bindir = find_bindir()
    if bindir is None:
        raise BenchError("PostgreSQL server binaries not found: apt-get install postgresql")
    work = ctx.workdir("e2e-syncbatch-pg")
    with contextmanager(start_server)(bindir) as server:
        url = server.new_database()
        with emulators(sizes[0], work, _BASE_PLAN) as emu:
            before = process_cpu_seconds(emu.pid)
            child, report = run_pipeline(
                emu,
                "syncbatch",
                work,
                timeout=ctx.timeout,
                state_keys={"url": url, "password_env": _DB_PASSWORD_ENV},
                env={_DB_PASSWORD_ENV: server.password},
            )
            result = {**pipeline_result(child, report, "syncbatch"), **_emulator_cpu(emu, before)}
            return {**result, "state": "postgresql"}


def _steady_rate(samples: list[tuple[float, int]]) -> float | None:
    """Requests per second between two samples taken while requests flowed steadily: the
    first one a second after requests began (past the limiter's burst), the last one before
    the count reached its final value. Both ends are counts read at known instants."""
    first, final = samples[0][1], samples[-1][1]
    began = next((t for t, n in samples if n > first), None)
    if began is None:
        return None
    inside = [(t, n) for t, n in samples if t >= began + _BURST_SECONDS and n < final]
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        return None
    (t0, n0), (t1, n1) = inside[0], inside[-1]
    return (n1 - n0) / (t1 - t0)


def _rate(ctx: Context, sizes: tuple[int, ...]) -> dict[str, Any]:
    work = ctx.workdir("rate-limit")
    with emulators(sizes[0], work, _RATE_PLAN) as emu:
        stats = f"{emu.url('syncbatch')}/_admin/stats"
        samples: list[tuple[float, int]] = [(time.perf_counter(), get_json(stats)["requests"])]

        def sample() -> None:
            samples.append((time.perf_counter(), get_json(stats)["requests"]))

        child, report = run_pipeline(
            emu,
            "syncbatch",
            work,
            timeout=ctx.timeout,
            overrides=_RATE_SETTINGS,
            on_tick=sample,
            tick_seconds=0.1,
        )
        sample()
    requests = samples[-1][1] - samples[0][1]
    achieved = requests / report["seconds"]
    steady = _steady_rate(samples)
    return {
        **pipeline_result(child, report, "syncbatch"),
        "requests": requests,
        "limit": RATE_LIMIT,
        "achieved_per_second": round(achieved, 1),
        "share": round(achieved / RATE_LIMIT, 3),
        "steady_per_second": None if steady is None else round(steady, 1),
        "steady_share": None if steady is None else round(steady / RATE_LIMIT, 3),
    }


def _memory(ctx: Context, sizes: tuple[int, ...]) -> dict[str, Any]:
    # The pipeline's RSS climbs while its bounded buffers first fill (measured: 66 MB at 5,000
    # records, 97 MB at 30,000, then 109 MB at 100,000 and 113 MB at 200,000), so the small
    # pass must be past that warm-up: quick mode compares 50,000 with 500,000, not 10,000
    # with 100,000 (1.4x there on a pipeline whose 100,000 -> 1,000,000 ratio is 1.1).
    small, large = sizes
    first = _pass(ctx, "memory-small", "syncbatch", small, _BASE_PLAN)
    second = _pass(ctx, "memory-large", "syncbatch", large, _BASE_PLAN)
    return {
        **second,
        "small_records": first["records"],
        "small_peak_rss_mb": first["peak_rss_mb"],
        "small_records_per_second": first["records_per_second"],
        "ratio": round(second["peak_rss_mb"] / first["peak_rss_mb"], 3),
    }


def _endpoints(emu: Emulators) -> list[str]:
    """A peer's arguments: where it reads and writes, and the variables of the tokens."""
    source, syncbatch = emu.section("source"), emu.section("syncbatch")
    return [
        "--source", source["url"], "--source-token-env", source["token_env"],
        "--syncbatch", syncbatch["url"], "--syncbatch-token-env", syncbatch["token_env"],
    ]  # fmt: skip


def _peer(module: str, extra_env: dict[str, str] | None = None) -> ScenarioRun:
    def run(ctx: Context, sizes: tuple[int, ...]) -> dict[str, Any]:
        name = module.removeprefix("bench_")
        work = ctx.workdir(name)
        with emulators(sizes[0], work, _BASE_PLAN) as emu:
            argv = [PYTHON, "-m", f"benchmarks.{module}", str(sizes[0])]
            argv += _endpoints(emu)
            before = process_cpu_seconds(emu.pid)
            extra = {k: v.format(workdir=work) for k, v in (extra_env or {}).items()}
            env = child_env({**emu.credentials, **extra})
            child = run_child(argv, env=env, workdir=work, timeout=ctx.timeout)
            return {**_measured(module, child), "target": "syncbatch", **_emulator_cpu(emu, before)}

    return run


_DLT_ENV = {"RUNTIME__DLTHUB_TELEMETRY": "false", "DLT_DATA_DIR": "{workdir}/dlt"}

SCENARIOS: tuple[Scenario, ...] = (
    Scenario("core", "decode+validate+map+hash, in memory", (200_000,), (20_000,), _core),
    Scenario("e2e-syncbatch", "MAN -> sync-batch, no rate limit", (200_000,), (20_000,),
             _e2e("syncbatch", _BASE_PLAN)),
    Scenario("e2e-syncbatch-pg", "MAN -> sync-batch, state on PostgreSQL", (200_000,),
             (20_000,), _postgres),
    Scenario("plain", "sequential urllib client", (20_000,), (2_000,), _peer("bench_plain")),
    Scenario("dlt", "dlt RESTClient + @dlt.destination", (50_000,), (5_000,),
             _peer("bench_dlt", _DLT_ENV)),
    Scenario("e2e-emporix", "MAN -> Emporix, 5 ms latency", (200_000,), (5_000,),
             _e2e("emporix", _EMPORIX_PLAN)),
    Scenario("e2e-norce", "MAN -> Norce, job delay 0", (200_000,), (20_000,),
             _e2e("norce", _NORCE_PLAN)),
    Scenario("rate-limit", "sync-batch 50 ms, limit 200/s", (40_000,), (6_000,), _rate),
    Scenario("memory", "peak RSS, small vs large pass", (100_000, 1_000_000),
             (50_000, 500_000), _memory),
)  # fmt: skip
"""Every scenario, in the order a run goes through them: the three that are compared
(pipeline, plain client, dlt on the same target) run back to back, so they share the
machine's conditions as far as possible."""
