"""The long-running service in process: serve with scrapes, deactivation, dead letters,
status, and what reaches the logs."""

from __future__ import annotations

import io
import json
import logging
import re

import aiohttp
import anyio
import pytest
from rich.console import Console

from pipeline.admin import dlq_list, dlq_replay, status
from pipeline.emulators import Dataset, EmporixEmulatorConfig, FaultPlan, NorceEmulatorConfig
from pipeline.emulators.man.dataset import BUSINESS_UNITS
from pipeline.errors import StateError
from pipeline.logs import configure
from pipeline.progress import render_summary
from pipeline.runner import run_once, serve
from pipeline.state.store import StateStore
from tests.conftest import MAN_TOKEN, SB_TOKEN, Env, sb_config
from tests.kit.passes import run_pass

ALL = ("syncbatch", "emporix", "norce")


def metric(text: str, name: str, **labels: str) -> float | None:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        metric_name, _, rest = key.partition("{")
        got = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
        if metric_name == name and got == wanted:
            return float(value)
    return None


async def test_serve_runs_passes_while_metrics_and_readyz_are_scraped(env: Env) -> None:
    dataset = Dataset(2_000, seed=2)
    await env.start(dataset, targets=ALL, sb=sb_config(faults=FaultPlan(latency=0.002)))
    settings = env.settings(
        serve__interval_seconds=1.0, metrics__listen="127.0.0.1:0", flow__queue_size=2
    )
    ready = anyio.Event()
    url = ""
    scrapes: list[tuple[int, str]] = []
    readyz: list[int] = []

    def on_ready(address: str) -> None:
        nonlocal url
        url = address
        ready.set()

    async def scrape() -> None:
        await ready.wait()
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    async with session.get(f"{url}/readyz") as answer:
                        readyz.append(answer.status)
                    async with session.get(f"{url}/metrics") as answer:
                        scrapes.append((answer.status, await answer.text()))
                except aiohttp.ClientConnectionError:
                    return  # serve has ended and closed its port
                await anyio.sleep(0.02)

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(scrape)
            assert await serve(settings, on_ready=on_ready, max_passes=3) == 0
            tg.cancel_scope.cancel()

    assert readyz and set(readyz) == {200}
    assert all(code == 200 for code, _ in scrapes)
    during = [text for _, text in scrapes if metric(text, "pipeline_pass_running") == 1.0]
    assert during, "no scrape happened while a pass ran"
    assert any(metric(t, "pipeline_queue_depth", channel="pages") is not None for t in during)
    # A scrape between the second and the third pass sees two whole passes.
    between = [
        text
        for _, text in scrapes
        if metric(text, "pipeline_pass_running") == 0.0
        and metric(text, "pipeline_passes_total", status="dead_letters") == 2.0
    ]
    assert between, "no scrape between the second and third pass"
    last = between[-1]
    valid = len(dataset) - len(dataset.defects)
    assert metric(last, "pipeline_passes_total", status="dead_letters") == 2.0
    assert metric(last, "pipeline_records_read_total") == 4_000.0
    assert metric(last, "pipeline_records_total", target="syncbatch", outcome="created") == valid
    assert metric(last, "pipeline_records_total", target="syncbatch", outcome="unchanged") == valid
    requests = metric(last, "pipeline_request_seconds_count", client="emporix")
    assert requests is not None and requests > valid
    reads = metric(last, "pipeline_requests_total", client="source")
    assert reads is not None and reads >= 40
    assert metric(last, "pipeline_last_success_timestamp_seconds") is not None
    assert env.emx_store.token_calls == 1  # the token outlives the pass


async def test_deactivation_of_customers_gone_from_the_source(env: Env) -> None:
    dataset = Dataset(400, seed=6, defects=False)
    companies = NorceEmulatorConfig(companies=BUSINESS_UNITS)
    await env.start(dataset, targets=ALL, norce=companies)
    opt_in = {f"targets__{t}__deactivate_missing": True for t in ALL}
    await run_pass(env, **opt_in)
    gone = [dataset.customer_id(i) for i in range(392, 400)]
    known_norce = {c["Code"] for c in env.nc_store.snapshot()["customers"]}

    dataset.size = 392  # 2% of the customers leave the source
    report, _ = await run_pass(env, **opt_in)

    for target in ("syncbatch", "emporix"):
        assert report.targets[target].deactivated == len(gone)
    assert report.targets["norce"].deactivated == len([c for c in gone if c in known_norce])
    accounts = {a["meta"]["customerId"]: a for a in env.store.accounts.values()}
    assert all(accounts[c].get("lockedDate") and accounts[c]["roles"] == [] for c in gone)
    assert all(env.emx_store.customers[c]["active"] is False for c in gone)
    assert all(env.emx_store.customers[c]["lastName"] for c in gone)  # kept, not wiped
    norce = {c["Code"]: c for c in env.nc_store.snapshot()["customers"]}
    assert all(norce[c]["IsActive"] is False for c in gone if c in known_norce)
    still = {dataset.customer_id(i) for i in range(392)}
    assert not any(accounts[c].get("lockedDate") for c in still)
    assert all(env.emx_store.customers[c]["active"] is not False for c in still)

    dataset.size = 400  # they come back: sent again, active again
    back, _ = await run_pass(env, **opt_in)
    assert back.targets["emporix"].created == len(gone)
    assert all(env.emx_store.customers[c]["active"] is True for c in gone)
    accounts = {a["meta"]["customerId"]: a for a in env.store.accounts.values()}
    assert not any(accounts[c].get("lockedDate") for c in gone)


async def test_deactivation_is_skipped_when_too_many_would_go(env: Env) -> None:
    dataset = Dataset(300, seed=6, defects=False)
    await env.start(dataset, targets=("syncbatch", "emporix"))
    opt_in = {
        "targets__syncbatch__deactivate_missing": True,
        "targets__emporix__deactivate_missing": True,
    }
    await run_pass(env, **opt_in)
    stream = io.StringIO()
    configure(json_lines=True, stream=stream)

    dataset.size = 270  # 10% would go: the source looks broken
    report, _ = await run_pass(env, **opt_in)

    for target in ("syncbatch", "emporix"):
        assert report.targets[target].deactivated == 0
        assert report.targets[target].deactivation_skipped == 30
    assert all(c.get("active") is not False for c in env.emx_store.customers.values())
    warnings = [json.loads(line) for line in stream.getvalue().splitlines()]
    skipped = [w for w in warnings if w["msg"].startswith("deactivation skipped")]
    assert {w["target"] for w in skipped} == {"syncbatch", "emporix"}
    assert skipped[0]["missing"] == 30 and skipped[0]["known"] == 300


async def test_dlq_list_and_replay_send_only_the_dead_letters_again(env: Env) -> None:
    dataset = Dataset(300, seed=4, defects=False)
    taken = dataset.record(7)
    await env.start(dataset, targets=("emporix",))
    env.emx_store.seed_customer("EXT-9", {"contactEmail": taken["email"], "firstName": "x"})
    first, _ = await run_pass(env)
    assert first.targets["emporix"].dead_lettered == 1
    settings = env.settings()
    out = io.StringIO()

    assert dlq_list(settings, Console(file=out, width=200)) == 1
    assert taken["customer_id"] in out.getvalue()
    assert "EXT-9" in out.getvalue()

    env.emx_store.delete_customer("EXT-9")  # the conflict is resolved in Emporix
    code, report = await dlq_replay(settings, Console(file=io.StringIO()))

    assert code == 0 and report is not None
    target = report.targets["emporix"]
    assert (target.sent, target.created, target.unchanged) == (1, 1, 0)
    assert env.emx_store.customers[taken["customer_id"]]["contactEmail"] == taken["email"]
    async with StateStore(settings.state.path) as store:
        assert await store.dead_letters() == []
    assert dlq_list(settings, Console(file=io.StringIO())) == 0


async def test_status_lists_passes_and_counts(env: Env) -> None:
    await env.start(Dataset(200, seed=1))
    await run_pass(env)
    await run_pass(env)
    out = io.StringIO()
    status(env.settings(), Console(file=out, width=200))
    text = out.getvalue()
    assert re.search(r"\b2\b.*dead_letters", text)
    assert "syncbatch: 198 customers confirmed, 2 dead letters" in text


async def test_logs_and_reasons_hold_no_personal_data_or_secret(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = Dataset(1_000, seed=12)
    faults = FaultPlan(seed=3, error_rate=0.05, throttle_rate=0.05, retry_after=0.01)
    await env.start(
        dataset,
        targets=ALL,
        sb=sb_config(
            faults=faults, item_error_rate=0.05, reject_user_names=(dataset.record(3)["email"],)
        ),
        emporix=EmporixEmulatorConfig(faults=faults, revoke_after_requests=200),
    )
    taken = dataset.record(5)
    env.emx_store.seed_customer("EXT-1", {"contactEmail": taken["email"], "firstName": "x"})
    logs = io.StringIO()
    configure(json_lines=True, level=logging.DEBUG, stream=logs)
    report, _ = await run_pass(env)
    console = io.StringIO()
    render_summary(report, Console(file=console, width=200))
    async with StateStore(env.settings().state.path) as store:
        reasons = [f"{d.customer_id} {d.reason}" for d in await store.dead_letters()]
    text = "\n".join(
        [logs.getvalue(), console.getvalue(), *reasons, json.dumps(report.targets, default=str)]
    )

    assert "dead-lettered" in logs.getvalue() and len(reasons) > len(dataset.defects)
    secrets = [MAN_TOKEN, SB_TOKEN, EmporixEmulatorConfig().client_secret,
               NorceEmulatorConfig().client_secret, "Bearer "]  # fmt: skip
    for secret in secrets:
        assert secret not in text
    lowered = text.lower()
    for raw in dataset.records():
        personal = [raw.get("email"), f"{raw.get('firstName')} {raw.get('lastName')}"]
        address = raw.get("address") or {}
        personal += [address.get("phone"), address.get("address1")]
        for value in personal:
            if isinstance(value, str) and len(value.strip()) > 6:
                assert value.strip().lower() not in lowered, (raw["customer_id"], value)


async def test_the_state_failing_at_the_end_of_a_pass_is_one_error(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A state store that fails as the pass ends (its database restarted, say) ends the run
    with that one error, never an exception group (which the CLI would print as a trace)."""
    await env.start(Dataset(50, seed=2))

    async def broken(*args: object) -> None:
        raise StateError("state store postgresql://x@h/db: the connection is closed")

    monkeypatch.setattr(StateStore, "finish_pass", broken)
    with pytest.raises(StateError, match="the connection is closed"):
        await run_once(env.settings(), show_progress=False, handle_signals=False)
