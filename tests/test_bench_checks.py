"""The benchmark's CI checks (pure): a scenario of the pipeline that errors fails the run; the
configuration each scenario writes loads."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from benchmarks.checks import ci_checks
from benchmarks.child import PAGE_SIZE
from benchmarks.harness import Emulators
from benchmarks.pipeline_runs import TARGET_SETTINGS, config_toml
from pipeline.config_load import settings_from_mapping
from pipeline.stack import describe


def ran(results: dict[str, dict[str, Any]]) -> bool | None:
    return next(v.ok for v in ci_checks(results) if v.name == "every scenario ran")


def test_an_errored_pipeline_scenario_fails_the_run() -> None:
    assert ran({"core": {"error": "TypeError"}, "e2e-syncbatch": {"records": 1}}) is False


def test_a_peer_that_could_not_run_does_not() -> None:
    assert ran({"dlt": {"error": "not installed"}, "core": {"records": 1}}) is True


@pytest.mark.parametrize("target", sorted(TARGET_SETTINGS))
def test_the_benchmark_configuration_of_each_target_loads(target: str, tmp_path: Path) -> None:
    stack = describe(
        {
            "source": "http://127.0.0.1:1",
            "syncbatch": "http://127.0.0.1:2",
            "emporix": "http://127.0.0.1:3",
            "norce": "http://127.0.0.1:4",
        }
    )
    # What emulate --json prints, read back.
    printed = json.loads(json.dumps(stack.description()))
    urls = Emulators(systems=printed["systems"], pid=0)
    text = config_toml(urls, target, tmp_path / "state.sqlite3", {"rate_per_second": 5})
    settings = settings_from_mapping(tomllib.loads(text), environ={})
    assert settings.targets.enabled() == [target]
    assert settings.targets.sections[target].rate_per_second == 5
    assert settings.source.page_size == PAGE_SIZE
    assert str(settings.source.url).startswith("http://127.0.0.1:1/")
