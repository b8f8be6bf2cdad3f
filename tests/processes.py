"""Helpers for tests that run the pipeline as a user does: separate processes, real signals."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipeline.stack import systems

PYTHON = sys.executable
_RUNNING: list[dict[str, str]] = []
"""The credentials of each ``emulate`` block running now: ``pipeline()`` passes them on."""


def free_port_range(count: int = 4) -> int:
    """A first port such that it and the ``count - 1`` after it are free."""
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = int(a.getsockname()[1])
        sockets = [socket.socket() for _ in range(count)]
        try:
            for offset, s in enumerate(sockets):
                s.bind(("127.0.0.1", port + offset))
            return port
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no free port range")


SYNCBATCH_IDS_TOML = """\
account_ids = "range"
account_id_range = [1, 1000000]
organisation_id_range = [1, 1000]
"""
"""The sync-batch id keys of a test feed (in a ``[targets.syncbatch]`` table)."""


class Emulation(dict[str, str]):
    """A running ``pipeline emulate --json``: the URL a configuration gives each system (by
    name: ``source``, ``syncbatch``, ...), and the document it printed."""

    def __init__(self, description: dict[str, Any]) -> None:
        systems: dict[str, dict[str, Any]] = description["systems"]
        super().__init__({name: s["config"].get("url", s["url"]) for name, s in systems.items()})
        self.description = description
        self.systems = systems
        self.config: dict[str, Any] = description["config"]
        self.credentials = {k: v for s in systems.values() for k, v in s["credentials"].items()}


@contextmanager
def emulate(customers: int, tmp_path: Path, plan: str = "") -> Iterator[Emulation]:
    """``pipeline emulate --json`` in a subprocess; yields what it printed. ``pipeline()``
    started meanwhile gets the emulators' credentials."""
    port = free_port_range(len(systems()))
    command = [PYTHON, "-m", "pipeline", "emulate", "--json", "--customers", str(customers)]
    command += ["--port", str(port)]
    if plan:
        plan_path = tmp_path / "plan.toml"
        plan_path.write_text(plan)
        command += ["--plan", str(plan_path)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    try:
        line = proc.stdout.readline()  # one JSON document on one line, once all are serving
        assert line.startswith("{"), f"emulate printed no JSON: {line!r}"
        running = Emulation(json.loads(line))
        _RUNNING.append(running.credentials)
        try:
            yield running
        finally:
            _RUNNING.remove(running.credentials)
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.load(answer)


def pipeline(*args: str, env: dict[str, str] | None = None, **popen: Any) -> subprocess.Popen[str]:
    """Start ``pipeline ARGS`` with the running emulators' credentials in its environment."""
    credentials = {k: v for running in _RUNNING for k, v in running.items()}
    return subprocess.Popen(
        [PYTHON, "-m", "pipeline", *args],
        env={**os.environ, **credentials, **(env or {})},
        text=True,
        **popen,
    )


def query(path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Read the state store of another process (WAL allows it while that one writes)."""
    if not path.exists():
        return []
    conn = sqlite3.connect(path, timeout=5)
    try:
        return list(conn.execute(sql, params))
    except sqlite3.OperationalError:
        return []  # the schema is not there yet
    finally:
        conn.close()


def wait_for(condition: Any, timeout: float = 30.0, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)
