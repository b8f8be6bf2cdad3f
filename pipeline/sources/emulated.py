"""How the emulator stack plays the MAN source: the emulator's plan, its credentials, and the
``[source]`` section that reads the server variant it plays."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pipeline.emulators.man import Dataset, ManEmulatorConfig, create_man_app
from pipeline.targets.base import EmulatedData, EmulatorSpec

__all__ = ["EMULATOR", "source_variant_keys"]

_PAGE_SIZE = 500


def source_variant_keys(man: ManEmulatorConfig) -> dict[str, Any]:
    """The ``[source]`` keys a user must set to read the MAN server variant ``man`` plays:
    paging mode and parameter names, the envelope paths, and the ``fields`` and
    ``address_fields`` tables of renamed keys. Keys left at their default are left out."""
    keys: dict[str, Any] = {}
    if man.paging == "page":
        keys["paging"] = "page"
        keys["first_page"] = man.first_page
        if man.page_param != "page":
            keys["page_param"] = man.page_param
    elif man.offset_param != "offset":
        keys["offset_param"] = man.offset_param
    if man.limit_param != "limit":
        keys["limit_param"] = man.limit_param
    if man.envelope == "object":
        if man.data_path != "data":
            keys["data_path"] = man.data_path
        if man.total_path != "total":
            keys["total_path"] = man.total_path
    for table, renames in (
        ("fields", man.field_names),
        ("address_fields", man.address_field_names),
    ):
        changed = {name: served for name, served in sorted(renames.items()) if name != served}
        if changed:
            keys[table] = changed
    return keys


def _app(plan: ManEmulatorConfig, data: EmulatedData) -> web.Application:
    return create_man_app(Dataset(data.customers, seed=data.seed), plan)


def _credentials(plan: ManEmulatorConfig) -> dict[str, str]:
    """A bearer token, or the ``client_id``/``client_secret`` header pair."""
    if plan.token is not None:
        return {"token": plan.token}
    if plan.client_id is not None and plan.client_secret is not None:
        return {"client_id": plan.client_id, "client_secret": plan.client_secret}
    return {}


def _section(
    url: str, plan: ManEmulatorConfig, env: dict[str, str], rate: float | None
) -> dict[str, Any]:
    return {
        "url": f"{url}{plan.alias}",
        "page_size": min(_PAGE_SIZE, plan.max_limit),
        "max_in_flight": 4,
        **{f"{role}_env": variable for role, variable in env.items()},
        **source_variant_keys(plan),
    }


EMULATOR = EmulatorSpec(
    plan=ManEmulatorConfig,
    default=ManEmulatorConfig(max_limit=1000),
    app=_app,
    credentials=_credentials,
    section=_section,
    system="man",
)
"""The MAN source, emulated (``[man]`` in a plan, ``MAN_TOKEN``)."""
