"""Stopping and killing a pass in a real process, then resuming it."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

from pipeline.emulators import Dataset
from tests.kit.feeds import write_feed
from tests.processes import emulate, get_json, pipeline, query, wait_for

CUSTOMERS = 3_000
PAGE = 100
OVERLAP = 10  # the default: a resume re-reads the records just below the checkpoint
# A slow target, so that a pass is still running when the signal comes.
PLAN = "[syncbatch.faults]\nlatency = 0.04\n"


def config(tmp_path: Path, urls: dict[str, str]) -> tuple[Path, Path]:
    state = tmp_path / "state.sqlite3"
    path = write_feed(
        tmp_path / "pipeline.toml",
        urls,
        state,
        source={"page_size": PAGE, "max_in_flight": 2},
        tables={"flow": {"queue_size": 2}, "serve": {"grace_seconds": 20}},
        syncbatch={"batch_size": 25, "max_in_flight": 2},
    )
    return path, state


def stored(urls: dict[str, str]) -> dict[str, dict[str, Any]]:
    customers = get_json(f"{urls['syncbatch']}/_admin/store")
    return {a["meta"]["customerId"]: a for c in customers for a in c["accounts"]}


def valid_ids(urls: dict[str, str]) -> set[str]:
    dataset = Dataset(CUSTOMERS)  # the seed pipeline emulate uses
    return {dataset.customer_id(i) for i in range(CUSTOMERS)} - set(dataset.defects)


def run_to_end(path: Path, tmp_path: Path, name: str) -> dict[str, Any]:
    report = tmp_path / f"{name}.json"
    proc = pipeline("run", "--config", str(path), "--report", str(report),
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    assert proc.wait(120) == 3  # the dataset's invalid records are dead-lettered
    result: dict[str, Any] = json.loads(report.read_text())
    return result


def confirmed(state: Path) -> set[str]:
    return {row[0] for row in query(state, "SELECT customer_id FROM confirmed")}


def test_sigterm_mid_pass_drains_saves_state_and_exits_0(tmp_path: Path) -> None:
    with emulate(CUSTOMERS, tmp_path, PLAN) as urls:
        path, state = config(tmp_path, urls)
        proc = pipeline("run", "--config", str(path), stderr=subprocess.PIPE)
        wait_for(lambda: len(confirmed(state)) >= 300)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)

        assert proc.returncode == 0, err
        assert "stop requested" in err
        ((status, checkpoint),) = query(state, "SELECT status, checkpoint FROM passes")
        assert status == "stopped"
        assert 0 < checkpoint < CUSTOMERS
        held = stored(urls)
        done = confirmed(state)
        assert done <= set(held)  # nothing unconfirmed is marked confirmed
        assert len(done) < len(valid_ids(urls))  # it did stop early

        report = run_to_end(path, tmp_path, "resume")

        assert report["source"]["start_offset"] == checkpoint - OVERLAP
        assert report["source"]["pages"] < CUSTOMERS // PAGE
        assert set(stored(urls)) == valid_ids(urls)
        assert confirmed(state) == valid_ids(urls)


def test_sigkill_mid_pass_then_resume_writes_every_record(tmp_path: Path) -> None:
    with emulate(CUSTOMERS, tmp_path, PLAN) as urls:
        path, state = config(tmp_path, urls)
        proc = pipeline("run", "--config", str(path), stderr=subprocess.DEVNULL)
        wait_for(lambda: (query(state, "SELECT checkpoint FROM passes") or [(0,)])[0][0] >= 800)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        ((status, checkpoint),) = query(state, "SELECT status, checkpoint FROM passes")
        assert status == "running"  # killed: it never got to say otherwise
        writes_before = get_json(f"{urls['syncbatch']}/_admin/stats")["writes"]

        report = run_to_end(path, tmp_path, "resume")

        held = stored(urls)
        valid = valid_ids(urls)
        assert set(held) == valid
        assert len({a["userName"] for a in held.values()}) == len(valid)  # no account twice
        assert report["source"]["start_offset"] == checkpoint - OVERLAP > 0
        assert report["source"]["pages"] < CUSTOMERS // PAGE
        # Only what was written but not yet recorded when the process died is written again:
        # at most the writers' batches (2 x 25) and the acks queued for the store (4 x 25).
        writes = get_json(f"{urls['syncbatch']}/_admin/stats")["writes"]
        assert writes_before < len(valid)
        assert 0 <= writes - len(valid) <= 2 * 25 + 4 * 25
        assert confirmed(state) == valid
        assert query(state, "PRAGMA integrity_check") == [("ok",)]
        # The next pass found the killed one still "running" and said what became of it.
        statuses = query(state, "SELECT status FROM passes ORDER BY id")
        assert statuses == [("interrupted",), ("dead_letters",)]
