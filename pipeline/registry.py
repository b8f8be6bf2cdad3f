"""The targets the pipeline knows, by name: one line per target names its folder's spec.

Everything generic (configuration loading, the flow, ``check-config``, the emulator stack,
the report, ``/metrics``) loops over :func:`targets`; nothing outside a target's folder and
this module imports a target module. A target defined elsewhere (a plug-in, a test) is added
with :func:`register` and takes part in every command as the built-in ones do.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from pipeline.config import Settings
from pipeline.errors import ConfigError, PipelineError, unexpected
from pipeline.targets.base import Target, TargetContext, TargetSpec
from pipeline.targets.emporix import SPEC as EMPORIX
from pipeline.targets.norce import SPEC as NORCE
from pipeline.targets.syncbatch import SPEC as SYNCBATCH

__all__ = [
    "PLUGINS_ENV",
    "RESERVED",
    "TargetSpec",
    "build_targets",
    "load_plugins",
    "register",
    "registered",
    "spec",
    "targets",
    "unregister",
]

if TYPE_CHECKING:
    from pipeline.state.store import StateStore

PLUGINS_ENV = "PIPELINE_PLUGINS"
"""The environment variable naming plug-in modules, comma-separated (read by the CLI)."""

_TARGETS: dict[str, TargetSpec] = {}
_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
"""A target's name: its ``[targets.<name>]`` key, a metrics label, the stem of its emulator's
variables (``NORCE_CLIENT_ID``)."""
RESERVED = frozenset({"source"})
"""Names a target may not take: the emulator stack's name of the source."""


def register(target: TargetSpec) -> None:
    """Add a target (its name must be new: a built-in one is never replaced by accident).

    Raises:
        ValueError: the name is taken.
    """
    if not _NAME.fullmatch(target.name) or target.name in RESERVED:
        raise ValueError(
            f"a target's name is a lower-case identifier, not {', '.join(sorted(RESERVED))}: "
            f"{target.name!r} is not one"
        )
    if target.name in _TARGETS:
        raise ValueError(f"a target named {target.name!r} is registered already")
    _TARGETS[target.name] = target


def unregister(name: str) -> None:
    _TARGETS.pop(name, None)


@contextmanager
def registered(target: TargetSpec) -> Iterator[TargetSpec]:
    """``target`` registered while the block runs (a test's own target, say)."""
    register(target)
    try:
        yield target
    finally:
        unregister(target.name)


def load_plugins(modules: Sequence[str]) -> None:
    """Import each module and register the :class:`TargetSpec` it names ``SPEC``: a target
    defined outside the package (``PIPELINE_PLUGINS=mycompany.shop``) joins every command.

    Raises:
        ConfigError: a module cannot be imported, has no ``SPEC``, or its name is taken.
    """
    for name in modules:
        if not all(part.isidentifier() for part in name.split(".")):
            raise ConfigError(f"{name!r} is not a module name (a.b.c)", path=PLUGINS_ENV)
        try:
            module = importlib.import_module(name)
        except ImportError as exc:  # its message names the module missing, nothing else
            raise ConfigError(f"cannot import plug-in {name}: {exc}", path=PLUGINS_ENV) from exc
        except Exception as exc:  # raised by the module's code: its message may hold anything
            what = unexpected(exc)
            raise ConfigError(f"cannot import plug-in {name}: {what}", path=PLUGINS_ENV) from exc
        target = getattr(module, "SPEC", None)
        if not isinstance(target, TargetSpec):
            raise ConfigError(f"plug-in {name} names no TargetSpec as SPEC", path=PLUGINS_ENV)
        if _TARGETS.get(target.name) is target:
            continue  # loaded already
        try:
            register(target)
        except ValueError as exc:
            raise ConfigError(f"plug-in {name}: {exc}", path=PLUGINS_ENV) from exc


def targets() -> list[TargetSpec]:
    """Every registered target, in the order they were registered."""
    return list(_TARGETS.values())


def spec(name: str) -> TargetSpec:
    """The target registered as ``name``.

    Raises:
        KeyError: no target has that name.
    """
    return _TARGETS[name]


def build_targets(
    settings: Settings, store: StateStore, only: Sequence[str] | None = None
) -> list[Target]:
    """The enabled targets, limited to ``only`` when given (a name given twice counts once),
    each built by its registered spec.

    Raises:
        ConfigError: no target is configured, or ``only`` names one that is not.
        PipelineError: a target cannot be made (a bug of its constructor, say).
    """
    enabled = settings.targets.enabled()
    if not enabled:
        known = ", ".join(t.name for t in targets())
        raise ConfigError(
            f"no target is configured: add a [targets.<name>] section (targets: {known})",
            path="targets",
        )
    names = list(dict.fromkeys(only)) if only else enabled
    unknown = [n for n in names if n not in enabled]
    if unknown:
        raise ConfigError(f"target {unknown[0]!r} is not configured", path="targets")
    return [_build(name, settings, store) for name in names]


def _build(name: str, settings: Settings, store: StateStore) -> Target:
    try:
        return spec(name).build(settings.targets[name], TargetContext(name, store))
    except PipelineError:
        raise
    except Exception as exc:  # a bug of the target's constructor
        raise PipelineError(f"target {name} cannot be made: {unexpected(exc)}") from exc


for _builtin in (SYNCBATCH, EMPORIX, NORCE):
    register(_builtin)
