"""The embedded default: ``pipeline demo`` runs a pass against the emulator stack
(:mod:`pipeline.stack`) with credentials of its own."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pipeline.stack import EmulatorPlan, Stack, running_stack

__all__ = ["DEMO_PREFIX", "DEMO_STATE", "running_demo"]

DEMO_STATE = ".pipeline-demo/state.sqlite3"
DEMO_PREFIX = "PIPELINE_DEMO_"
"""The demo reads the emulators' secrets from variables of its own (``PIPELINE_DEMO_MAN_TOKEN``),
so a user's real secrets never meet it."""


@asynccontextmanager
async def running_demo(
    customers: int, *, plan: EmulatorPlan | None = None, rate_per_second: float | None = 50.0
) -> AsyncIterator[Stack]:
    """Every emulator of the stack while the block runs, its secrets in the environment
    variables the demo configuration (:meth:`Stack.config`) names."""
    async with running_stack(
        customers, plan=plan, env_prefix=DEMO_PREFIX, rate_per_second=rate_per_second
    ) as stack:
        os.environ.update(stack.credentials())
        yield stack
