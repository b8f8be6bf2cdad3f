"""``python -m benchmarks``: run the scenarios, print their JSON lines, a table and the checks.

stdout holds only the JSON lines (one per scenario, as each ends), so it can be redirected
and parsed; the progress, the table and the checks go to stderr. The exit code is 1 when a
CI check fails, else 0 (the issue's targets are reported, never failing the run).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from benchmarks.checks import FLOOR, Verdict, ci_checks, issue_targets
from benchmarks.harness import BenchError
from benchmarks.scenarios import SCENARIOS, Context, Scenario

__all__ = ["main"]

_NAMES = [scenario.name for scenario in SCENARIOS]
_NOTES = {  # extra fields shown in the table's notes: a label and a format
    "target": "target {}",
    "share": "share {:.0%}",
    "steady_share": "steady {:.0%}",
    "small_records": "small pass {:,} records",
    "small_peak_rss_mb": "{:.1f} MB",
    "ratio": "RSS ratio {:.2f}",
    "emulator_cpu_seconds": "emulator CPU {:.2f} s",
}
_HEADERS = (
    "scenario",
    "records",
    "seconds",
    "records/s",
    "x plain",
    "peak RSS MB",
    "CPU s",
    "notes",
)
_VS_PLAIN = {"e2e-syncbatch", "memory", "plain", "dlt"}
"""Rows comparable with the plain client: same emulator, same target, no rate limit."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark the pipeline side by side with a plain client and dlt.",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI")
    parser.add_argument(
        "--only", action="append", choices=_NAMES, metavar="NAME",
        help=f"run only this scenario (repeatable): {', '.join(_NAMES)}",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, metavar="FILE", help="write all results here")
    return parser


def _run_one(scenario: Scenario, ctx: Context, console: Console) -> dict[str, Any]:
    sizes = scenario.quick if ctx.quick else scenario.full
    counts = " / ".join(f"{n:,}" for n in sizes)
    console.print(f"[bold]{scenario.name}[/]: {scenario.title} ({counts} customers)")
    started = time.perf_counter()
    try:
        result = {"scenario": scenario.name, **scenario.run(ctx, sizes)}
    except BenchError as exc:
        result = {"scenario": scenario.name, "error": str(exc)}
        if exc.detail:
            console.print(exc.detail, markup=False, highlight=False, style="dim")
    except Exception as exc:  # one broken scenario must not hide the others' numbers
        result = {"scenario": scenario.name, "error": f"{type(exc).__name__}: {exc}"}
    result["scenario_seconds"] = round(time.perf_counter() - started, 1)
    return result


def _number(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _table(results: list[dict[str, Any]]) -> Table:
    table = Table(title="benchmarks (ratios within one run hold; absolute times are indicative)")
    for header in _HEADERS:
        table.add_column(header, justify="left" if header in ("scenario", "notes") else "right")
    plain = next((r.get("records_per_second") for r in results if r["scenario"] == "plain"), None)
    for result in results:
        if "error" in result:
            error = Text(f"error: {result['error']}", style="red")
            table.add_row(result["scenario"], *["-"] * 6, error)
            continue
        rate = result.get("records_per_second")
        factor = ""
        if rate and plain and result["scenario"] in _VS_PLAIN:
            factor = f"{rate / plain:.1f}x"
        notes = ", ".join(
            form.format(result[key]) for key, form in _NOTES.items() if result.get(key) is not None
        )
        table.add_row(
            result["scenario"], _number(result["records"]), _number(result["seconds"], 2),
            _number(rate), factor, _number(result["peak_rss_mb"], 1),
            _number(result["cpu_seconds"], 2), notes,
        )  # fmt: skip
    return table


def _verdicts(console: Console, title: str, verdicts: list[Verdict]) -> None:
    console.print(f"[bold]{title}[/]")
    for verdict in verdicts:
        mark = {True: "[green]PASS[/]", False: "[red]FAIL[/]", None: "[yellow]SKIP[/]"}[verdict.ok]
        console.print(f"  {mark} {verdict.name}: {escape(verdict.message)}", highlight=False)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected scenarios; 1 when a CI check fails, else 0."""
    args = _parser().parse_args(argv)
    console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
    selected = [s for s in SCENARIOS if not args.only or s.name in args.only]
    mode = "quick" if args.quick else "full"
    console.print(f"benchmarks ({mode}): {', '.join(s.name for s in selected)}")
    results = []
    with tempfile.TemporaryDirectory(prefix="pipeline-bench-") as root:
        ctx = Context(quick=args.quick, root=Path(root), timeout=300.0 if args.quick else 1800.0)
        for scenario in selected:
            result = _run_one(scenario, ctx, console)
            results.append(result)
            sys.stdout.write(json.dumps(result) + "\n")
            sys.stdout.flush()
    by_name = {result["scenario"]: result for result in results}
    checks = ci_checks(by_name)
    targets = [] if args.quick else issue_targets(by_name)
    console.print(_table(results))
    _verdicts(console, f"CI checks (FLOOR = {FLOOR:g})", checks)
    if targets:
        _verdicts(console, "issue targets (reported, not failing)", targets)
    if args.json:
        document = {
            "mode": mode,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "results": results,
            "checks": [v._asdict() for v in checks],
            "targets": [v._asdict() for v in targets],
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    failed = [v for v in checks if v.ok is False]
    for verdict in failed:
        message = escape(verdict.message)
        console.print(f"[red]benchmark check failed[/]: {verdict.name}: {message}", highlight=False)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
