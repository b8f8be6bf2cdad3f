"""The embedded default: emulators of the source and every target on loopback, and the
configuration that points the pipeline at them (``pipeline demo`` and ``pipeline emulate``)."""

from __future__ import annotations

import os
import tomllib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import msgspec

from pipeline.emulators import (
    Dataset,
    ManEmulatorConfig,
    SyncBatchEmulatorConfig,
    create_man_app,
    create_syncbatch_app,
    serve_app,
)
from pipeline.errors import ConfigError

__all__ = [
    "DEMO_STATE",
    "DEMO_TOKENS",
    "EmulatorPlan",
    "EmulatorUrls",
    "config_toml",
    "demo_config",
    "load_plan",
    "running_emulators",
    "use_demo_tokens",
]

DEMO_STATE = ".pipeline-demo/state.sqlite3"
DEMO_PAGE_SIZE = 500
# Tokens the emulators accept, under the variable names a user's configuration would use.
DEMO_TOKENS = {"MAN_TOKEN": "demo-man-token", "SYNCBATCH_TOKEN": "demo-syncbatch-token"}
# The demo's own variables, so that a user's real MAN_TOKEN never meets the emulators.
_DEMO_ENV = {
    "PIPELINE_DEMO_MAN_TOKEN": "MAN_TOKEN",
    "PIPELINE_DEMO_SYNCBATCH_TOKEN": "SYNCBATCH_TOKEN",
}


class EmulatorUrls(msgspec.Struct, frozen=True):
    source: str
    syncbatch: str


class EmulatorPlan(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How the emulators behave, faults included: ``pipeline emulate --plan FILE`` reads it
    from TOML (``[man]``, ``[man.faults]``, ``[syncbatch]``, ``[syncbatch.faults]``)."""

    man: ManEmulatorConfig = ManEmulatorConfig(max_limit=1000)
    syncbatch: SyncBatchEmulatorConfig = SyncBatchEmulatorConfig(max_batch=1000)


def load_plan(path: str | None) -> EmulatorPlan:
    """The plan in ``path``, or the default plan.

    Raises:
        ConfigError: the file cannot be read or does not decode, with the path of the bad key.
    """
    if path is None:
        return EmulatorPlan()
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
        return msgspec.convert(data, EmulatorPlan)
    except (OSError, tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
        raise ConfigError(f"emulator plan: {exc}", path=path) from exc


@asynccontextmanager
async def running_emulators(
    customers: int,
    *,
    host: str = "127.0.0.1",
    base_port: int = 0,
    seed: int = 7,
    plan: EmulatorPlan | None = None,
) -> AsyncIterator[EmulatorUrls]:
    """Serve every emulator while the block runs; ``base_port`` 0 picks free ports."""
    plan = plan or EmulatorPlan()
    dataset = Dataset(customers, seed=seed)
    man = create_man_app(dataset, plan.man)
    syncbatch = create_syncbatch_app(plan.syncbatch)

    def port(offset: int) -> int:
        return base_port + offset if base_port else 0

    async with AsyncExitStack() as stack:
        man_url = await stack.enter_async_context(serve_app(man, host, port(0)))
        sb_url = await stack.enter_async_context(serve_app(syncbatch, host, port(1)))
        yield EmulatorUrls(source=f"{man_url}/customer-users", syncbatch=sb_url)


def use_demo_tokens() -> None:
    """Put the emulators' tokens in the environment variables the demo configuration names."""
    for name, token in _DEMO_ENV.items():
        os.environ[name] = DEMO_TOKENS[token]


def demo_config(
    urls: EmulatorUrls,
    *,
    state_path: str = DEMO_STATE,
    rate_per_second: float | None = 50.0,
    plan: EmulatorPlan | None = None,
) -> dict[str, Any]:
    """The configuration (as parsed TOML) of a pass against the emulators."""
    plan = plan or EmulatorPlan()
    syncbatch: dict[str, Any] = {
        "url": urls.syncbatch,
        "token_env": "PIPELINE_DEMO_SYNCBATCH_TOKEN",
        "batch_size": min(100, plan.syncbatch.max_batch),
        "max_in_flight": 4,
    }
    if rate_per_second is not None:
        syncbatch["rate_per_second"] = rate_per_second
    return {
        "source": {
            "url": urls.source,
            "page_size": min(DEMO_PAGE_SIZE, plan.man.max_limit),
            "max_in_flight": 4,
            "token_env": "PIPELINE_DEMO_MAN_TOKEN",
        },
        "flow": {"queue_size": 8},
        "state": {"path": state_path},
        "targets": {"syncbatch": syncbatch},
    }


def config_toml(urls: EmulatorUrls) -> str:
    """A configuration file for the running emulators, for ``pipeline emulate`` to print."""
    return f"""[source]
url = "{urls.source}"
page_size = {DEMO_PAGE_SIZE}
max_in_flight = 4
token_env = "MAN_TOKEN"

[state]
path = "pipeline-state.sqlite3"

[targets.syncbatch]
url = "{urls.syncbatch}"
token_env = "SYNCBATCH_TOKEN"
batch_size = 100
rate_per_second = 50
max_in_flight = 4
"""
