"""The interface every ``bench_*.py`` child exposes: ``run(customers, endpoints) -> Measured``.

A child is started as ``python -m benchmarks.bench_NAME N [--source URL --source-token-env
VAR --syncbatch URL --syncbatch-token-env VAR]`` (the variables hold the emulators' tokens, as
``pipeline emulate --json`` names them) and prints exactly one JSON object on stdout:
``{"records": n, "seconds": s, ...}`` where ``seconds`` is the child's own timer around the
measured work (set-up, imports and data generation excluded). This module is standard library
only, so the plain client stays plain.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

__all__ = ["PAGE_SIZE", "Endpoints", "Measured", "Runner", "child_main"]

PAGE_SIZE = 1000


class Endpoints(NamedTuple):
    """Where a peer reads (the MAN emulator's paged endpoint) and writes (sync-batch's base),
    with the bearer token of each."""

    source: str
    syncbatch: str
    source_token: str
    syncbatch_token: str


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
    parser.add_argument("--source-token-env", help="the variable holding the source's token")
    parser.add_argument("--syncbatch", help="the sync-batch emulator's base URL")
    parser.add_argument("--syncbatch-token-env", help="the variable holding sync-batch's token")
    args = parser.parse_args(argv)
    endpoints = None
    if args.source and args.syncbatch:
        tokens = (os.environ[args.source_token_env], os.environ[args.syncbatch_token_env])
        endpoints = Endpoints(args.source, args.syncbatch, *tokens)
    measured = run(args.customers, endpoints)
    line = {"records": measured.records, "seconds": round(measured.seconds, 6), **measured.extra}
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()
    return 0
