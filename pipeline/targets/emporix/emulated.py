"""How the emulator stack plays Emporix: the emulator's plan, its OAuth2 client, and the
``[targets.emporix]`` section that points a pass at it."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pipeline.emulators.emporix import EmporixEmulatorConfig, create_emporix_app
from pipeline.targets.base import EmulatedData, EmulatorSpec

__all__ = ["EMULATOR"]

_RATE_FACTOR = 40
"""Emporix takes one customer a request: 40 of them for one sync-batch request."""


def _app(plan: EmporixEmulatorConfig, data: EmulatedData) -> web.Application:
    return create_emporix_app(plan)


def _credentials(plan: EmporixEmulatorConfig) -> dict[str, str]:
    return {"client_id": plan.client_id, "client_secret": plan.client_secret}


def _section(
    url: str, plan: EmporixEmulatorConfig, env: dict[str, str], rate: float | None
) -> dict[str, Any]:
    return {
        "url": url,
        "tenant": plan.tenant,
        "client_id_env": env["client_id"],
        "client_secret_env": env["client_secret"],
        "max_in_flight": 16,
        **({} if rate is None else {"rate_per_second": _RATE_FACTOR * rate}),
    }


EMULATOR = EmulatorSpec(
    plan=EmporixEmulatorConfig,
    default=EmporixEmulatorConfig(),
    app=_app,
    credentials=_credentials,
    section=_section,
)
