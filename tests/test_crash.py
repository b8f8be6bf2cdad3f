"""Crash tests: the pipeline process killed with SIGKILL at random points of a pass, then run
again; the final stores are exactly right and the state store is not corrupted."""

from __future__ import annotations

import os
import random
import signal
import subprocess
from pathlib import Path

import pytest

from pipeline.emulators import Dataset
from pipeline.emulators.man.dataset import BUSINESS_UNITS
from tests.kit.feeds import write_feed
from tests.processes import emulate, get_json, pipeline, query, wait_for

CUSTOMERS = 2_000
# More kill points with CRASH_SEEDS=1,2,...,20 in the environment.
SEEDS = [int(s) for s in os.environ.get("CRASH_SEEDS", "1,2,3").split(",")]
PLAN = "[syncbatch.faults]\nlatency = 0.02\n[norce]\njob_delay = 0.05\ncompanies = [{}]\n".format(
    ", ".join(f'"{unit}"' for unit in BUSINESS_UNITS)
)


def config(tmp_path: Path, urls: dict[str, str]) -> tuple[Path, Path]:
    state = tmp_path / "state.sqlite3"
    path = write_feed(
        tmp_path / "pipeline.toml",
        urls,
        state,
        source={"max_in_flight": 2},
        tables={"flow": {"queue_size": 2}},
        syncbatch={"batch_size": 20, "max_in_flight": 2},
        norce={"batch_size": 50, "poll_initial_seconds": 0.01},
    )
    return path, state


@pytest.mark.parametrize("seed", SEEDS)
def test_sigkill_at_a_random_point_then_rerun_ends_exactly_right(tmp_path: Path, seed: int) -> None:
    dataset = Dataset(CUSTOMERS)  # what pipeline emulate serves
    records = {r["customer_id"]: r for r in dataset.records()}
    valid = set(records) - set(dataset.defects)
    ghosts = {c for c in valid if records[c]["businessUnit"] not in BUSINESS_UNITS}
    kill_after = random.Random(seed).randint(0, 3 * len(valid) // 2)  # confirmations seen
    with emulate(CUSTOMERS, tmp_path, PLAN) as urls:
        path, state = config(tmp_path, urls)
        proc = pipeline("run", "--config", str(path), stderr=subprocess.DEVNULL)
        wait_for(lambda: len(query(state, "SELECT 1 FROM confirmed")) >= kill_after)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

        rerun = pipeline("run", "--config", str(path), stderr=subprocess.DEVNULL)
        assert rerun.wait(120) == 3  # invalid records and unknown companies are dead-lettered

        accounts = [a for c in get_json(f"{urls['syncbatch']}/_admin/store") for a in c["accounts"]]
        assert sorted(a["meta"]["customerId"] for a in accounts) == sorted(valid)
        norce = get_json(f"{urls['norce']}/_admin/store")["customers"]
        assert sorted(c["Code"] for c in norce) == sorted(valid - ghosts)
        assert query(state, "PRAGMA integrity_check") == [("ok",)]
        confirmed = query(state, "SELECT target, COUNT(*) FROM confirmed GROUP BY target")
        assert dict(confirmed) == {"syncbatch": len(valid), "norce": len(valid - ghosts)}
        dead = query(state, "SELECT target, COUNT(*) FROM dead_letters GROUP BY target")
        expected_dead = {
            "syncbatch": len(dataset.defects),
            "norce": len(dataset.defects) + len(ghosts),
        }
        assert dict(dead) == expected_dead
