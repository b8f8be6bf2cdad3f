"""The targets the pipeline knows, by name: one line per target names its folder's spec.

Everything generic (configuration loading, the flow, ``check-config``, the emulator stack,
the report, ``/metrics``) loops over :func:`targets`; nothing outside a target's folder and
this module imports a target module. A target defined elsewhere (a plug-in, a test) is added
with :func:`register` and takes part in every command as the built-in ones do.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.targets.base import Target, TargetContext, TargetSpec
from pipeline.targets.emporix import SPEC as EMPORIX
from pipeline.targets.norce import SPEC as NORCE
from pipeline.targets.syncbatch import SPEC as SYNCBATCH

__all__ = [
    "PLUGINS_ENV",
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


def register(target: TargetSpec) -> None:
    """Add a target (its name must be new: a built-in one is never replaced by accident).

    Raises:
        ValueError: the name is taken.
    """
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
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"cannot import plug-in {name}: {exc}", path=PLUGINS_ENV) from exc
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
        ConfigError: ``only`` names a target that is not configured.
    """
    enabled = settings.targets.enabled()
    names = list(dict.fromkeys(only)) if only else enabled
    unknown = [n for n in names if n not in enabled]
    if unknown:
        raise ConfigError(f"target {unknown[0]!r} is not configured", path="targets")
    return [spec(name).build(settings.targets[name], TargetContext(name, store)) for name in names]


for _builtin in (SYNCBATCH, EMPORIX, NORCE):
    register(_builtin)
