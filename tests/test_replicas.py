"""Two ``pipeline serve`` replicas on one PostgreSQL state: one runs the passes, the other
stands by (ready, ``pipeline_role{role="standby"}``); passes never overlap, and when the active
one is killed the standby takes over within one interval."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import anyio
import pytest

from pipeline.stack import config_toml, running_stack
from tests.kit.postgres import PostgresServer
from tests.processes import free_port_range, get_json, wait_for

INTERVAL = 2.0


def role(port: int) -> str | None:
    """The role a replica's /metrics says, if it answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
            text = answer.read().decode()
    except OSError:
        return None
    for name in ("active", "standby"):
        if f'pipeline_role{{role="{name}"}} 1.0' in text:
            return name
    return None


@pytest.fixture
def replicas(tmp_path: Path, postgres_url: PostgresServer) -> Iterator[dict[str, Any]]:
    """Emulators, a configuration on a fresh database, and a way to start replicas."""
    started: list[subprocess.Popen[str]] = []

    async def serve_stack(ready: Any, done: anyio.Event) -> None:
        async with running_stack(400, names=["source", "syncbatch"], rate_per_second=None) as s:
            await ready(s)
            await done.wait()

    holder: dict[str, Any] = {}
    with anyio.from_thread.start_blocking_portal() as portal:
        done = portal.call(anyio.Event)
        got = portal.call(anyio.Event)

        async def ready(s: Any) -> None:
            holder["stack"] = s
            got.set()

        portal.start_task_soon(serve_stack, ready, done)
        portal.call(got.wait)
        stack = holder["stack"]
        config = stack.config(str(tmp_path / "seen" / "state.sqlite3"))
        config["state"]["url"] = postgres_url.new_database()
        config["state"]["password_env"] = "STATE_PASSWORD"
        config["serve"] = {"interval_seconds": INTERVAL, "grace_seconds": 1.0}
        env = {
            **os.environ,
            **stack.credentials(),
            "STATE_PASSWORD": postgres_url.password,
            "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        }

        def start(name: str) -> tuple[subprocess.Popen[str], int]:
            port = free_port_range(1)
            path = tmp_path / f"{name}.toml"
            path.write_text(config_toml({**config, "metrics": {"listen": f"127.0.0.1:{port}"}}))
            command = [sys.executable, "-m", "pipeline", "serve", "--config", str(path)]
            proc = subprocess.Popen(
                command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True
            )
            started.append(proc)
            return proc, port

        def status(name: str) -> str:
            command = [sys.executable, "-m", "pipeline", "status", "--config"]
            done = subprocess.run(
                [*command, str(tmp_path / f"{name}.toml")],
                env={**env, "COLUMNS": "200"},
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            return done.stdout + done.stderr

        try:
            yield {
                "start": start,
                "status": status,
                "url": config["state"]["url"],
                "server": postgres_url,
            }
        finally:
            for proc in started:
                if proc.poll() is None:
                    proc.kill()
                proc.wait(10)
            portal.call(done.set)


@pytest.mark.postgres
@pytest.mark.deadline(120)
def test_two_replicas_one_runs_passes_and_the_standby_takes_over(
    replicas: dict[str, Any],
) -> None:
    first, first_port = replicas["start"]("first")
    wait_for(lambda: role(first_port) == "active", timeout=30)
    second, second_port = replicas["start"]("second")
    wait_for(lambda: role(second_port) == "standby", timeout=30)
    assert get_json(f"http://127.0.0.1:{second_port}/readyz")["ready"] is True
    said = replicas["status"]("first")
    assert (
        f"held (active replica, or a pass) by pipeline {socket.gethostname()}:{first.pid}" in said
    )
    server: PostgresServer = replicas["server"]

    def passes() -> list[tuple[Any, ...]]:
        with server.connect(replicas["url"]) as conn:
            return list(
                conn.execute("SELECT id, started_at, finished_at, status FROM passes ORDER BY id")
            )

    wait_for(lambda: len(passes()) >= 2, timeout=30)
    assert role(second_port) == "standby"  # still: one replica runs the passes
    first.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    first.wait(10)
    wait_for(lambda: role(second_port) == "active", timeout=30, interval=0.05)
    took = time.monotonic() - killed
    assert took <= INTERVAL + 1.0, f"the standby took {took:.1f} s to take over"
    before = len(passes())
    wait_for(lambda: len(passes()) >= before + 1 and passes()[-1][3] != "running", timeout=30)
    second.send_signal(signal.SIGTERM)
    assert second.wait(30) == 0

    history = passes()
    # One pass at a time: each began after the one before it ended. The killed replica's
    # pass never finished (marked interrupted by the next pass): it ended with its process,
    # before the standby took over.
    for (_, _, finished, _), (_, next_start, _, _) in pairwise(history):
        if finished is not None:
            assert finished <= next_start
    unfinished = [p for p in history if p[2] is None]
    assert len(unfinished) <= 1 and all(p[3] in ("running", "interrupted") for p in unfinished)
