"""Every public module declares ``__all__``, and it lists exactly its public definitions."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import pipeline


def modules() -> list[ModuleType]:
    found = []
    for info in pkgutil.walk_packages(pipeline.__path__, "pipeline."):
        if info.name == "pipeline.__main__":
            continue
        found.append(importlib.import_module(info.name))
    return found


@pytest.mark.parametrize("module", modules(), ids=lambda m: m.__name__)
def test_all_lists_exactly_the_public_definitions(module: ModuleType) -> None:
    if module.__name__.count(".") and module.__file__ and module.__file__.endswith("__init__.py"):
        return  # stage packages only carry a docstring or re-exports
    assert hasattr(module, "__all__"), f"{module.__name__} has no __all__"
    exported = set(module.__all__)
    missing = [name for name in exported if not hasattr(module, name)]
    assert not missing, f"{module.__name__}.__all__ names undefined {missing}"
    defined = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__ == module.__name__
    }
    assert defined <= exported, (
        f"{module.__name__}: public but not in __all__: {defined - exported}"
    )


@pytest.mark.parametrize("module", modules(), ids=lambda m: m.__name__)
def test_module_has_a_docstring(module: ModuleType) -> None:
    assert module.__doc__ and module.__doc__.strip()
