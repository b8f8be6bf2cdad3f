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

__all__ = ["TARGET_SETTINGS", "config_toml", "pipeline_result", "run_pipeline"]

EXIT_OK, EXIT_DEAD_LETTERS = 0, 3

TARGET_SETTINGS: dict[str, dict[str, Any]] = {
    "syncbatch": {
        "token_env": "SYNCBATCH_TOKEN",
        "profile_url": "https://shop.example.com/users/{customer_id}",
        "account_ids": "customer_id",
        "customer_id_prefix": "C",
        "account_id_offset": 1_000_000,
        "organisation_id_range": [1, 1000],
        "batch_size": 1000,
        "max_in_flight": 4,
    },
    "emporix": {
        "tenant": "demo",
        "client_id_env": "EMPORIX_CLIENT_ID",
        "client_secret_env": "EMPORIX_CLIENT_SECRET",
        "max_in_flight": 64,
    },
    "norce": {
        "application_id": 1234,
        "account_id": 42,
        "scope": "stage",
        "client_id_env": "NORCE_CLIENT_ID",
        "client_secret_env": "NORCE_CLIENT_SECRET",
        "batch_size": 500,
    },
}
"""Each target's section, less its ``url``: no ``rate_per_second``, so no rate limit."""


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def config_toml(
    emulators: Emulators, target: str, state: Path, overrides: Mapping[str, Any] | None = None
) -> str:
    """The configuration of a pass from the MAN emulator to one target, state store on."""
    sections: dict[str, dict[str, Any]] = {
        "source": {
            "url": emulators.source,
            "page_size": PAGE_SIZE,
            "max_in_flight": 4,
            "token_env": "MAN_TOKEN",
        },
        "flow": {"queue_size": 8},
        "state": {"path": str(state)},
        f"targets.{target}": {
            "url": getattr(emulators, target),
            **TARGET_SETTINGS[target],
            **(overrides or {}),
        },
    }
    lines: list[str] = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
        lines.append("")
    return "\n".join(lines)


def run_pipeline(
    emulators: Emulators,
    target: str,
    workdir: Path,
    *,
    timeout: float,
    overrides: Mapping[str, Any] | None = None,
    on_tick: Callable[[], None] | None = None,
    tick_seconds: float = 0.25,
) -> tuple[ChildRun, dict[str, Any]]:
    """One pass with a fresh state file; returns the measured child and its report.

    Raises:
        BenchError: the pass did not end normally or wrote no report.
    """
    config, report_path = workdir / "pipeline.toml", workdir / "report.json"
    state = workdir / "state.sqlite3"
    for stale in (report_path, state):
        stale.unlink(missing_ok=True)
    config.write_text(config_toml(emulators, target, state, overrides))
    argv = [PYTHON, "-m", "pipeline", "run", "--config", str(config)]
    argv += ["--report", str(report_path)]
    child = run_child(
        argv,
        env=child_env(),
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
