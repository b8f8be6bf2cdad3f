"""The pipeline as the measured child: its real CLI, a fresh state file, its JSON report.

Each run is ``python -m pipeline run --config CFG --report REPORT.json`` with the emulators'
credentials in the environment. Its numbers come from the report the pipeline writes: the
source's ``records``, the pass's ``seconds`` and ``records_per_second`` (the pass's own
clock, interpreter start and imports excluded), and per target what it created and
dead-lettered. Exit code 3 is a normal end: the emulated data holds ~1% invalid records.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from benchmarks.child import PAGE_SIZE
from benchmarks.harness import PYTHON, BenchError, ChildRun, Emulators, child_env, run_child
from pipeline.stack import SOURCE
from pipeline.stack import config_toml as toml_text

__all__ = ["TARGET_SETTINGS", "config_toml", "pipeline_config", "pipeline_result", "run_pipeline"]

EXIT_OK, EXIT_DEAD_LETTERS = 0, 3

TARGET_SETTINGS: dict[str, dict[str, Any]] = {
    "syncbatch": {"organisation_id_range": [1, 1000], "batch_size": 1000, "max_in_flight": 4},
    "emporix": {"max_in_flight": 64},
    "norce": {"batch_size": 500, "max_in_flight": 4},
}
"""The benchmark's own keys of each target, over the section ``pipeline emulate --json``
gives (url, credentials, ids), whose ``rate_per_second`` is dropped: no rate limit."""


def pipeline_config(
    emulators: Emulators,
    target: str,
    state: Path,
    overrides: Mapping[str, Any] | None = None,
    state_keys: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The configuration of a pass from the source emulator to one target, state store on
    (``state_keys``: more ``[state]`` keys, a PostgreSQL ``url`` say)."""
    section = emulators.section(target)
    section.pop("rate_per_second", None)
    return {
        "source": {**emulators.section(SOURCE), "page_size": PAGE_SIZE, "max_in_flight": 4},
        "flow": {"queue_size": 8},
        "state": {"path": str(state), **(state_keys or {})},
        "targets": {target: {**section, **TARGET_SETTINGS[target], **(overrides or {})}},
    }


def config_toml(
    emulators: Emulators,
    target: str,
    state: Path,
    overrides: Mapping[str, Any] | None = None,
    state_keys: Mapping[str, Any] | None = None,
) -> str:
    """:func:`pipeline_config` as a TOML file."""
    return toml_text(pipeline_config(emulators, target, state, overrides, state_keys))


def run_pipeline(
    emulators: Emulators,
    target: str,
    workdir: Path,
    *,
    timeout: float,
    overrides: Mapping[str, Any] | None = None,
    on_tick: Callable[[], None] | None = None,
    tick_seconds: float = 0.25,
    state_keys: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[ChildRun, dict[str, Any]]:
    """One pass with a fresh state file; returns the measured child and its report.

    Raises:
        BenchError: the pass did not end normally or wrote no report.
    """
    config, report_path = workdir / "pipeline.toml", workdir / "report.json"
    state = workdir / "state.sqlite3"
    for stale in (report_path, state):
        stale.unlink(missing_ok=True)
    config.write_text(config_toml(emulators, target, state, overrides, state_keys))
    argv = [PYTHON, "-m", "pipeline", "run", "--config", str(config)]
    argv += ["--report", str(report_path)]
    child = run_child(
        argv,
        env=child_env({**emulators.credentials, **(env or {})}),
        workdir=workdir,
        timeout=timeout,
        on_tick=on_tick,
        tick_seconds=tick_seconds,
    )
    if child.returncode not in (EXIT_OK, EXIT_DEAD_LETTERS) or not report_path.exists():
        raise BenchError.from_child("pipeline run failed", child.returncode, child.stderr)
    report: dict[str, Any] = json.loads(report_path.read_text())
    problem = report.get("error") or report["targets"].get(target, {}).get("error")
    if report.get("status") == "aborted" or problem:
        raise BenchError(f"pipeline pass {report.get('status')}: {problem}")
    return child, report


def pipeline_result(child: ChildRun, report: Mapping[str, Any], target: str) -> dict[str, Any]:
    """The scenario fields of one pass: records and rate from its report, resources from
    ``wait4``."""
    counts = report["targets"][target]
    return {
        "records": report["source"]["records"],
        "seconds": report["seconds"],
        "records_per_second": report["records_per_second"],
        "peak_rss_mb": round(child.peak_rss_mb, 1),
        "cpu_seconds": round(child.cpu_seconds, 2),
        "wall_seconds": round(child.wall_seconds, 2),
        "target": target,
        "created": counts["created"],
        "dead_lettered": counts["dead_lettered"],
        "requests": counts["requests"],
        "exit_code": child.returncode,
    }
