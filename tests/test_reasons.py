"""What a target says of a record reaches the operator without its personal data, control
characters or markup (issue 12, items 3 and 4); and no hostile path leaks a secret or a
personal value anywhere the product writes."""

from __future__ import annotations

import io
import json
import logging
import sqlite3
from typing import Any

import msgspec
import pytest
from rich.console import Console

from pipeline.admin import dlq_list, status
from pipeline.config_load import settings_from_mapping
from pipeline.emulators import Dataset, EmporixEmulatorConfig, serve_app
from pipeline.errors import ConfigError
from pipeline.logs import configure
from pipeline.progress import render_summary
from pipeline.state.store import StateStore
from pipeline.targets.acks import mask_personal
from tests.conftest import MAN_TOKEN, SB_TOKEN, Env
from tests.kit.passes import run_pass
from tests.kit.servers import Capture, chatty_service, gossip_service, redirecting


def personal(raw: dict[str, Any]) -> list[str]:
    """The values of a MAN record that identify its person."""
    address = raw.get("address") or {}
    values = [raw["firstName"], raw["lastName"], raw["email"]]
    values += [
        str(address.get(k) or "") for k in ("address1", "address2", "zipCode", "city", "phone")
    ]
    return [v.strip() for v in values if v and v.strip() and len(v.strip()) > 2]


async def test_target_messages_quoting_a_record_keep_none_of_its_personal_data(env: Env) -> None:
    dataset = Dataset(40, seed=3, defects=False)
    await env.start(dataset)
    refused: list[str] = []
    url = await env.stack.enter_async_context(serve_app(chatty_service(refused)))
    report, _ = await run_pass(env, targets__syncbatch__url=url, targets__syncbatch__batch_size=1)

    assert report.targets["syncbatch"].dead_lettered == 40
    assert refused  # the service did quote them
    async with StateStore(env.settings().state.path) as store:
        letters = {d.customer_id: d.reason for d in await store.dead_letters()}
    out = io.StringIO()
    dlq_list(env.settings(), Console(file=out, width=400, color_system=None))
    shown = out.getvalue()
    for raw in dataset.records():
        reason = letters[raw["customer_id"]]
        assert reason == "UserExists[/]\\x1b[2J: fields Customers[0].Accounts[0].UserName"
        for value in personal(raw):
            assert value.lower() not in reason.lower(), (raw["customer_id"], value)
            assert value.lower() not in shown.lower(), (raw["customer_id"], value)
    assert "\x1b" not in shown
    assert "[/]" in shown  # printed as text, not read as markup


def test_mask_personal_takes_whole_values_in_any_case_longest_first() -> None:
    values = ("Ann", "Annabel", "Lee", "Main Street 1")
    text = "ANNABEL lee of main street 1 (Anne, Leeds) refused: Ann"
    assert mask_personal(text, values) == (
        "<personal> <personal> of <personal> (Anne, Leeds) refused: <personal>"
    )
    assert mask_personal("bad\x1b[2J\x9b", ()) == "bad\\x1b[2J\\x9b"


async def test_hostile_paths_leave_no_secret_or_personal_value_anywhere(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12's sweep: a redirect to another origin, credentials in a URL, a target that
    echoes names; then every output (logs, summary, dlq list, status, report, every table of
    the state file) is searched for each secret and each personal value of the data."""
    with pytest.raises(ConfigError) as refused:
        env_settings = {"source": {"url": "http://man-user:url-s3cret@127.0.0.1:1/c"}}
        settings_from_mapping(env_settings, environ={})
    assert "url-s3cret" not in str(refused.value) and "man-user" not in str(refused.value)

    dataset = Dataset(60, seed=8, defects=False)
    await env.start(dataset, targets=("syncbatch", "emporix"))
    refused_messages: list[str] = []
    chatty = await env.stack.enter_async_context(serve_app(chatty_service(refused_messages)))
    capture = Capture()
    elsewhere = await env.stack.enter_async_context(serve_app(capture.app()))
    hostile = await env.stack.enter_async_context(
        serve_app(redirecting(307, f"{elsewhere}/oauth/token")[0])
    )
    logs = io.StringIO()
    configure(json_lines=True, level=logging.DEBUG, stream=logs)
    report, _ = await run_pass(
        env,
        targets__syncbatch__url=chatty,
        targets__emporix__token_url=f"{hostile}/oauth/token",
    )
    assert capture.seen == []
    assert report.targets["emporix"].error is not None
    assert report.targets["syncbatch"].dead_lettered == 60
    settings = env.settings()
    shown = io.StringIO()
    console = Console(file=shown, width=300, color_system=None)
    render_summary(report, console)
    dlq_list(settings, console)
    status(settings, console)
    dump = "\n".join(sqlite3.connect(settings.state.path).iterdump())
    text = "\n".join(
        [logs.getvalue(), shown.getvalue(), dump, json.dumps(msgspec.to_builtins(report))]
    )

    secrets = [MAN_TOKEN, SB_TOKEN, EmporixEmulatorConfig().client_secret, "Bearer "]
    for secret in secrets:
        assert secret not in text
    lowered = text.lower()
    for raw in dataset.records():
        for value in personal(raw):
            if len(value) > 5:
                assert value.lower() not in lowered, (raw["customer_id"], value)


async def test_a_message_quoting_another_record_of_the_batch_keeps_none_of_it(env: Env) -> None:
    dataset = Dataset(40, seed=9, defects=False)
    await env.start(dataset)
    url = await env.stack.enter_async_context(serve_app(gossip_service()))
    report, _ = await run_pass(env, targets__syncbatch__url=url, targets__syncbatch__batch_size=8)

    assert report.targets["syncbatch"].dead_lettered == 40
    async with StateStore(env.settings().state.path) as store:
        reasons = "\n".join(d.reason for d in await store.dead_letters()).lower()
    assert reasons.splitlines()[0] == "conflict: fields customers[0].accounts[0].username"
    for raw in dataset.records():
        for value in personal(raw):
            assert value.lower() not in reasons, (raw["customer_id"], value)
