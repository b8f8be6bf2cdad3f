"""The targets the pipeline knows, by name: one line per target names its folder's spec.

Everything generic (configuration loading, the flow, ``check-config``, the emulator stack,
the report, ``/metrics``) loops over :func:`targets`; nothing outside a target's folder and
this module imports a target module. A target defined elsewhere (a plug-in, a test) is added
with :func:`register` and takes part in every command as the built-in ones do.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pipeline.targets.base import TargetSpec
from pipeline.targets.emporix import SPEC as EMPORIX
from pipeline.targets.norce import SPEC as NORCE
from pipeline.targets.syncbatch import SPEC as SYNCBATCH

__all__ = ["TargetSpec", "register", "registered", "spec", "targets", "unregister"]

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


def targets() -> list[TargetSpec]:
    """Every registered target, in the order they were registered."""
    return list(_TARGETS.values())


def spec(name: str) -> TargetSpec:
    """The target registered as ``name``.

    Raises:
        KeyError: no target has that name.
    """
    return _TARGETS[name]


for _builtin in (SYNCBATCH, EMPORIX, NORCE):
    register(_builtin)
