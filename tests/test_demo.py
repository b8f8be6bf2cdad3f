"""The embedded default: the emulator stack, its plans, and the configuration it gives."""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from pipeline import registry
from pipeline.cli import main
from pipeline.config_load import settings_from_mapping
from pipeline.demo import DEMO_PREFIX
from pipeline.emulators import FaultPlan, ManEmulatorConfig
from pipeline.errors import ConfigError
from pipeline.stack import (
    EmulatorPlan,
    config_toml,
    describe,
    load_plan,
    running_stack,
    systems,
)
from pipeline.targets.base import EmulatedData, EmulatorSpec, TargetSpec
from pipeline.targets.syncbatch.settings import SyncBatchSettings

URLS = {
    "source": "http://127.0.0.1:1",
    "syncbatch": "http://127.0.0.1:2",
    "emporix": "http://127.0.0.1:3",
    "norce": "http://127.0.0.1:4",
}


def test_plan_file_sets_faults_per_emulator(tmp_path: Path) -> None:
    path = tmp_path / "plan.toml"
    path.write_text(
        '[man]\nenvelope = "array"\n[man.faults]\nerror_rate = 0.2\nseed = 4\n'
        "[syncbatch]\nitem_error_rate = 0.1\n"
    )
    plan = load_plan(str(path))
    assert plan["man"].envelope == "array"
    assert plan["man"].faults == FaultPlan(error_rate=0.2, seed=4)
    assert plan["syncbatch"].item_error_rate == 0.1
    assert plan["norce"] == registry.spec("norce").emulator.default  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("[man]\nbogus = 1\n", "`bogus` - at `$.man`"),
        ("[man.faults]\nerror_rate = 2.0\n", "between 0 and 1, got 2.0 - at `$.man.faults`"),
        ("not toml [", "emulator plan"),
        ("[mann]\nmax_limit = 5\n", "unknown section [mann]"),
        ("bogus = 1\n", "unknown section [bogus]"),
    ],
)
def test_bad_plan_is_a_config_error(tmp_path: Path, text: str, said: str) -> None:
    path = tmp_path / "plan.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="emulator plan") as caught:
        load_plan(str(path))
    assert said in str(caught.value)
    assert str(path) in str(caught.value)


def test_demo_config_fits_the_emulators_limits() -> None:
    plan = load_plan(None)
    config = describe(URLS, plan=plan, rate_per_second=None).config()
    settings = settings_from_mapping(config, {})
    assert settings.source.page_size <= plan["man"].max_limit
    syncbatch = settings.targets.get(SyncBatchSettings)
    assert syncbatch is not None
    assert syncbatch.rate_per_second is None
    small = EmulatorPlan({"man": ManEmulatorConfig(max_limit=50)})
    assert settings_from_mapping(describe(URLS, plan=small).config(), {}).source.page_size == 50


def test_the_printed_toml_is_the_config() -> None:
    stack = describe(URLS, env_prefix=DEMO_PREFIX)
    config = stack.config("state.sqlite3")
    assert tomllib.loads(config_toml(config)) == config
    assert stack.credentials()["PIPELINE_DEMO_NORCE_CLIENT_ID"] == "demo-norce-client"
    assert config["targets"]["norce"]["client_id_env"] == "PIPELINE_DEMO_NORCE_CLIENT_ID"
    assert config["source"]["token_env"] == "PIPELINE_DEMO_MAN_TOKEN"


async def test_a_stack_of_a_subset_starts_only_those() -> None:
    async with running_stack(10, names=["source", "norce"]) as stack:
        assert list(stack.systems) == ["source", "norce"]
        config = stack.config()
        assert list(config["targets"]) == ["norce"]
        assert stack.credentials() == {
            "MAN_TOKEN": "demo-man-token",
            "NORCE_CLIENT_ID": "demo-norce-client",
            "NORCE_CLIENT_SECRET": "demo-norce-secret",
        }
        settings = settings_from_mapping(config, stack.credentials())
        assert settings.targets.enabled() == ["norce"]
    with pytest.raises(ConfigError, match="no emulated system named nope"):
        async with running_stack(10, names=["nope"]):
            pass


def _echo_app(plan: ManEmulatorConfig, data: EmulatedData) -> web.Application:
    app = web.Application()

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"customers": data.customers})

    app.router.add_get("/", hello)
    return app


def _echo_section(
    url: str, plan: ManEmulatorConfig, env: dict[str, str], rate: float | None
) -> dict[str, Any]:
    return {"url": url, **{f"{role}_env": name for role, name in env.items()}}


ECHO = TargetSpec(
    "echo",
    SyncBatchSettings,
    registry.spec("syncbatch").build,
    emulator=EmulatorSpec(
        plan=ManEmulatorConfig,
        default=ManEmulatorConfig(token="echo-token"),
        app=_echo_app,
        credentials=lambda plan: {"token": plan.token or ""},
        section=_echo_section,
    ),
)


async def test_a_registered_target_with_an_emulator_joins_the_stack(tmp_path: Path) -> None:
    with registry.registered(ECHO):
        assert [s.name for s in systems()][-1] == "echo"
        path = tmp_path / "plan.toml"
        path.write_text('[echo]\ntoken = "other"\n')
        plan = load_plan(str(path))
        async with running_stack(3, plan=plan) as stack:
            echo = stack.systems["echo"]
            assert echo.credentials == {"ECHO_TOKEN": "other"}
            assert stack.config()["targets"]["echo"] == {"url": echo.url, "token_env": "ECHO_TOKEN"}
            async with aiohttp.ClientSession() as session, session.get(echo.url) as answer:
                assert await answer.json() == {"customers": 3}
    assert "echo" not in [s.name for s in systems()]


MIRROR = TargetSpec(
    "mirror",
    SyncBatchSettings,
    registry.spec("syncbatch").build,
    emulator=registry.spec("syncbatch").emulator,
)
"""A second sync-batch under a name of its own: a target the stack knows only by the registry."""


def test_a_registered_target_joins_the_demo_and_emulate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report.json"
    state = str(tmp_path / "demo.sqlite3")
    with registry.registered(MIRROR):
        args = ["demo", "--customers", "200", "--state", state, "--no-rate-limit"]
        assert main([*args, "--report", str(report)]) == 0
        # emulate takes one port more: the last first port with room for five is 65531.
        with pytest.raises(SystemExit) as refused:
            main(["emulate", "--port", "65532"])
        assert refused.value.code == 2
    assert "the 5 ports must lie within 1..65535" in capsys.readouterr().err
    targets = json.loads(report.read_text())["targets"]
    assert list(targets) == ["syncbatch", "emporix", "norce", "mirror"]
    assert targets["mirror"]["created"] == targets["syncbatch"]["created"] > 0
    assert os.environ["PIPELINE_DEMO_MIRROR_TOKEN"] == "demo-syncbatch-token"


def test_no_emulator_imports_what_it_checks() -> None:
    """The emulators stand apart from the clients they check: no import of a target, the
    source, the registry or the stack (those import the emulators, never the other way)."""
    root = Path(__file__).resolve().parent.parent / "pipeline" / "emulators"
    forbidden = re.compile(r"^\s*(from|import)\s+pipeline\.(targets|sources|registry|stack)\b")
    found = [
        f"{path.relative_to(root)}:{number}"
        for path in sorted(root.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if forbidden.match(line)
    ]
    assert found == []


def test_the_demo_ignores_the_users_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A container's real settings (PIPELINE__*) never reach the demo: its state stays where
    --state says, and no real secret or URL of the user's is used."""
    victim = tmp_path / "real" / "state.sqlite3"
    monkeypatch.setenv("PIPELINE__STATE__PATH", str(victim))
    monkeypatch.setenv("PIPELINE__TARGETS__SYNCBATCH__TOKEN_ENV", "REAL_TOKEN")
    monkeypatch.setenv("REAL_TOKEN", "real-secret")
    monkeypatch.setenv("PIPELINE__TARGETS__NORCE__URL", "http://127.0.0.1:9")
    state = tmp_path / "demo" / "state.sqlite3"
    report = tmp_path / "report.json"
    args = ["demo", "--customers", "100", "--state", str(state), "--no-rate-limit"]
    assert main([*args, "--report", str(report)]) == 0
    assert state.exists()
    assert not victim.parent.exists()
    targets = json.loads(report.read_text())["targets"]
    assert all(t["error"] is None and t["created"] > 0 for t in targets.values())


def test_a_plan_section_is_read_over_the_default_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A section names what it changes: the Norce emulator keeps the companies of MAN's feed
    when a plan slows its jobs down; a value an emulator refuses is a configuration error."""
    default = systems(["norce"])[0].emulator.default
    assert default.companies  # the demo's Norce knows MAN's business units
    path = tmp_path / "plan.toml"
    path.write_text("[norce]\njob_delay = 0.05\n")
    norce = load_plan(str(path))["norce"]
    assert norce.job_delay == 0.05
    assert norce.companies == default.companies
    path.write_text("[man]\nmax_limit = -1\n")
    assert main(["emulate", "--port", "0", "--plan", str(path)]) == 2
    assert capsys.readouterr().err == (
        "configuration error: emulator plan: [man] max_limit must be at least 1\n"
    )
