"""How the emulator stack plays sync-batch: the emulator's plan, its token, and the
``[targets.syncbatch]`` section that points a pass at it."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pipeline.emulators.syncbatch import SyncBatchEmulatorConfig, create_syncbatch_app
from pipeline.emulators.syncbatch.app import REQUIRED_PERMISSIONS, REQUIRED_ROLE
from pipeline.targets.base import EmulatedData, EmulatorSpec

__all__ = ["EMULATOR", "PROFILE_URL"]

PROFILE_URL = "https://shop.example.com/users/{customer_id}"
"""The emulated shop's profile page of an account (the emulator does not follow it)."""
_IDS: dict[str, Any] = {
    "account_ids": "customer_id",
    "customer_id_prefix": "C",
    "account_id_offset": 1_000_000,
    "organisation_id_range": [1000, 1999],
}
"""Account ids: 1,000,000 + the number in "C0001234" (the emulator's first customer is
C0000000, and 0 is no id), the same in every state file, so no feed overwrites another's
customers (README, "Sync-batch ids"); organisations from a range."""


def _app(plan: SyncBatchEmulatorConfig, data: EmulatedData) -> web.Application:
    return create_syncbatch_app(plan)


def _credentials(plan: SyncBatchEmulatorConfig) -> dict[str, str]:
    """The token of a principal allowed to write (the first one if none is)."""
    allowed = [
        token
        for token, principal in plan.principals.items()
        if REQUIRED_ROLE in principal.roles
        and all(p in principal.permissions for p in REQUIRED_PERMISSIONS)
    ]
    tokens = allowed or list(plan.principals) or ["no-token-needed"]
    return {"token": tokens[0]}


def _section(
    url: str, plan: SyncBatchEmulatorConfig, env: dict[str, str], rate: float | None
) -> dict[str, Any]:
    return {
        "url": url,
        "token_env": env["token"],
        "profile_url": PROFILE_URL,
        **_IDS,
        "batch_size": min(100, plan.max_batch),
        "max_in_flight": 4,
        **({} if rate is None else {"rate_per_second": rate}),
    }


EMULATOR = EmulatorSpec(
    plan=SyncBatchEmulatorConfig,
    default=SyncBatchEmulatorConfig(max_batch=1000),
    app=_app,
    credentials=_credentials,
    section=_section,
)
