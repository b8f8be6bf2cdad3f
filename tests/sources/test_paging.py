"""Tests of the offset-paging state machine: which offsets are planned and when reading stops."""

from __future__ import annotations

import pytest

from pipeline.sources.paging import OffsetPaging


def plan_many(paging: OffsetPaging, n: int) -> list[int | None]:
    return [paging.plan() for _ in range(n)]


def read_all(total: int, limit: int, *, start: int = 0, ahead: int = 1) -> list[tuple[int, int]]:
    """Drive the paginator like the source does: ``ahead`` pages in flight, settled in order."""
    paging = OffsetPaging(limit, start)
    in_flight: list[int] = []
    useful: list[tuple[int, int]] = []
    while True:
        while len(in_flight) < ahead:
            offset = paging.plan()
            if offset is None:
                break
            in_flight.append(offset)
        if not in_flight:
            break
        offset = in_flight.pop(0)
        count = max(0, min(limit, total - offset))
        if paging.settle(offset, count):
            useful.append((offset, count))
        if paging.done:
            break
    return useful


# Planning -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "start", "expected"),
    [
        (10, 0, [0, 10, 20, 30, 40]),
        (1, 0, [0, 1, 2, 3, 4]),
        (100, 0, [0, 100, 200, 300, 400]),
        (10, 5, [5, 15, 25, 35, 45]),
        (7, 21, [21, 28, 35, 42, 49]),
    ],
)
def test_plan_offsets_step_by_limit_from_start(limit: int, start: int, expected: list[int]) -> None:
    paging = OffsetPaging(limit, start)
    assert plan_many(paging, 5) == expected
    assert paging.done is False
    assert paging.end is None


def test_plan_keeps_going_while_pages_are_full() -> None:
    paging = OffsetPaging(limit=10)
    for expected in range(0, 100, 10):
        assert paging.plan() == expected
        assert paging.settle(expected, 10) is True
        assert paging.done is False
    assert paging.end is None


def test_plan_example_from_docstring() -> None:
    paging = OffsetPaging(limit=10)
    assert (paging.plan(), paging.plan()) == (0, 10)
    assert (paging.settle(0, 10), paging.settle(10, 4), paging.done) == (True, True, True)
    assert paging.end == 14
    assert paging.plan() is None


# Stopping -------------------------------------------------------------------------------


@pytest.mark.parametrize("short", [0, 1, 5, 9])
def test_settle_short_page_ends_the_read(short: int) -> None:
    paging = OffsetPaging(limit=10)
    assert plan_many(paging, 3) == [0, 10, 20]
    assert paging.settle(0, 10) is True
    assert paging.settle(10, 10) is True
    assert paging.settle(20, short) is True
    assert paging.end == 20 + short
    assert paging.done is True
    assert plan_many(paging, 3) == [None, None, None]


def test_settle_empty_first_page_ends_the_read() -> None:
    paging = OffsetPaging(limit=10)
    assert paging.plan() == 0
    assert paging.settle(0, 0) is True
    assert paging.end == 0
    assert paging.done is True
    assert paging.plan() is None


def test_settle_empty_first_page_at_start_offset() -> None:
    paging = OffsetPaging(limit=10, start=40)
    assert paging.plan() == 40
    assert paging.settle(40, 0) is True
    assert paging.end == 40
    assert paging.done is True
    assert paging.plan() is None


def test_settle_exact_multiple_ends_on_following_empty_page() -> None:
    paging = OffsetPaging(limit=10)
    assert plan_many(paging, 2) == [0, 10]
    assert paging.settle(0, 10) is True
    assert paging.settle(10, 10) is True
    assert paging.done is False
    assert paging.plan() == 20
    assert paging.settle(20, 0) is True
    assert paging.end == 20
    assert paging.done is True
    assert paging.plan() is None


@pytest.mark.parametrize("ahead", [2, 3, 5])
def test_settle_pages_planned_past_the_end_are_not_useful(ahead: int) -> None:
    paging = OffsetPaging(limit=10)
    planned = plan_many(paging, ahead + 1)
    assert planned == [10 * i for i in range(ahead + 1)]
    assert paging.settle(0, 3) is True
    assert paging.end == 3
    assert [paging.settle(offset, 0) for offset in planned[1:]] == [False] * ahead
    assert paging.end == 3
    assert paging.done is True
    assert paging.plan() is None


def test_settle_page_starting_exactly_at_end_is_not_useful() -> None:
    paging = OffsetPaging(limit=10)
    assert plan_many(paging, 2) == [0, 10]
    assert paging.settle(0, 10) is True
    assert paging.settle(10, 0) is True
    assert paging.end == 10
    assert paging.settle(10, 0) is False


def test_done_only_after_a_short_page() -> None:
    paging = OffsetPaging(limit=10)
    assert paging.done is False
    assert paging.plan() == 0
    assert paging.settle(0, 10) is True
    assert paging.done is False
    assert paging.plan() == 10
    assert paging.settle(10, 9) is True
    assert paging.done is True


@pytest.mark.parametrize(
    ("total", "limit", "start", "ahead", "expected"),
    [
        (0, 10, 0, 1, [(0, 0)]),
        (0, 10, 0, 4, [(0, 0)]),
        (5, 10, 0, 1, [(0, 5)]),
        (10, 10, 0, 1, [(0, 10), (10, 0)]),
        (10, 10, 0, 3, [(0, 10), (10, 0)]),
        (25, 10, 0, 1, [(0, 10), (10, 10), (20, 5)]),
        (25, 10, 0, 4, [(0, 10), (10, 10), (20, 5)]),
        (30, 10, 0, 2, [(0, 10), (10, 10), (20, 10), (30, 0)]),
        (3, 1, 0, 2, [(0, 1), (1, 1), (2, 1), (3, 0)]),
        (25, 10, 10, 1, [(10, 10), (20, 5)]),
        (25, 10, 30, 3, [(30, 0)]),
    ],
)
def test_read_all_records_exactly_once(
    total: int, limit: int, start: int, ahead: int, expected: list[tuple[int, int]]
) -> None:
    useful = read_all(total, limit, start=start, ahead=ahead)
    assert useful == expected
    assert sum(count for _, count in useful) == max(0, total - start)


# Arguments ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "start", "message"),
    [
        (0, 0, "limit must be positive"),
        (-1, 0, "limit must be positive"),
        (10, -1, "start must not be negative"),
        (0, -1, "limit must be positive"),
    ],
)
def test_offset_paging_invalid_arguments_raise(limit: int, start: int, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        OffsetPaging(limit, start)
