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

PYTHON = sys.executable
DEMO_ENV = {
    "MAN_TOKEN": "demo-man-token",
    "SYNCBATCH_TOKEN": "demo-syncbatch-token",
    "EMPORIX_CLIENT_ID": "demo-emporix-client",
    "EMPORIX_CLIENT_SECRET": "demo-emporix-secret",
    "NORCE_CLIENT_ID": "demo-norce-client",
    "NORCE_CLIENT_SECRET": "demo-norce-secret",
}


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


@contextmanager
def emulate(customers: int, tmp_path: Path, plan: str = "") -> Iterator[dict[str, str]]:
    """``pipeline emulate`` in a subprocess; yields the URLs it prints."""
    port = free_port_range()
    command = [PYTHON, "-m", "pipeline", "emulate", "--customers", str(customers)]
    command += ["--port", str(port)]
    if plan:
        plan_path = tmp_path / "plan.toml"
        plan_path.write_text(plan)
        command += ["--plan", str(plan_path)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    urls: dict[str, str] = {}
    deadline = time.monotonic() + 60
    names = {"MAN source:": "source", "sync-batch:": "syncbatch", "emporix:": "emporix",
             "norce:": "norce"}  # fmt: skip
    while len(urls) < len(names) and time.monotonic() < deadline:
        line = proc.stdout.readline()
        for prefix, name in names.items():
            if line.startswith(prefix):
                urls[name] = line.split()[-1]
    try:
        assert len(urls) == len(names), "emulate did not print its URLs"
        yield urls
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.load(answer)


def pipeline(*args: str, env: dict[str, str] | None = None, **popen: Any) -> subprocess.Popen[str]:
    """Start ``pipeline ARGS`` with the emulators' credentials in its environment."""
    return subprocess.Popen(
        [PYTHON, "-m", "pipeline", *args],
        env={**os.environ, **DEMO_ENV, **(env or {})},
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
