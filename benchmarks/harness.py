"""Process plumbing: the emulators in a subprocess, and a measured child with its resources.

The parent never measures itself: every measured program is a child started with
``subprocess.Popen`` and reaped with ``os.wait4``, whose ``rusage`` gives the child's peak RSS
(``ru_maxrss``, KiB on Linux) and CPU time (user + system); wall time is taken around it.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from pipeline.stack import systems

__all__ = [
    "PYTHON",
    "ROOT",
    "BenchError",
    "ChildRun",
    "Emulators",
    "child_env",
    "emulators",
    "free_port_range",
    "get_json",
    "process_cpu_seconds",
    "run_child",
]

PYTHON = sys.executable
ROOT = Path(__file__).resolve().parent.parent
"""The checkout holding ``benchmarks/``: children import it from there, whatever their cwd."""
_START_TIMEOUT = 60.0
_FRAME = "+-|^~ "


class BenchError(Exception):
    """A scenario could not be measured: the message says what failed, ``detail`` how."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail

    @classmethod
    def from_child(cls, what: str, returncode: int | None, stderr: str) -> BenchError:
        """A child that failed: its exit code and the last line of its stderr."""
        lines = [line for line in stderr.splitlines() if line.strip()]
        # The last line that says something: not the frame of an exception group's traceback.
        said = [
            text for text in (line.strip().lstrip("| ") for line in lines) if text.strip(_FRAME)
        ]
        last = said[-1] if said else "nothing on stderr"
        exited = "" if returncode is None else f" (exit code {returncode})"
        return cls(f"{what}{exited}: {last}", "\n".join(lines[-25:]))


class ChildRun(NamedTuple):
    """A finished child: exit code, wall and CPU seconds, peak RSS and its output."""

    returncode: int
    wall_seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    stdout: str
    stderr: str

    def json_line(self) -> dict[str, Any]:
        """The last stdout line that is a JSON object (a ``bench_*.py`` child's result)."""
        for line in reversed(self.stdout.splitlines()):
            if line.startswith("{"):
                found: dict[str, Any] = json.loads(line)
                return found
        raise BenchError.from_child("no JSON line on stdout", self.returncode, self.stderr)


class Emulators(NamedTuple):
    """A running ``pipeline emulate --json``: per system (by name) what it printed (``url``,
    ``credentials``, ``config``: its configuration section), and its process id."""

    systems: dict[str, dict[str, Any]]
    pid: int

    def url(self, name: str) -> str:
        """Where the system's emulator listens (its ``/_admin`` routes are there)."""
        url: str = self.systems[name]["url"]
        return url

    def section(self, name: str) -> dict[str, Any]:
        """The system's configuration section (a copy)."""
        return dict(self.systems[name]["config"])

    @property
    def credentials(self) -> dict[str, str]:
        """Every emulator's variables (name -> value) for a child's environment."""
        return {k: v for s in self.systems.values() for k, v in s["credentials"].items()}


def free_port_range(count: int) -> int:
    """A first port such that it and the ``count - 1`` ports after it can be bound now."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = int(probe.getsockname()[1])
        if first + count > 65535:
            continue
        sockets = [socket.socket() for _ in range(count)]
        try:
            for offset, sock in enumerate(sockets):
                sock.bind(("127.0.0.1", first + offset))
            return first
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise BenchError(f"found no {count} free consecutive ports on 127.0.0.1")


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment plus ``extra`` (the emulators' credentials, say), without
    ``PIPELINE__*`` overrides (a stray override would silently change what is measured)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE__")}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.update(extra or {})
    return env


def _printed(out: Path) -> dict[str, Any] | None:
    """The JSON document ``emulate --json`` printed (one line), once it is whole."""
    text = out.read_text()
    if not text.endswith("\n"):
        return None
    found: dict[str, Any] = json.loads(text.splitlines()[0])
    return found


def _start_emulators(
    customers: int, plan: Path, workdir: Path
) -> tuple[subprocess.Popen[bytes], Emulators]:
    port = free_port_range(len(systems()))
    command = [PYTHON, "-m", "pipeline", "emulate", "--json", "--customers", str(customers)]
    command += ["--port", str(port), "--plan", str(plan)]
    out, log = workdir / "emulate.out", workdir / "emulate.log"
    with out.open("w") as stdout, log.open("w") as stderr:  # unbuffered: see child_env
        proc = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=child_env())
    deadline = time.monotonic() + _START_TIMEOUT
    printed = _printed(out)
    # Ends when the document is printed, the process ended (a port taken meanwhile, a bad
    # plan) or the deadline passed.
    while printed is None and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
        printed = _printed(out)
    if printed is None:
        _stop(proc)
        raise BenchError.from_child(
            "pipeline emulate printed no description", proc.returncode, log.read_text()
        )
    return proc, Emulators(systems=printed["systems"], pid=proc.pid)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # emulate stops cleanly on Ctrl-C
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextmanager
def emulators(customers: int, workdir: Path, plan: str) -> Iterator[Emulators]:
    """``pipeline emulate --json --customers N --plan PLAN`` in a subprocess while the block
    runs.

    Raises:
        BenchError: it did not print its description (tried three times, on fresh ports).
    """
    plan_path = workdir / "plan.toml"
    plan_path.write_text(plan)
    for attempt in range(3):
        try:
            proc, running = _start_emulators(customers, plan_path, workdir)
            break
        except BenchError:
            if attempt == 2:
                raise
    try:
        yield running
    finally:
        _stop(proc)


def run_child(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    workdir: Path,
    timeout: float,
    on_tick: Callable[[], None] | None = None,
    tick_seconds: float = 0.25,
) -> ChildRun:
    """Run ``argv`` to its end and measure it; ``on_tick`` is called every ``tick_seconds``.

    Raises:
        BenchError: it ran longer than ``timeout`` seconds. Whatever is raised here (by
            ``on_tick`` too), the child is killed first.
    """
    out_path, err_path = workdir / "child.out", workdir / "child.err"
    reaped: list[tuple[float, int, resource.struct_rusage]] = []
    with out_path.open("w") as out, err_path.open("w") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(list(argv), stdout=out, stderr=err, env=dict(env), cwd=workdir)

    def reap() -> None:  # blocks in wait4, so the wall time is exact
        _, status, usage = os.wait4(proc.pid, 0)
        reaped.append((time.perf_counter(), status, usage))

    reaper = threading.Thread(target=reap, daemon=True)
    reaper.start()
    deadline = started + timeout
    try:
        while reaper.is_alive():
            reaper.join(min(tick_seconds, max(0.0, deadline - time.perf_counter())))
            if not reaper.is_alive():
                break
            if time.perf_counter() >= deadline:
                raise BenchError(f"{' '.join(argv[1:4])} ... still running after {timeout:.0f} s")
            if on_tick is not None:
                on_tick()
    except BaseException:  # a timeout, a failing tick, Ctrl-C: never leave the child behind
        proc.kill()
        reaper.join()
        raise
    ended, status, usage = reaped[0]
    proc.returncode = os.waitstatus_to_exitcode(status)
    return ChildRun(
        returncode=proc.returncode,
        wall_seconds=ended - started,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=usage.ru_maxrss / 1024,
        stdout=out_path.read_text(),
        stderr=err_path.read_text(),
    )


def get_json(url: str) -> Any:
    """GET ``url`` and decode its JSON answer (the emulators' ``/_admin`` routes)."""
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.load(answer)


def process_cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user + system) used so far by a running process; None off Linux."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
