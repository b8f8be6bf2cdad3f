"""The benchmark's CI checks (pure): a scenario of the pipeline that errors fails the run."""

from __future__ import annotations

from typing import Any

from benchmarks.checks import ci_checks


def ran(results: dict[str, dict[str, Any]]) -> bool | None:
    return next(v.ok for v in ci_checks(results) if v.name == "every scenario ran")


def test_an_errored_pipeline_scenario_fails_the_run() -> None:
    assert ran({"core": {"error": "TypeError"}, "e2e-syncbatch": {"records": 1}}) is False


def test_a_peer_that_could_not_run_does_not() -> None:
    assert ran({"dlt": {"error": "not installed"}, "core": {"records": 1}}) is True
