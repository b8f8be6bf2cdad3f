"""Benchmarks of the pipeline, side by side with the alternatives, in one run.

``python -m benchmarks [--quick] [--only NAME] [--json FILE]`` runs every scenario in its own
subprocess against emulators served by another process, prints one JSON line per scenario on
stdout, then a table and the CI checks on stderr. Modules:

* ``__main__``: the command line, the table and the exit code;
* ``scenarios``: what each scenario runs and the sizes of the full and quick runs;
* ``pipeline_runs``: the real ``pipeline run`` CLI as the measured child;
* ``checks``: the CI checks (which fail a run) and the issue's targets (which are reported);
* ``harness``: emulators in a subprocess, a measured child with its peak RSS and CPU time;
* ``child``: the tiny interface every ``bench_*.py`` child exposes;
* ``bench_core``, ``bench_plain``, ``bench_dlt``: the children that are not the pipeline CLI.
"""

from __future__ import annotations

__all__: list[str] = []
