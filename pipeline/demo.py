"""The embedded default: emulators of the source and every target on loopback, and the
configuration that points the pipeline at them (``pipeline demo`` and ``pipeline emulate``)."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import msgspec

from pipeline.emulators import (
    BUSINESS_UNITS,
    Dataset,
    EmporixEmulatorConfig,
    ManEmulatorConfig,
    NorceEmulatorConfig,
    SyncBatchEmulatorConfig,
    create_emporix_app,
    create_man_app,
    create_norce_app,
    create_syncbatch_app,
    serve_app,
)
from pipeline.errors import ConfigError, PipelineError

__all__ = [
    "DEMO_STATE",
    "DEMO_TOKENS",
    "EmulatorPlan",
    "EmulatorUrls",
    "config_toml",
    "demo_config",
    "load_plan",
    "running_emulators",
    "source_variant_keys",
    "use_demo_tokens",
]

DEMO_STATE = ".pipeline-demo/state.sqlite3"
DEMO_PAGE_SIZE = 500
DEMO_PROFILE_URL = "https://shop.example.com/users/{customer_id}"
DEMO_IDS: dict[str, object] = {
    "account_ids": "customer_id",
    "customer_id_prefix": "C",
    "account_id_offset": 1_000_000,
    "organisation_id_range": [1000, 1999],
}
"""Sync-batch ids of the demo: 1,000,000 + the number in "C0001234" (the emulator's first
customer is C0000000, and 0 is no id), organisations from a range."""
"""The demo shop's profile page of an account (the emulator does not follow it)."""
_EMPORIX = EmporixEmulatorConfig()
# Norce knows the companies of MAN's company feed; "Ghost Unit" customers show the item error.
_NORCE = NorceEmulatorConfig(companies=BUSINESS_UNITS)
# What the emulators accept, under the variable names a user's configuration would use.
DEMO_TOKENS = {
    "MAN_TOKEN": "demo-man-token",
    "SYNCBATCH_TOKEN": "demo-syncbatch-token",
    "EMPORIX_CLIENT_ID": _EMPORIX.client_id,
    "EMPORIX_CLIENT_SECRET": _EMPORIX.client_secret,
    "NORCE_CLIENT_ID": _NORCE.client_id,
    "NORCE_CLIENT_SECRET": _NORCE.client_secret,
}
# The demo reads them from variables of its own, so a user's real secrets never meet it.
_DEMO_PREFIX = "PIPELINE_DEMO_"


class EmulatorUrls(msgspec.Struct, frozen=True):
    source: str
    syncbatch: str
    emporix: str
    norce: str


class EmulatorPlan(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How the emulators behave, faults included: ``--plan FILE`` reads it from TOML
    (``[man]``, ``[syncbatch]``, ``[emporix]``, ``[norce]``, each with ``.faults``)."""

    man: ManEmulatorConfig = ManEmulatorConfig(max_limit=1000)
    syncbatch: SyncBatchEmulatorConfig = SyncBatchEmulatorConfig(max_batch=1000)
    emporix: EmporixEmulatorConfig = _EMPORIX
    norce: NorceEmulatorConfig = _NORCE


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
    """Serve every emulator while the block runs; ``base_port`` 0 picks free ports, else
    the source is on ``base_port`` and the targets on the ports after it.

    Raises:
        PipelineError: a port cannot be bound (taken by another process), naming it.
    """
    plan = plan or EmulatorPlan()
    apps = [
        create_man_app(Dataset(customers, seed=seed), plan.man),
        create_syncbatch_app(plan.syncbatch),
        create_emporix_app(plan.emporix),
        create_norce_app(plan.norce),
    ]
    async with AsyncExitStack() as stack:
        urls = []
        for offset, app in enumerate(apps):
            port = base_port + offset if base_port else 0
            try:
                urls.append(await stack.enter_async_context(serve_app(app, host, port)))
            except OSError as exc:  # the port is taken, or the host is not this machine's
                reason = os.strerror(exc.errno) if exc.errno else str(exc)
                raise PipelineError(f"cannot listen on {host}:{port}: {reason}") from exc
        yield EmulatorUrls(
            source=f"{urls[0]}{plan.man.alias}", syncbatch=urls[1], emporix=urls[2], norce=urls[3]
        )


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


def use_demo_tokens() -> None:
    """Put the emulators' secrets in the environment variables the demo configuration names."""
    for name, value in DEMO_TOKENS.items():
        os.environ[_DEMO_PREFIX + name] = value


def demo_config(
    urls: EmulatorUrls,
    *,
    state_path: str = DEMO_STATE,
    rate_per_second: float | None = 50.0,
    plan: EmulatorPlan | None = None,
    env_prefix: str = _DEMO_PREFIX,
) -> dict[str, Any]:
    """The configuration (as parsed TOML) of a pass against the emulators; ``rate_per_second``
    None turns every target's rate limit off."""
    plan = plan or EmulatorPlan()
    rate = {} if rate_per_second is None else {"rate_per_second": rate_per_second}
    return {
        "source": {
            "url": urls.source,
            "page_size": min(DEMO_PAGE_SIZE, plan.man.max_limit),
            "max_in_flight": 4,
            "token_env": f"{env_prefix}MAN_TOKEN",
            **source_variant_keys(plan.man),
        },
        "flow": {"queue_size": 8},
        "state": {"path": state_path},
        "targets": {
            "syncbatch": {
                "url": urls.syncbatch,
                "token_env": f"{env_prefix}SYNCBATCH_TOKEN",
                "profile_url": DEMO_PROFILE_URL,
                **DEMO_IDS,
                "batch_size": min(100, plan.syncbatch.max_batch),
                "max_in_flight": 4,
                **rate,
            },
            "emporix": {
                "url": urls.emporix,
                "tenant": plan.emporix.tenant,
                "client_id_env": f"{env_prefix}EMPORIX_CLIENT_ID",
                "client_secret_env": f"{env_prefix}EMPORIX_CLIENT_SECRET",
                "max_in_flight": 16,
                **({} if rate_per_second is None else {"rate_per_second": 40 * rate_per_second}),
            },
            "norce": {
                "url": urls.norce,
                "application_id": plan.norce.application_id,
                "account_id": plan.norce.account_id,
                "scope": plan.norce.environments[0],
                "client_id_env": f"{env_prefix}NORCE_CLIENT_ID",
                "client_secret_env": f"{env_prefix}NORCE_CLIENT_SECRET",
                "batch_size": min(500, plan.norce.max_items),
                "max_in_flight": 2,
                **({} if rate_per_second is None else {"rate_per_second": rate_per_second / 10}),
            },
        },
    }


def config_toml(urls: EmulatorUrls, plan: EmulatorPlan | None = None) -> str:
    """A configuration file for the running emulators, for ``pipeline emulate`` to print."""
    plan = plan or EmulatorPlan()
    return f"""[source]
url = "{urls.source}"
page_size = {min(DEMO_PAGE_SIZE, plan.man.max_limit)}
max_in_flight = 4
token_env = "MAN_TOKEN"
{_toml_tables("source", source_variant_keys(plan.man))}
[state]
path = "pipeline-state.sqlite3"

[targets.syncbatch]
url = "{urls.syncbatch}"
token_env = "SYNCBATCH_TOKEN"
profile_url = "{DEMO_PROFILE_URL}"
# Account ids: 1,000,000 + the number in the customer id ("C0001234" is 1001234), the same
# in every state file, so no feed overwrites another's customers. See README, "Sync-batch ids".
account_ids = "customer_id"
customer_id_prefix = "C"
account_id_offset = 1000000
organisation_id_range = [1000, 1999]
batch_size = 100
rate_per_second = 50
max_in_flight = 4

[targets.emporix]
url = "{urls.emporix}"
tenant = "{plan.emporix.tenant}"
client_id_env = "EMPORIX_CLIENT_ID"
client_secret_env = "EMPORIX_CLIENT_SECRET"
rate_per_second = 2000
max_in_flight = 16

[targets.norce]
url = "{urls.norce}"
application_id = {plan.norce.application_id}
account_id = {plan.norce.account_id}
scope = "{plan.norce.environments[0]}"
client_id_env = "NORCE_CLIENT_ID"
client_secret_env = "NORCE_CLIENT_SECRET"
batch_size = 500
rate_per_second = 5
max_in_flight = 2
"""


def _toml_tables(name: str, keys: dict[str, Any]) -> str:
    """The scalar ``keys`` as lines of the open table, then each sub-table as [name.key]."""
    lines = [
        f"{key} = {_toml_value(value)}"
        for key, value in keys.items()
        if not isinstance(value, dict)
    ]
    for key, table in keys.items():
        if isinstance(table, dict):
            lines.append(f"\n[{name}.{key}]")
            lines.extend(f"{field} = {_toml_value(value)}" for field, value in table.items())
    return "".join(f"{line}\n" for line in lines)


def _toml_value(value: str | int) -> str:
    # A JSON string is a TOML basic string (the same escapes, \uXXXX included).
    return json.dumps(value)
