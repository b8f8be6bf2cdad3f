"""The deadline on every async test (tests/kit/deadline.py): a hang fails, naming it."""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import anyio
import pytest

from tests.kit.deadline import DEFAULT_SECONDS

pytest_plugins = ["pytester"]

CONFTEST = "from tests.kit.deadline import pytest_collection_modifyitems, pytest_configure\n"
HANGING = """
import anyio
import pytest

async def test_quick():
    await anyio.sleep(0)

@pytest.mark.deadline(0.3)
async def test_hangs():
    await anyio.sleep_forever()

async def test_raises_its_own_timeout():
    raise TimeoutError("mine")
"""


def test_a_hanging_async_test_fails_at_its_deadline_naming_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The child pytest runs in a temporary folder: it finds tests.kit from the checkout.
    root = str(Path(__file__).resolve().parent.parent)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    )
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_hang=HANGING)
    result = pytester.runpytest_subprocess("-o", "asyncio_mode=auto", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        ["*test_hang.py::test_hangs ran past its deadline of 0.3 s and was cancelled (a hang?)*"]
    )
    # A test's own TimeoutError is its own failure, not a deadline.
    result.stdout.fnmatch_lines(["*TimeoutError: mine*"])
    assert "test_raises_its_own_timeout ran past" not in result.stdout.str()
    assert result.duration < DEFAULT_SECONDS / 2


WRAPPER = "with_deadline.<locals>.run"


def test_every_async_test_of_the_run_is_under_a_deadline(request: pytest.FixtureRequest) -> None:
    coroutines = [
        item
        for item in request.session.items
        if isinstance(item, pytest.Function)
        and inspect.iscoroutinefunction(inspect.unwrap(item.obj))
    ]
    assert coroutines  # this module's own, at least
    for item in coroutines:
        assert item.obj.__code__.co_qualname == WRAPPER, item.nodeid


async def test_an_async_test_runs_with_the_default_deadline() -> None:
    left = anyio.current_effective_deadline() - anyio.current_time()
    assert DEFAULT_SECONDS - 5 < left <= DEFAULT_SECONDS


@pytest.mark.deadline(600)
async def test_the_marker_sets_another_deadline() -> None:
    left = anyio.current_effective_deadline() - anyio.current_time()
    assert 595 < left <= 600
