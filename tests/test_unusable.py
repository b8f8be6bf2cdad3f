"""A target that fails every request the same way stops for the pass (issue 12, item 8)."""

from __future__ import annotations

import socket

from pipeline.emulators import Dataset
from pipeline.records import Ack
from pipeline.state.store import StateStore
from pipeline.unusable import FirstFailures
from tests.conftest import Env
from tests.kit.passes import run_pass


def failed(*ids: str, reason: str = "request failed: POST http://h/x failed") -> list[Ack]:
    return [Ack("t", i, "dead", reason=reason, request_failed=True) for i in ids]


def test_three_batches_failed_the_same_way_stop_the_target() -> None:
    first = FirstFailures("t")
    assert first.observe(failed("a", "b")) is None
    assert first.observe(failed("c")) is None
    verdict = first.observe(failed("d", "e"))
    assert verdict is not None
    assert verdict.startswith("the first 3 batches failed whole, every record the same way")
    assert "request failed: POST http://h/x failed" in verdict
    assert first.observe(failed("f")) is None  # said once


def test_the_record_id_in_a_reason_does_not_make_it_another_way() -> None:
    first = FirstFailures("t", limit=2)
    first.observe([Ack("t", "c1", "dead", reason="PUT http://h/c1 failed", request_failed=True)])
    verdict = first.observe(
        [Ack("t", "c2", "dead", reason="PUT http://h/c2 failed", request_failed=True)]
    )
    assert verdict is not None and "PUT http://h/<id> failed" in verdict


def test_an_answer_or_another_failure_ends_the_watch() -> None:
    for second in (
        [Ack("t", "x", "created", hash=b"h")],
        [Ack("t", "x", "dead", reason="UserExists: refused")],  # refused: the target answered
        failed("x", reason="request failed: another way"),
        [*failed("x"), *failed("y", reason="request failed: another way")],
    ):
        first = FirstFailures("t", limit=2)
        first.observe(failed("a"))
        assert first.observe(second) is None
        assert first.observe(failed("b")) is None
        assert first.observe(failed("c")) is None


async def test_a_target_refusing_every_connection_stops_and_leaves_its_records(env: Env) -> None:
    dataset = Dataset(500, seed=4, defects=False)
    await env.start(dataset, targets=("syncbatch", "emporix"))
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    report, _ = await run_pass(
        env,
        targets__syncbatch__url=f"http://127.0.0.1:{closed}",
        targets__syncbatch__max_in_flight=1,
        targets__syncbatch__retry={
            "initial_seconds": 0.001,
            "max_seconds": 0.01,
            "max_attempts": 2,
        },
    )
    syncbatch = report.targets["syncbatch"]
    assert syncbatch.error is not None
    assert syncbatch.error.startswith("the first 3 batches failed whole, every record the same")
    assert f"127.0.0.1:{closed}" in syncbatch.error
    assert syncbatch.dead_lettered == 3 * 50  # the batches that showed it; no more
    assert syncbatch.skipped == 500 - 150  # left for the next pass
    assert report.targets["emporix"].created == 500  # the other target goes on
    async with StateStore(env.settings().state.path) as store:
        assert len(await store.dead_letters("syncbatch")) == 150
