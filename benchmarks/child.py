"""The interface every ``bench_*.py`` child exposes: ``run(customers, endpoints) -> Measured``.

A child is started as ``python -m benchmarks.bench_NAME N [--source URL] [--syncbatch URL]``
and prints exactly one JSON object on stdout: ``{"records": n, "seconds": s, ...}`` where
``seconds`` is the child's own timer around the measured work (set-up, imports and data
generation excluded). This module is standard library only, so the plain client stays plain.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

__all__ = ["DEMO_TOKENS", "PAGE_SIZE", "Endpoints", "Measured", "Runner", "child_main"]

DEMO_TOKENS = {
    "MAN_TOKEN": "demo-man-token",
    "SYNCBATCH_TOKEN": "demo-syncbatch-token",
    "EMPORIX_CLIENT_ID": "demo-emporix-client",
    "EMPORIX_CLIENT_SECRET": "demo-emporix-secret",
    "NORCE_CLIENT_ID": "demo-norce-client",
    "NORCE_CLIENT_SECRET": "demo-norce-secret",
}
"""The credentials the emulators accept (``pipeline emulate`` prints them)."""

PAGE_SIZE = 1000


class Endpoints(NamedTuple):
    """Where a peer reads (the MAN emulator's paged endpoint) and writes (sync-batch's base)."""

    source: str
    syncbatch: str


class Measured(NamedTuple):
    """What a child measured: records handled and the seconds its timer saw, plus extras."""

    records: int
    seconds: float
    extra: dict[str, Any]


Runner = Callable[[int, Endpoints | None], Measured]
"""``run(customers, endpoints)``: endpoints is None for a child that needs no network."""


def child_main(run: Runner, argv: Sequence[str] | None = None) -> int:
    """Parse the child's arguments, call ``run`` and print its one JSON line."""
    parser = argparse.ArgumentParser(description="one benchmark child; prints one JSON line")
    parser.add_argument("customers", type=int)
    parser.add_argument("--source", help="the MAN emulator's paged endpoint")
    parser.add_argument("--syncbatch", help="the sync-batch emulator's base URL")
    args = parser.parse_args(argv)
    endpoints = None
    if args.source and args.syncbatch:
        endpoints = Endpoints(args.source, args.syncbatch)
    measured = run(args.customers, endpoints)
    line = {"records": measured.records, "seconds": round(measured.seconds, 6), **measured.extra}
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()
    return 0
