"""The command line: run, serve, demo, emulate, dlq, status, check-config (DESIGN §4)."""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio
from rich.console import Console

from pipeline import registry
from pipeline.admin import dlq_list, dlq_replay, status
from pipeline.config import StateSettings
from pipeline.config_load import load_settings, plugin_modules, settings_from_mapping
from pipeline.demo import DEMO_STATE, running_demo
from pipeline.errors import ConfigError, PipelineError
from pipeline.logs import configure as configure_logs
from pipeline.registry import build_targets
from pipeline.report import EXIT_ABORTED, EXIT_OK, EXIT_USAGE
from pipeline.runner import run_once, serve
from pipeline.sources.customers import CustomerSource
from pipeline.stack import Stack, config_toml, load_plan, running_stack, systems
from pipeline.state.copy import copy_state
from pipeline.state.store import StateStore
from pipeline.text import plain

__all__ = ["main"]

_ID_IN_REASON = re.compile(r"^Customer '[^']*':\s*")
_JOB_IN_REASON = re.compile(r"\bjob \d+")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pipeline", description="Sync MAN customer users into e-commerce platforms."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run one pass and exit")
    run.add_argument("--config", required=True, help="TOML configuration file")
    run.add_argument("--report", help="write the pass report as JSON to this file")
    run.add_argument("--dry-run", action="store_true", help="map and diff, write nothing")
    run.add_argument(
        "--target", action="append", dest="targets", metavar="NAME", help="only this target"
    )
    run.add_argument(
        "--restart", action="store_true", help="read from the start, not the last checkpoint"
    )

    serve = sub.add_parser("serve", help="run a pass every interval; serve /metrics")
    serve.add_argument("--config", required=True, help="TOML configuration file")
    serve.add_argument(
        "--restart", action="store_true", help="read from the start, not the last checkpoint"
    )

    dlq = sub.add_parser("dlq", help="dead letters: list or replay")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True)
    for name, text in (("list", "list dead letters"), ("replay", "send them again")):
        action = dlq_sub.add_parser(name, help=text)
        action.add_argument("--config", required=True, help="TOML configuration file")
        action.add_argument("--target", help="only this target's dead letters")

    state = sub.add_parser("state", help="the state store: copy it to another database")
    state_sub = state.add_subparsers(dest="state_command", required=True)
    copy = state_sub.add_parser(
        "copy", help="copy the whole state into an empty store (SQLite file <-> PostgreSQL)"
    )
    for side in ("from", "to"):
        copy.add_argument(
            f"--{side}",
            required=True,
            dest=f"{side}_store",
            metavar="FILE_OR_URL",
            help="a SQLite file, or postgresql://user@host:port/database",
        )
        copy.add_argument(
            f"--{side}-password-env",
            metavar="NAME",
            help="environment variable holding that PostgreSQL user's password",
        )

    status = sub.add_parser("status", help="last passes and per-target counts")
    status.add_argument("--config", required=True, help="TOML configuration file")
    status.add_argument("--passes", type=int, default=10, help="how many passes to show")

    demo = sub.add_parser("demo", help="run a pass against local emulators")
    demo.add_argument("--customers", type=_count, default=10_000)
    demo.add_argument("--state", default=DEMO_STATE, help=f"state file (default {DEMO_STATE})")
    demo.add_argument(
        "--rate-per-second", type=float, default=50.0, help="sync-batch requests per second"
    )
    demo.add_argument("--no-rate-limit", action="store_true", help="no rate limit on targets")
    demo.add_argument("--report", help="write the pass report as JSON to this file")
    demo.add_argument("--plan", help="TOML file of emulator behaviour and faults")

    count = len(systems())
    emulate = sub.add_parser("emulate", help="serve the emulators until stopped")
    emulate.add_argument("--customers", type=_count, default=10_000)
    emulate.add_argument("--host", default="127.0.0.1")
    emulate.add_argument(
        "--port",
        type=_first_port(count),
        default=8001,
        help=f"first of {count} consecutive ports, 0 for any free ones (default 8001)",
    )
    emulate.add_argument("--plan", help="TOML file of emulator behaviour and faults")
    emulate.add_argument(
        "--json",
        action="store_true",
        help="print the emulators (url, credentials, config) and a configuration as one JSON "
        "document",
    )

    check = sub.add_parser("check-config", help="validate a configuration file")
    check.add_argument("config")
    return parser


def _console() -> Console:
    # Not a terminal (CI, a pipe): a fixed width keeps the summary table's headers whole.
    return Console(file=sys.stderr, width=None if sys.stderr.isatty() else 110)


def _run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    code, _ = anyio.run(
        lambda: run_once(
            settings,
            targets=args.targets,
            dry_run=args.dry_run,
            restart=args.restart,
            report_path=args.report,
            console=_console(),
        )
    )
    return code


def _serve(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    configure_logs(json_lines=True)
    return anyio.run(lambda: serve(settings, restart=args.restart))


def _dlq(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    console = _console()
    if args.dlq_command == "list":
        dlq_list(settings, console, args.target)
        return EXIT_OK
    code, _ = anyio.run(lambda: dlq_replay(settings, console, args.target))
    return code


def _state(args: argparse.Namespace) -> int:
    def store(where: str, password_env: str | None, key: str) -> StateStore:
        read_only = key == "--from"  # the source is read, never changed
        if "://" in where:
            settings = StateSettings(url=where, password_env=password_env)
            try:
                return StateStore.open_settings(settings, read_only=read_only)
            except ConfigError as exc:  # name the option, not the configuration key
                raise ConfigError(str(exc).split(": ", 1)[-1], path=key) from exc
        if password_env is not None:
            raise ConfigError("applies to a PostgreSQL URL only", path=f"{key}-password-env")
        if read_only and not Path(where).is_file():
            raise ConfigError(f"no state file at {where}", path=key)
        return StateStore(where, read_only=read_only)

    source = store(args.from_store, args.from_password_env, "--from")
    destination = store(args.to_store, args.to_password_env, "--to")
    source.open_sync()
    try:
        destination.open_sync()
        try:
            counts = copy_state(source, destination)
        finally:
            destination.close_sync()
    finally:
        source.close_sync()
    rows = ", ".join(f"{n:,} {table}" for table, n in counts.items())
    print(f"copied {source.path} to {destination.path}: {rows}")
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    status(load_settings(args.config), _console(), args.passes)
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    console = _console()
    plan = load_plan(args.plan)
    rate = None if args.no_rate_limit else args.rate_per_second

    async def go() -> int:
        async with running_demo(args.customers, plan=plan, rate_per_second=rate) as stack:
            # The user's PIPELINE__* overrides are for their own feeds: never the demo's.
            settings = settings_from_mapping(stack.config(args.state), environ={})
            names = ", ".join(settings.targets.enabled())
            console.print(
                f"demo: {args.customers:,} customers from the MAN emulator to {names} "
                f"(emulated on 127.0.0.1); state in {args.state}"
            )
            _, report = await run_once(
                settings, total=args.customers, report_path=args.report, console=console
            )
        if report.status == "aborted":
            return EXIT_ABORTED
        dead = max((t.dead_lettered for t in report.targets.values()), default=0)
        if dead:
            console.print(
                f"{dead:,} records dead-lettered: the demo data holds deliberate defects "
                f"(all are in {args.state}, table dead_letters). By reason:"
            )
            async with StateStore(args.state, read_only=True) as store:
                letters = await store.dead_letters()
            kinds: dict[str, dict[str, set[str]]] = {}
            for letter in letters:
                # One line per kind of reason: drop the ids that make each one unique.
                kind = _ID_IN_REASON.sub("", letter.reason).split(" by customer ")[0]
                kind = _JOB_IN_REASON.sub("job N", kind)
                seen = kinds.setdefault(kind, {})
                seen.setdefault(letter.customer_id, set()).add(letter.target)
            all_targets = set(settings.targets.enabled())
            for reason, seen in sorted(kinds.items(), key=lambda kv: -len(kv[1])):
                where = set().union(*seen.values())
                only = "" if where == all_targets else f"[{', '.join(sorted(where))}] "
                line = f"  {len(seen):>6,}  {only}{reason}  (e.g. {min(seen)})"
                console.print(plain(line), highlight=False)
        return EXIT_OK

    return anyio.run(go)


def _emulate(args: argparse.Namespace) -> int:
    plan = load_plan(args.plan)

    async def go() -> None:
        async with running_stack(
            args.customers, host=args.host, base_port=args.port, plan=plan
        ) as stack:
            print(json.dumps(stack.description()) if args.json else _described(stack), flush=True)
            await anyio.sleep_forever()

    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(go)
    return EXIT_OK


def _described(stack: Stack) -> str:
    """The stack for a reader: each emulator's URL, the credentials, a configuration."""
    width = max(len(name) for name in stack.systems) + 2
    lines = [
        f"{name + ':':<{width}}{e.config.get('url', e.url)}" for name, e in stack.systems.items()
    ]
    lines.append("\n# the emulators' credentials:")
    lines.append("export " + " ".join(f"{k}={v}" for k, v in stack.credentials().items()))
    lines.append("\n# a configuration for these emulators:\n" + config_toml(stack.config()))
    return "\n".join(lines)


def _check_config(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    source = CustomerSource(settings.source)  # resolves the source's secrets
    if settings.targets.enabled():  # each made once: its secrets resolved
        names = ", ".join(t.name for t in build_targets(settings, StateStore(":memory:")))
    else:  # the source's shape can be checked alone
        names = "none (run and serve need at least one [targets.<name>] section)"
    print(f"{args.config}: ok; targets: {names}")
    for line in source.describe():
        print(line)
    for section in settings.targets.sections.values():
        for line in section.describe():
            print(line)
    return EXIT_OK


def _count(text: str) -> int:
    """A number of customers: a whole number, 0 or more."""
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"{number}: must be 0 or more")
    return number


def _first_port(count: int) -> Callable[[str], int]:
    """The first of the ``count`` ports ``emulate`` takes: 0 (any free ones) or a port with
    ``count - 1`` after it."""

    def parse(text: str) -> int:
        try:
            port = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a port: {text!r}") from None
        if port != 0 and not 1 <= port <= 65535 - (count - 1):
            raise argparse.ArgumentTypeError(f"{port}: the {count} ports must lie within 1..65535")
        return port

    return parse


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pipeline`` command; returns the exit code."""
    try:  # before the arguments: a plug-in's target takes part in their checks
        registry.load_plugins(plugin_modules())
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    args = _parser().parse_args(argv)
    configure_logs(json_lines=False)
    commands = {
        "run": _run,
        "serve": _serve,
        "dlq": _dlq,
        "status": _status,
        "state": _state,
        "demo": _demo,
        "emulate": _emulate,
        "check-config": _check_config,
    }
    try:
        return commands[args.command](args)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ABORTED
