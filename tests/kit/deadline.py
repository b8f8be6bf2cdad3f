"""A deadline on every async test: a hang fails the test, saying so, instead of stalling the run.

``tests/conftest.py`` takes these hooks. Every coroutine test runs inside a cancel scope of
:data:`DEFAULT_SECONDS` (``@pytest.mark.deadline(seconds)`` sets another one, on a test, a
class or a module); past it the test is cancelled and fails with the deadline named.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

DEFAULT_SECONDS = 60.0
"""Seconds an async test may run unless its ``deadline`` marker says otherwise."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"deadline(seconds): how long an async test may run (default {DEFAULT_SECONDS:g} s)",
    )


def deadline_of(item: pytest.Item) -> float:
    marker = item.get_closest_marker("deadline")
    if marker is None:
        return DEFAULT_SECONDS
    return float(marker.args[0])


def with_deadline(
    test: Callable[..., Awaitable[Any]], seconds: float, name: str
) -> Callable[..., Awaitable[Any]]:
    """``test`` cancelled after ``seconds``, then failed naming the deadline."""

    @functools.wraps(test)
    async def run(*args: Any, **kwargs: Any) -> Any:
        with anyio.CancelScope(deadline=anyio.current_time() + seconds) as scope:
            result = await test(*args, **kwargs)
        if scope.cancelled_caught:
            pytest.fail(
                f"{name} ran past its deadline of {seconds:g} s and was cancelled (a hang?); "
                "@pytest.mark.deadline(seconds) gives a test longer",
                pytrace=False,
            )
        return result

    return run


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        test = getattr(item, "obj", None)
        if isinstance(item, pytest.Function) and inspect.iscoroutinefunction(test):
            assert test is not None
            item.obj = with_deadline(test, deadline_of(item), item.nodeid)
