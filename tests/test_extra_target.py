"""A whole extra target, defined in this module alone: its settings, payload, client and an
emulator of its service. Registered (in this process with ``registry.registered``, in a child
process through ``PIPELINE_PLUGINS``), it takes part in a pass, the report, ``/metrics``,
``pipeline demo`` and ``pipeline emulate --json`` with no change to any file under
``pipeline/``: the proof that a target is a folder and one registry line.

The service ("shop") upserts customers by number, a batch per ``POST``, and answers per item;
it refuses the numbers that end in 7 (reserved), so the pass has dead letters too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import msgspec
import pytest
from aiohttp import web

from pipeline import registry
from pipeline.cli import main
from pipeline.config import TargetSettings, secret
from pipeline.config_load import settings_from_mapping
from pipeline.errors import ConfigError, PipelineError
from pipeline.metrics import Health, Metrics, serve_metrics
from pipeline.records import Ack, Customer, Item
from pipeline.runner import run_once
from pipeline.stack import config_toml, running_stack
from pipeline.state.store import StateStore
from pipeline.targets.acks import confirmed, dead
from pipeline.targets.base import (
    EmulatedData,
    EmulatorSpec,
    HttpTarget,
    TargetContext,
    TargetSpec,
)
from pipeline.transform.hashing import payload_hash

ROOT = Path(__file__).resolve().parent.parent
UPSERT = "/api/customers/upsert"
RESERVED_ENDING = "7"

# -- settings -------------------------------------------------------------------------------


class ShopSettings(TargetSettings, frozen=True, kw_only=True):
    """``[targets.shop]``: the shared keys, a bearer token, and a batch size of its own."""

    token_env: str
    batch_size: int = 20

    def endpoints(self) -> tuple[str, ...]:
        return (UPSERT,)

    def check(self, key: str) -> None:
        if self.batch_size > 200:
            raise ConfigError(
                "the shop takes at most 200 customers a request", path=f"{key}.batch_size"
            )


# -- payload --------------------------------------------------------------------------------


class ShopCustomer(msgspec.Struct, frozen=True):
    number: str
    email: str
    name: str


class ShopResult(msgspec.Struct, frozen=True):
    number: str
    ok: bool
    code: str | None = None


_encoder = msgspec.json.Encoder()
_results = msgspec.json.Decoder(list[ShopResult])


def to_shop(customer: Customer) -> ShopCustomer:
    return ShopCustomer(
        customer.customer_id, customer.email, f"{customer.first_name} {customer.last_name}"
    )


# -- client ---------------------------------------------------------------------------------


class ShopTarget(HttpTarget):
    def __init__(self, settings: ShopSettings, context: TargetContext) -> None:
        token = secret(settings.token_env, key=context.key("token_env"))
        headers = {"Content-Type": "application/json"}
        super().__init__(settings, context, headers, token=token)
        self._url = settings.url.rstrip("/") + UPSERT

    async def prepare(self, customers: Sequence[Customer]) -> list[Item]:
        payloads = [to_shop(c) for c in customers]
        return [
            Item(c.customer_id, payload_hash(_encoder.encode(p)), p, customer=c)
            for c, p in zip(customers, payloads, strict=True)
        ]

    async def write(self, items: Sequence[Item]) -> list[Ack]:
        body = _encoder.encode([i.payload for i in items])
        try:
            response = await self.call("POST", self._url, body=body)
            answers = {r.number: r for r in _results.decode(response.body)}
        except PipelineError as exc:
            return self.failed(items, "request failed", exc)
        except msgspec.DecodeError:
            return [dead(self.name, i, "answer unreadable", request_failed=True) for i in items]
        acks = []
        for item in items:
            answer = answers.get(item.customer_id)
            if answer is not None and answer.ok:
                acks.append(confirmed(self.name, item))
            else:
                code = answer.code if answer is not None else "not answered"
                acks.append(dead(self.name, item, f"refused: {code}"))
        return acks

    async def deactivate(self, customer_ids: Sequence[str]) -> list[str]:
        return []


# -- emulator -------------------------------------------------------------------------------


class ShopPlan(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    token: str = "shop-token"
    reserved_ending: str = RESERVED_ENDING


SHOP_STORE: web.AppKey[dict[str, dict[str, Any]]] = web.AppKey("shop_store", dict)


def shop_app(plan: ShopPlan, data: EmulatedData) -> web.Application:
    """The shop's service, from its documentation alone (it imports nothing of the client)."""
    app = web.Application()
    app[SHOP_STORE] = {}

    async def upsert(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {plan.token}":
            return web.json_response({"error": "unauthorized"}, status=401)
        results = []
        for row in await request.json():
            if row["number"].endswith(plan.reserved_ending):
                results.append({"number": row["number"], "ok": False, "code": "NUMBER_RESERVED"})
            else:
                request.app[SHOP_STORE][row["number"]] = row
                results.append({"number": row["number"], "ok": True})
        return web.json_response(results)

    async def count(request: web.Request) -> web.Response:
        return web.json_response({"customers": len(request.app[SHOP_STORE])})

    app.router.add_post(UPSERT, upsert)
    app.router.add_get("/count", count)
    return app


def shop_section(
    url: str, plan: ShopPlan, env: dict[str, str], rate: float | None
) -> dict[str, Any]:
    return {
        "url": url,
        "token_env": env["token"],
        **({} if rate is None else {"rate_per_second": rate}),
    }


SPEC = TargetSpec(
    "shop",
    ShopSettings,
    ShopTarget,
    emulator=EmulatorSpec(
        plan=ShopPlan,
        default=ShopPlan(),
        app=shop_app,
        credentials=lambda plan: {"token": plan.token},
        section=shop_section,
    ),
)
"""The one line that names the target (``PIPELINE_PLUGINS=tests.test_extra_target`` loads it)."""


# -- tests ----------------------------------------------------------------------------------


async def count_at(url: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/count") as answer:
        counted: int = (await answer.json())["customers"]
        return counted


async def test_a_pass_the_report_and_metrics_include_a_registered_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with registry.registered(SPEC):
        async with running_stack(300, names=["source", "shop"], rate_per_second=None) as stack:
            config = stack.config(str(tmp_path / "state.sqlite3"))
            settings = settings_from_mapping(config, stack.credentials())
            assert settings.targets.enabled() == ["shop"]
            assert isinstance(settings.targets["shop"], ShopSettings)
            for name, value in stack.credentials().items():
                monkeypatch.setenv(name, value)
            with anyio.fail_after(60):
                _, first = await run_once(settings, show_progress=False, handle_signals=False)
                _, second = await run_once(settings, show_progress=False, handle_signals=False)
            shop = first.targets["shop"]
            held = await count_at(stack.systems["shop"].url)
            # Every record read ends confirmed or dead-lettered with a reason: the shop's
            # reserved numbers, and the records the source's validation rejected.
            assert shop.created == held > 0
            assert shop.created + shop.dead_lettered == first.source.records
            async with StateStore(settings.state.path) as store:
                letters = await store.dead_letters("shop")
            reserved = [d for d in letters if d.reason == "refused: NUMBER_RESERVED"]
            assert {d.customer_id[-1] for d in reserved} == {"7"}
            assert len(reserved) == shop.dead_lettered - first.source.rejected > 0
            # The second pass sends again only the dead letters (the shop may hold them now).
            assert second.targets["shop"].unchanged == shop.created
            assert second.targets["shop"].sent == len(reserved)

            # /metrics counts the target as it counts the built-in ones.
            async with StateStore(settings.state.path) as store:
                targets = registry.build_targets(settings, store)
            metrics = Metrics(targets)
            metrics.outcomes.update(
                {("shop", "created"): shop.created, ("shop", "dead_lettered"): shop.dead_lettered}
            )
            async with (
                serve_metrics("127.0.0.1:0", metrics, Health(config_loaded=True)) as url,
                aiohttp.ClientSession() as session,
                session.get(f"{url}/metrics") as answer,
            ):
                text = await answer.text()
            assert (
                f'pipeline_records_total{{outcome="created",target="shop"}} {shop.created}.0'
                in text
            )
            assert 'pipeline_requests_total{client="shop"}' in text


def test_the_demo_includes_a_registered_target(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    state = str(tmp_path / "demo.sqlite3")
    with registry.registered(SPEC):
        args = ["demo", "--customers", "150", "--state", state, "--no-rate-limit"]
        assert main([*args, "--report", str(report)]) == 0
    targets = json.loads(report.read_text())["targets"]
    assert list(targets) == ["syncbatch", "emporix", "norce", "shop"]
    assert targets["shop"]["created"] > 0
    assert targets["shop"]["dead_lettered"] > 0


def test_emulate_json_and_a_run_in_child_processes_include_a_plugin_target(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "PIPELINE_PLUGINS": "tests.test_extra_target", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "pipeline", "emulate", "--json", "--customers", "120"]
    emulate = subprocess.Popen(
        [*command, "--port", "0"], stdout=subprocess.PIPE, text=True, env=env, cwd=tmp_path
    )
    assert emulate.stdout is not None
    try:
        description = json.loads(emulate.stdout.readline())
        shop = description["systems"]["shop"]
        assert shop["credentials"] == {"SHOP_TOKEN": "shop-token"}
        assert shop["config"]["url"] == shop["url"]
        assert shop["config"]["token_env"] == "SHOP_TOKEN"
        config = description["config"]
        assert config["targets"]["shop"] == shop["config"]
        config["targets"] = {"shop": shop["config"]}  # this pass writes to the shop alone
        path = tmp_path / "pipeline.toml"
        path.write_text(config_toml(config))
        assert tomllib.loads(path.read_text())["targets"]["shop"]["token_env"] == "SHOP_TOKEN"
        credentials = {
            k: v for s in description["systems"].values() for k, v in s["credentials"].items()
        }
        done = subprocess.run(
            [sys.executable, "-m", "pipeline", "run", "--config", str(path), "--report", "r.json"],
            env={**env, **credentials},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 3, done.stderr[-2000:]
        created = json.loads((tmp_path / "r.json").read_text())["targets"]["shop"]["created"]
        held = anyio.run(count_at, shop["url"])
        assert created == held > 0
    finally:
        emulate.terminate()
        emulate.wait(10)
        emulate.stdout.close()


def test_a_plugin_that_cannot_be_loaded_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PIPELINE_PLUGINS", "tests.no_such_plugin")
    assert main(["check-config", "--config", "x.toml"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("configuration error: PIPELINE_PLUGINS: cannot import plug-in")
    monkeypatch.setenv("PIPELINE_PLUGINS", "json")
    assert main(["check-config", "--config", "x.toml"]) == 2
    assert "plug-in json names no TargetSpec as SPEC" in capsys.readouterr().err
    assert "shop" not in [t.name for t in registry.targets()]


def test_a_section_of_the_extra_target_is_checked_by_its_own_rules() -> None:
    with registry.registered(SPEC):
        shop: dict[str, Any] = {"url": "http://127.0.0.1:2", "token_env": "T", "batch_size": 500}
        data = {"source": {"url": "http://127.0.0.1:1/c"}, "targets": {"shop": shop}}
        with pytest.raises(ConfigError, match=r"targets\.shop\.batch_size: the shop takes at most"):
            settings_from_mapping(data, environ={})
        shop["url"], shop["batch_size"] = "http://127.0.0.1:2/api/customers", 20
        with pytest.raises(ConfigError, match=r"targets\.shop\.url: must be the base URL only"):
            settings_from_mapping(data, environ={})


# -- a target whose code has a bug ----------------------------------------------------------


class CrashingTarget(ShopTarget):
    """The shop's client with a bug: its writes raise an exception outside the error tree,
    whose message quotes a record (as a careless ``f"{item!r}"`` would)."""

    async def write(self, items: Sequence[Item]) -> list[Ack]:
        customer = items[0].customer
        raise RuntimeError(f"cannot write {customer!r}")


CRASHING = TargetSpec("crashing", ShopSettings, CrashingTarget, emulator=SPEC.emulator)


class BrokenTarget(ShopTarget):
    def __init__(self, settings: ShopSettings, context: TargetContext) -> None:
        raise RuntimeError("token=hunter2")


async def test_a_target_raising_a_foreign_exception_stops_alone_without_its_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with registry.registered(SPEC), registry.registered(CRASHING):
        names = ["source", "shop", "crashing"]
        async with running_stack(200, names=names, rate_per_second=None) as stack:
            settings = settings_from_mapping(stack.config(str(tmp_path / "s.sqlite3")), {})
            for name, value in stack.credentials().items():
                monkeypatch.setenv(name, value)
            with anyio.fail_after(60):
                _, report = await run_once(settings, show_progress=False, handle_signals=False)
            async with StateStore(settings.state.path) as store:
                letters = await store.dead_letters()
            broken = TargetSpec("broken", ShopSettings, BrokenTarget)
            with registry.registered(broken):
                data = stack.config(str(tmp_path / "b.sqlite3"))
                data["targets"] = {"broken": data["targets"]["shop"]}
                with pytest.raises(PipelineError) as made:
                    registry.build_targets(settings_from_mapping(data, {}), store)
    error = report.targets["crashing"].error or ""
    assert error.startswith("unexpected RuntimeError in write (test_extra_target.py:")
    assert "@" not in error and "cannot write" not in error
    assert report.status == "aborted"
    assert report.targets["shop"].created > 0  # the other target went on
    assert report.targets["crashing"].skipped > 0
    assert report.source.checkpoint == 0  # the crashing target's records are read again
    assert all("@" not in d.reason for d in letters)
    assert str(made.value).startswith("target broken cannot be made: unexpected RuntimeError")
    assert "hunter2" not in str(made.value)


@pytest.mark.parametrize("name", ["source", "", "Weird Name", "a.b", "Shop"])
def test_a_target_name_is_a_lower_case_identifier_and_not_source(name: str) -> None:
    with pytest.raises(ValueError, match="lower-case identifier"):
        registry.register(TargetSpec(name, ShopSettings, ShopTarget))
    assert name not in [t.name for t in registry.targets()]


def test_a_plugin_raising_at_import_is_a_configuration_error_without_its_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "boom_plugin.py").write_text('raise RuntimeError("secret=hunter2")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    for plugins, said in [
        ("boom_plugin", "cannot import plug-in boom_plugin: unexpected RuntimeError"),
        (".relative", "'.relative' is not a module name"),
    ]:
        monkeypatch.setenv("PIPELINE_PLUGINS", plugins)
        assert main(["check-config", "--config", "x.toml"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("configuration error: PIPELINE_PLUGINS: ") and said in err, err
        assert "hunter2" not in err and "Traceback" not in err
