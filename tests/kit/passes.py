"""A whole pass against the emulators of a test (the ``env`` fixture)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from pipeline.flow import Pass
from pipeline.registry import build_targets
from pipeline.report import PassReport
from pipeline.state.store import StateStore

if TYPE_CHECKING:
    from tests.conftest import Env

DEADLINE = 60
"""Seconds a pass of a test may take."""


async def run_pass(env: Env, **overrides: Any) -> tuple[PassReport, Pass]:
    """One pass with the test's settings, ``overrides`` (``section__key=value``) applied."""
    settings = env.settings(**overrides)
    async with StateStore(settings.state.path) as store:
        run = Pass(settings, store, build_targets(settings, store))
        with anyio.fail_after(DEADLINE):
            report = await run.run()
    return report, run
