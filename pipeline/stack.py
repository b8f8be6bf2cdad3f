"""The emulator stack: the MAN source and every registered target that declares an emulator
(:class:`~pipeline.targets.base.EmulatorSpec`), served on loopback, each described by an
:class:`Emulated` record (URL, credentials, configuration section). ``pipeline demo``,
``pipeline emulate`` (``--json`` prints :meth:`Stack.description`), the benchmarks and the
process tests all start the emulators here; nothing here names a target.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import msgspec

from pipeline import registry
from pipeline.emulators import serve_app
from pipeline.errors import ConfigError, PipelineError
from pipeline.sources.emulated import EMULATOR as SOURCE_EMULATOR
from pipeline.targets.base import EmulatedData, EmulatorSpec

__all__ = [
    "SOURCE",
    "STATE_PATH",
    "Emulated",
    "EmulatorPlan",
    "Stack",
    "System",
    "config_toml",
    "describe",
    "load_plan",
    "plan_from_mapping",
    "running_stack",
    "systems",
]

SOURCE = "source"
"""The stack's name of the source: its section is ``[source]``, the others ``[targets.*]``."""
STATE_PATH = "pipeline-state.sqlite3"
"""The state file of the configuration :meth:`Stack.config` writes unless told."""
_FLOW = {"queue_size": 8}
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class System:
    """One system of the stack: its configuration name and how it is emulated."""

    name: str
    emulator: EmulatorSpec[Any]

    @property
    def label(self) -> str:
        """Its section of an emulator plan, the stem of its variables (``man``, ``norce``)."""
        return self.emulator.system or self.name

    def variables(self, plan: Any, env_prefix: str) -> dict[str, str]:
        """The variable named per credential role: ``{"client_id": "NORCE_CLIENT_ID"}``."""
        roles = self.emulator.credentials(plan)
        return {role: f"{env_prefix}{self.label}_{role}".upper() for role in roles}


def systems(names: Sequence[str] | None = None) -> list[System]:
    """The source, then every registered target with an emulator, in registry order; only
    those in ``names`` if given (in stack order).

    Raises:
        ConfigError: a name in ``names`` is no system of the stack.
    """
    every = [System(SOURCE, SOURCE_EMULATOR)]
    every += [System(t.name, t.emulator) for t in registry.targets() if t.emulator is not None]
    if names is None:
        return every
    unknown = sorted(set(names) - {s.name for s in every})
    if unknown:
        known = ", ".join(s.name for s in every)
        raise ConfigError(f"no emulated system named {', '.join(unknown)} (systems: {known})")
    return [s for s in every if s.name in names]


@dataclass(frozen=True)
class EmulatorPlan:
    """How the emulators behave, faults included, by system label (``man``, ``norce``): the
    sections of ``--plan FILE``. A system without a section gets its declared default."""

    sections: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, label: str) -> Any:
        if label in self.sections:
            return self.sections[label]
        for system in systems():
            if system.label == label:
                return system.emulator.default
        raise KeyError(label)


def plan_from_mapping(data: Mapping[str, Any], path: str | None = None) -> EmulatorPlan:
    """Each section decoded by its system's plan type, over that system's default plan.

    Raises:
        ConfigError: a section names no system, or does not decode (the key's path said).
    """
    known = {system.label: system for system in systems()}
    sections: dict[str, Any] = {}
    for label, section in data.items():
        system = known.get(label)
        if system is None:
            names = ", ".join(known)
            raise ConfigError(
                f"emulator plan: unknown section [{label}] (sections: {names})", path=path
            )
        try:
            # Over the default plan: a key the section names replaces the default's, the
            # others stay (the Norce emulator keeps the companies of MAN's feed, say).
            default = msgspec.to_builtins(system.emulator.default)
            merged = {**default, **section} if isinstance(section, dict) else section
            sections[label] = msgspec.convert(merged, system.emulator.plan)
        except msgspec.ValidationError as exc:
            message, _, where = str(exc).partition(" - at `$")
            raise ConfigError(
                f"emulator plan: {message} - at `$.{label}{where or '`'}", path=path
            ) from exc
    return EmulatorPlan(sections)


def load_plan(path: str | None) -> EmulatorPlan:
    """The plan in ``path`` (TOML), or the default plan.

    Raises:
        ConfigError: the file cannot be read or does not decode, with the path of the bad key.
    """
    if path is None:
        return EmulatorPlan()
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"emulator plan: {exc}", path=path) from exc
    return plan_from_mapping(data, path)


class Emulated(msgspec.Struct, frozen=True):
    """One running emulator: where it listens (the server's root; the configuration's
    ``url`` may add a path), the variables holding what it accepts (name -> value), and the
    configuration section that points a pass at it."""

    name: str
    url: str
    credentials: dict[str, str]
    config: dict[str, Any]


class Stack(msgspec.Struct, frozen=True):
    """The running emulators, by system name, in stack order (the source first)."""

    systems: dict[str, Emulated]

    def credentials(self) -> dict[str, str]:
        """Every emulator's variables: name -> value."""
        return {k: v for emulated in self.systems.values() for k, v in emulated.credentials.items()}

    def config(self, state_path: str = STATE_PATH) -> dict[str, Any]:
        """The configuration (as parsed TOML) of a pass against these emulators."""
        config: dict[str, Any] = {}
        if SOURCE in self.systems:
            config["source"] = self.systems[SOURCE].config
        config["flow"] = dict(_FLOW)
        config["state"] = {"path": state_path}
        targets = {name: e.config for name, e in self.systems.items() if name != SOURCE}
        if targets:
            config["targets"] = targets
        return config

    def description(self, state_path: str = STATE_PATH) -> dict[str, Any]:
        """What ``pipeline emulate --json`` prints: per system its URL, credentials and
        section, and the whole configuration."""
        return {
            "systems": {
                name: msgspec.to_builtins(emulated) for name, emulated in self.systems.items()
            },
            "config": self.config(state_path),
        }


def describe(
    urls: Mapping[str, str],
    *,
    plan: EmulatorPlan | None = None,
    env_prefix: str = "",
    rate_per_second: float | None = 50.0,
) -> Stack:
    """The stack of the systems in ``urls`` (name -> the root its emulator listens on): what
    :func:`running_stack` yields, without serving anything.

    Raises:
        ConfigError: a name is no system of the stack.
    """
    plan = plan or EmulatorPlan()
    described: dict[str, Emulated] = {}
    for system in systems(list(urls)):
        own, url = plan[system.label], urls[system.name]
        variables = system.variables(own, env_prefix)
        accepted = system.emulator.credentials(own)
        described[system.name] = Emulated(
            name=system.name,
            url=url,
            credentials={variables[role]: value for role, value in accepted.items()},
            config=system.emulator.section(url, own, variables, rate_per_second),
        )
    return Stack(described)


@asynccontextmanager
async def running_stack(
    customers: int,
    *,
    names: Sequence[str] | None = None,
    host: str = "127.0.0.1",
    base_port: int = 0,
    seed: int = 7,
    plan: EmulatorPlan | None = None,
    env_prefix: str = "",
    rate_per_second: float | None = 50.0,
) -> AsyncIterator[Stack]:
    """Serve the emulators of ``names`` (default: every system) while the block runs.

    ``base_port`` 0 picks free ports, else the systems take consecutive ports from it in
    stack order. Credentials are named with ``env_prefix`` (``PIPELINE_DEMO_MAN_TOKEN``);
    ``rate_per_second`` None turns every target's rate limit off.

    Raises:
        ConfigError: a name is no system of the stack.
        PipelineError: a port cannot be bound (taken by another process), naming it.
    """
    plan = plan or EmulatorPlan()
    data = EmulatedData(customers, seed)
    urls: dict[str, str] = {}
    async with AsyncExitStack() as stack:
        for offset, system in enumerate(systems(names)):
            try:
                app = system.emulator.app(plan[system.label], data)
            except ValueError as exc:  # the emulator refuses a value of its plan
                raise ConfigError(f"emulator plan: [{system.label}] {exc}") from exc
            port = base_port + offset if base_port else 0
            try:
                urls[system.name] = await stack.enter_async_context(serve_app(app, host, port))
            except OSError as exc:  # the port is taken, or the host is not this machine's
                reason = os.strerror(exc.errno) if exc.errno else str(exc)
                raise PipelineError(f"cannot listen on {host}:{port}: {reason}") from exc
        yield describe(urls, plan=plan, env_prefix=env_prefix, rate_per_second=rate_per_second)


def config_toml(config: Mapping[str, Any]) -> str:
    """``config`` (as parsed TOML: tables of scalars, lists and tables) as a TOML file."""
    lines: list[str] = []
    _toml_table(lines, [], config)
    return "\n".join(lines).strip("\n") + "\n"


def _toml_table(lines: list[str], name: list[str], table: Mapping[str, Any]) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, Mapping) and v is not None}
    if name and (scalars or not table):
        lines.append(f"[{'.'.join(_toml_key(part) for part in name)}]")
    lines.extend(f"{_toml_key(key)} = {_toml_value(value)}" for key, value in scalars.items())
    if scalars:
        lines.append("")
    for key, value in table.items():
        if isinstance(value, Mapping):
            _toml_table(lines, [*name, key], value)


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a JSON string is a TOML basic string (same escapes)
