"""How the emulator stack plays Norce: the emulator's plan, its OAuth2 client, and the
``[targets.norce]`` section that points a pass at it."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pipeline.emulators.man import BUSINESS_UNITS
from pipeline.emulators.norce import NorceEmulatorConfig, create_norce_app
from pipeline.targets.base import EmulatedData, EmulatorSpec

__all__ = ["EMULATOR"]

_RATE_DIVISOR = 10
"""A Norce import carries 500 customers: a tenth of the sync-batch rate."""


def _app(plan: NorceEmulatorConfig, data: EmulatedData) -> web.Application:
    return create_norce_app(plan)


def _credentials(plan: NorceEmulatorConfig) -> dict[str, str]:
    return {"client_id": plan.client_id, "client_secret": plan.client_secret}


def _section(
    url: str, plan: NorceEmulatorConfig, env: dict[str, str], rate: float | None
) -> dict[str, Any]:
    return {
        "url": url,
        "application_id": plan.application_id,
        "account_id": plan.account_id,
        "scope": plan.environments[0],
        "client_id_env": env["client_id"],
        "client_secret_env": env["client_secret"],
        "batch_size": min(500, plan.max_items),
        "max_in_flight": 2,
        **({} if rate is None else {"rate_per_second": rate / _RATE_DIVISOR}),
    }


EMULATOR = EmulatorSpec(
    plan=NorceEmulatorConfig,
    # Norce knows the companies of MAN's company feed; "Ghost Unit" customers show the
    # item error.
    default=NorceEmulatorConfig(companies=BUSINESS_UNITS),
    app=_app,
    credentials=_credentials,
    section=_section,
)
