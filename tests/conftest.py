"""Shared fixtures: emulators on loopback and settings pointing at them."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import Settings
from pipeline.config_load import settings_from_mapping
from pipeline.emulators import (
    BUSINESS_UNITS,
    Dataset,
    EmporixEmulatorConfig,
    EmporixStore,
    ManEmulatorConfig,
    NorceEmulatorConfig,
    NorceStore,
    Principal,
    SyncBatchEmulatorConfig,
    SyncBatchStore,
    create_emporix_app,
    create_man_app,
    create_norce_app,
    create_syncbatch_app,
    serve_app,
)
from tests.kit.deadline import pytest_collection_modifyitems, pytest_configure
from tests.kit.feeds import SB_IDS
from tests.kit.postgres import (
    postgres_url,
    pytest_runtest_makereport,
    pytest_sessionfinish,
    pytest_terminal_summary,
)

__all__ = [
    "postgres_url",  # the session's PostgreSQL server (tests/kit/postgres.py)
    "pytest_collection_modifyitems",  # the deadline hooks
    "pytest_configure",
    "pytest_runtest_makereport",  # PIPELINE_REQUIRE_POSTGRES=1: a skipped postgres test fails
    "pytest_sessionfinish",
    "pytest_terminal_summary",
]

MAN_TOKEN = "test-man-token"
SB_TOKEN = "test-syncbatch-token"


@pytest.fixture(autouse=True)
def _tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAN_TOKEN", MAN_TOKEN)
    monkeypatch.setenv("SYNCBATCH_TOKEN", SB_TOKEN)
    monkeypatch.setenv("EMPORIX_CLIENT_ID", EmporixEmulatorConfig().client_id)
    monkeypatch.setenv("EMPORIX_CLIENT_SECRET", EmporixEmulatorConfig().client_secret)
    monkeypatch.setenv("NORCE_CLIENT_ID", NorceEmulatorConfig().client_id)
    monkeypatch.setenv("NORCE_CLIENT_SECRET", NorceEmulatorConfig().client_secret)
    for name in list(os.environ):
        if name.startswith("PIPELINE__"):
            monkeypatch.delenv(name)


def sb_config(**overrides: Any) -> SyncBatchEmulatorConfig:
    """A sync-batch emulator that accepts the test token as an admin with both permissions."""
    principals = {SB_TOKEN: Principal(("Admin",), ("CanAccess", "CanAdd"))}
    return SyncBatchEmulatorConfig(principals=principals, **overrides)


class Env:
    """The emulators of one test and a way to build settings for them."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.stack = AsyncExitStack()
        self.dataset: Dataset | None = None
        self.man_app: Any = None
        self.sb_app: Any = None
        self.man_url = ""
        self.sb_url = ""
        self.emx_url = ""
        self.store = SyncBatchStore()
        self.emx_store = EmporixStore()
        self.emx_app: Any = None
        self.nc_url = ""
        self.nc_store = NorceStore()
        self.nc_app: Any = None
        self.targets: tuple[str, ...] = ("syncbatch",)

    async def start(
        self,
        dataset: Dataset,
        *,
        man: ManEmulatorConfig | None = None,
        sb: SyncBatchEmulatorConfig | None = None,
        emporix: EmporixEmulatorConfig | None = None,
        norce: NorceEmulatorConfig | None = None,
        targets: tuple[str, ...] = ("syncbatch",),
    ) -> Env:
        self.dataset = dataset
        self.targets = targets
        self.man_app = create_man_app(dataset, man or ManEmulatorConfig(token=MAN_TOKEN))
        config = sb or sb_config()
        self.sb_app = create_syncbatch_app(config, self.store)
        self.man_url = await self.stack.enter_async_context(serve_app(self.man_app))
        self.sb_url = await self.stack.enter_async_context(serve_app(self.sb_app))
        if "emporix" in targets:
            self.emx_app = create_emporix_app(emporix or EmporixEmulatorConfig(), self.emx_store)
            self.emx_url = await self.stack.enter_async_context(serve_app(self.emx_app))
        if "norce" in targets:
            nc_config = norce or NorceEmulatorConfig(companies=BUSINESS_UNITS)
            self.nc_app = create_norce_app(nc_config, self.nc_store)
            self.nc_url = await self.stack.enter_async_context(serve_app(self.nc_app))
        return self

    def config(self, **overrides: Any) -> dict[str, Any]:
        fast = {"initial_seconds": 0.001, "max_seconds": 0.05, "max_attempts": 10}
        targets: dict[str, Any] = {
            "syncbatch": {
                "url": self.sb_url,
                "token_env": "SYNCBATCH_TOKEN",
                "profile_url": "https://shop.example.com/users/{customer_id}",
                **SB_IDS,
                "batch_size": 50,
                "max_in_flight": 4,
                "retry": fast,
            },
            "emporix": {
                "url": self.emx_url,
                "tenant": "demo",
                "client_id_env": "EMPORIX_CLIENT_ID",
                "client_secret_env": "EMPORIX_CLIENT_SECRET",
                "batch_size": 50,
                "max_in_flight": 8,
                "retry": fast,
            },
            "norce": {
                "url": self.nc_url,
                "application_id": 1234,
                "account_id": 42,
                "scope": "stage",
                "client_id_env": "NORCE_CLIENT_ID",
                "client_secret_env": "NORCE_CLIENT_SECRET",
                "batch_size": 100,
                "max_in_flight": 2,
                "poll_initial_seconds": 0.01,
                "poll_max_seconds": 0.05,
                "retry": fast,
            },
        }
        data: dict[str, Any] = {
            "source": {
                "url": f"{self.man_url}/customer-users",
                "page_size": 100,
                "max_in_flight": 4,
                "token_env": "MAN_TOKEN",
                "retry": {"initial_seconds": 0.001, "max_seconds": 0.05, "max_attempts": 10},
            },
            "flow": {"queue_size": 4},
            "state": {"path": str(self.tmp_path / "state.sqlite3")},
            "targets": {name: targets[name] for name in self.targets},
        }
        for path, value in overrides.items():
            node = data
            *parents, last = path.split("__")
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = value
        return data

    def settings(self, **overrides: Any) -> Settings:
        return settings_from_mapping(self.config(**overrides), environ={})


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    e = Env(tmp_path)
    async with e.stack:
        yield e


@pytest.fixture
def make_dataset() -> Callable[..., Dataset]:
    return Dataset
