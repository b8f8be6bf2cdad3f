"""One pass at a time on a state file: the lock, in real processes."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline.emulators import Dataset
from pipeline.errors import StateError
from pipeline.state.store import StateStore
from tests.kit.feeds import write_feed
from tests.processes import emulate, get_json, pipeline, query, wait_for

pytestmark = pytest.mark.timeout(180)

CUSTOMERS = 2_000
# A slow target: the first pass still runs when the second one starts.
PLAN = "[syncbatch.faults]\nlatency = 0.15\n"
HELD = re.compile(
    r"another pass holds the state \(pid (\d+), since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\)"
)
HOLD = """
import sys, time
from pipeline.state.store import StateStore
StateStore(sys.argv[1]).open_sync()
print("held", flush=True)
time.sleep(120)
"""


def config(
    tmp_path: Path, urls: dict[str, str], metrics: dict[str, str] | None = None
) -> tuple[Path, Path]:
    state = tmp_path / "state.sqlite3"
    tables: dict[str, dict[str, Any]] = {"serve": {"interval_seconds": 3600}}
    if metrics is not None:
        tables["metrics"] = metrics
    path = write_feed(
        tmp_path / "pipeline.toml",
        urls,
        state,
        tables=tables,
        syncbatch={"batch_size": 25, "max_in_flight": 2},
    )
    return path, state


def confirmed(state: Path) -> int:
    return int(query(state, "SELECT COUNT(*) FROM confirmed")[0][0] if state.exists() else 0)


def refused(*args: str) -> tuple[str, float]:
    """Run ``pipeline ARGS``, which must exit 1 at once with one line; return it."""
    started = time.monotonic()
    proc = pipeline(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    return err.strip(), time.monotonic() - started


def hold(state: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(state)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "held\n"
    return proc


def test_a_store_held_by_another_process_is_refused_until_it_is_killed(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite3"
    holder = hold(state)
    try:
        with pytest.raises(StateError) as raised:
            StateStore(state).open_sync()
        match = HELD.search(str(raised.value))
        assert match is not None, raised.value
        assert int(match.group(1)) == holder.pid
        assert str(state) in str(raised.value)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        assert holder.stdout is not None
        holder.stdout.close()
    store = StateStore(state)  # the kernel dropped the lock with the process
    store.open_sync()
    store.close_sync()


def test_a_second_run_exits_1_at_once_and_the_first_counts_right(tmp_path: Path) -> None:
    with emulate(CUSTOMERS, tmp_path, PLAN) as urls:
        path, state = config(tmp_path, urls)
        report = tmp_path / "first.json"
        first = pipeline("run", "--config", str(path), "--report", str(report),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        wait_for(lambda: confirmed(state) >= 100)

        line, seconds = refused("run", "--config", str(path))
        replay, _ = refused("dlq", "replay", "--config", str(path))
        # Reading is never refused nor blocked, and writes nothing.
        shown = pipeline("status", "--config", str(path), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)  # fmt: skip
        _, status_err = shown.communicate(timeout=30)
        listed = pipeline("dlq", "list", "--config", str(path), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)  # fmt: skip
        _, list_err = listed.communicate(timeout=30)
        still_running = first.poll() is None

        assert first.wait(120) == 3  # the dataset's invalid records are dead-lettered
        match = HELD.search(line)
        assert line.startswith("error: ") and match is not None, line
        assert int(match.group(1)) == first.pid
        assert HELD.search(replay) is not None, replay
        assert seconds < 15 and still_running
        assert shown.returncode == 0 and "running" in status_err, status_err
        assert listed.returncode == 0, list_err
        dataset = Dataset(CUSTOMERS)
        valid = CUSTOMERS - len(dataset.defects)
        counts = json.loads(report.read_text())["targets"]["syncbatch"]
        assert counts["created"] == valid
        accounts = [a for c in get_json(f"{urls['syncbatch']}/_admin/store") for a in c["accounts"]]
        assert len(accounts) == valid  # each written once: no second pass wrote any
        assert query(state, "SELECT status FROM passes") == [("dead_letters",)]


def test_a_run_while_serve_runs_exits_1_and_serve_goes_on(tmp_path: Path) -> None:
    with emulate(200, tmp_path) as urls:
        path, state = config(tmp_path, urls, {"listen": "127.0.0.1:0"})
        served = pipeline("serve", "--config", str(path),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            wait_for(lambda: query(state, "SELECT status FROM passes") == [("dead_letters",)])
            line, _ = refused("run", "--config", str(path))
            match = HELD.search(line)
            assert match is not None and int(match.group(1)) == served.pid, line
            assert served.poll() is None
        finally:
            served.send_signal(signal.SIGTERM)
            assert served.wait(30) == 0
        assert query(state, "SELECT COUNT(*) FROM passes") == [(1,)]
